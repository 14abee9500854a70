//! The NATS client inside Lunatic against real nats-servers (started by
//! tests/support/nats_harness.py): core NATS, JetStream and KV, TLS, nkey and JWT logins.
//!
//! One test binary for the four: Lunatic compiles each binary with Cranelift when it starts it,
//! a few seconds apiece, and their tests run side by side anyway (each against its own servers
//! where it restarts one).

// `pub`, as they were when each was its own crate root: a public item that no test happens to
// use is not reported as dead code.
pub mod auth;
pub mod client;
pub mod jetstream;
pub mod tls;

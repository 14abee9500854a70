//! One node's runtime under Lunatic: requests, supervision, crashes, the registry and stored
//! records, limits per agent, persistence strategies, schema evolution, a killed registrar.
//!
//! One test binary for all of them: Lunatic compiles each binary with Cranelift when it starts
//! it, a few seconds apiece, and each test runs in its own Lunatic environment (its own registry),
//! on its own scratch directory. The tests that need a node of their own (an address-space limit,
//! NATS front doors, the cluster) keep binaries of their own.

// `pub`, as they were when each was its own crate root: a public item that no test happens to
// use is not reported as dead code.
pub mod crashes;
pub mod limits;
pub mod mailbox_order;
pub mod persistence_strategies;
pub mod registrar_restart;
pub mod registry_and_records;
pub mod requests;
pub mod schema_evolution;
pub mod supervision;

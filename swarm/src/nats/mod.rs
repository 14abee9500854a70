//! NATS support: how agents talk to each other across nodes.
//!
//! [`codec`] is the pure wire layer (bytes in, ops out; ops in, bytes out). It does no I/O, so
//! the same code runs in native tests and inside Lunatic processes on wasm32-wasip1.

pub mod codec;

//! The NATS codec, compiled straight from `swarm/src/nats/codec` so the fuzz targets do not
//! depend on the `swarm` crate's features and platform-specific dependencies.

#[path = "../../src/nats/codec/mod.rs"]
pub mod codec;

//! JetStream in the Lunatic NATS client: streams, publishes acknowledged by a stream, reads of
//! stored messages, and KV buckets (ADR-8) with compare-and-set writes and watches.
//!
//! One file per concern; the pure parts build natively and are unit tested there:
//!
//! - `api.rs`: the API on the wire (subjects, the reply envelope, its error body);
//! - `error.rs`: [`JsError`], and how the client's and the server's failures become one;
//! - `stream.rs`: [`StreamConfig`], [`StreamInfo`], [`PubAck`] as the API's JSON has them;
//! - `stored.rs`: [`StoredMsg`], read from `STREAM.MSG.GET` (leader) or `DIRECT.GET` (replica);
//! - `names.rs`: stream and bucket names, KV keys and key filters, checked before sending;
//! - `kv_config.rs`: [`KvConfig`] and the stream behind a bucket (ADR-8, ADR-48);
//! - `kv_entry.rs`: [`KvEntry`], [`KvOperation`] (from `KV-Operation` or a limit marker);
//! - `durable.rs`: a durable pull consumer with explicit acks ([`DurableConfig`], [`JsMessage`]):
//!   its configuration, pulls, and what comes back; `pull.rs` ([`PullConsumer`], wasm32 only)
//!   fetches and acks;
//! - `ordered.rs`: the ordered consumer behind a watch, without the I/O (`$JS.ACK` subjects,
//!   gaps, heartbeats, flow control);
//! - wasm32 only (they need a [`NatsClient`](super::NatsClient)): `context.rs` ([`JetStream`]),
//!   `kv.rs` ([`KvBucket`]) and `watch.rs` ([`KvWatch`]).
//!
//! Every call is a NATS request from the caller's process, bounded by the [`JetStream`]
//! handle's timeout (5 s unless set), so any process holding a handle can use it; a watch's
//! entries come to the process that made it.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod api;
mod durable;
mod error;
mod kv_config;
mod kv_entry;
mod names;
mod ordered;
mod stored;
mod stream;

#[cfg(target_arch = "wasm32")]
mod context;
#[cfg(target_arch = "wasm32")]
mod kv;
#[cfg(target_arch = "wasm32")]
mod pull;
#[cfg(target_arch = "wasm32")]
mod watch;

#[cfg(target_arch = "wasm32")]
pub use context::JetStream;
pub use durable::{DeliverFrom, DurableConfig, JsMessage};
pub use error::JsError;
#[cfg(target_arch = "wasm32")]
pub use kv::KvBucket;
pub use kv_config::KvConfig;
pub use kv_entry::{KvEntry, KvOperation};
#[cfg(target_arch = "wasm32")]
pub use pull::PullConsumer;
pub use stored::StoredMsg;
pub use stream::{
    ClusterInfo, DiscardPolicy, PubAck, RetentionPolicy, StorageType, StreamConfig, StreamInfo,
    StreamState,
};
#[cfg(target_arch = "wasm32")]
pub use watch::KvWatch;

//! NATS support: how agents talk to each other across nodes.
//!
//! - `codec` is the pure wire layer (bytes in, ops out; ops in, bytes out). It does no I/O, so
//!   the same code runs in native tests and inside Lunatic processes on wasm32-wasip1. Hidden
//!   from the docs (machinery, not an API); its user-facing types are re-exported here.
//! - `ws` (hidden too) is the pure WebSocket framing used for `ws://` servers.
//! - `tls` (private): `tls://` servers; what Lunatic's TLS client can do, and explaining what
//!   went wrong when its handshake fails (the runtime does not say).
//! - [`ConnectOptions`], [`ServerAddr`], [`NatsError`]: options and errors (pure).
//! - [`Credentials`] and the `auth` module: nkey seeds, `.creds` files and the signature of the
//!   server's nonce, done inside the guest (pure).
//! - [`NatsClient`] and [`Subscription`] (wasm32 only, inside Lunatic): the connection, split by
//!   concern in `client/`. One connection process owns the socket's writes and the protocol
//!   state; one reader process per socket reads, parses and hands each message straight to its
//!   subscriber or requester. Any Lunatic process may hold a (cheap, serializable) `NatsClient`
//!   and publish, subscribe (messages arrive in the subscriber's own mailbox), or make requests.
//!   See `README.md` in this directory.
//! - [`serve_agents`] (wasm32 only): agents reachable at `<namespace>.<kind>.<key>.<handler>`,
//!   JSON in and out.
//! - [`serve_subjects`] (wasm32 only): handlers bound to subjects with
//!   `#[handler(subject = "shop.orders.{key}.placed")]` get the messages published there; agents
//!   publish events from handlers with [`publish`] (sent when the handler returns, before its
//!   state is saved).
//! - [`serve_streams`] (wasm32 only): handlers bound with `#[handler(stream = "ORDERS", subject =
//!   "..")]` consume a JetStream stream through a durable consumer, each message acked once its
//!   agent saved it, and applied once per agent (its stream sequence is saved with the state).
//! - [`service_api`] (pure) and `discovery` (wasm32 only): each node answers the NATS services
//!   API (ADR-32: `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) for the agents it serves, so stock NATS
//!   tooling lists nodes, kinds and handlers, with per-handler counts.
//! - JetStream (`jetstream/`): [`JetStream`] (wasm32 only) for streams, publishes acknowledged
//!   by a stream ([`PubAck`]) with `Nats-Expected-Last-Subject-Sequence`, and direct or leader
//!   reads of stored messages; [`KvBucket`] (wasm32 only) for KV buckets (ADR-8) with
//!   compare-and-set writes on revisions and [`KvWatch`]es through an ordered consumer; typed
//!   errors in [`JsError`]. The JSON types, the error classification, the KV name rules and the
//!   ordered consumer's bookkeeping are pure and tested natively.

mod auth;
// The wire codec (bytes in, frames out) and the WebSocket framing: machinery under the client,
// tested natively and fuzzed. Hidden, not an API: what a user handles of them (`Headers`, `Msg`,
// `StatusCode`, the header errors) is re-exported below.
#[doc(hidden)]
pub mod codec;
mod options;
mod tls;
#[doc(hidden)]
pub mod ws;

#[cfg(target_arch = "wasm32")]
pub(crate) mod agents;
#[cfg(target_arch = "wasm32")]
mod discovery;
#[cfg(target_arch = "wasm32")]
pub(crate) mod events;
mod jetstream;
#[cfg(target_arch = "wasm32")]
mod streams;
#[cfg(target_arch = "wasm32")]
mod subjects;
// The client runs inside Lunatic; its plain-data parts also build natively, for their tests.
#[cfg(any(target_arch = "wasm32", test))]
mod client;
#[cfg(target_arch = "wasm32")]
mod responder;
pub mod service_api;

#[cfg(target_arch = "wasm32")]
pub use agents::{serve_agents, AgentService};
pub use auth::{AuthError, Credentials};
#[cfg(target_arch = "wasm32")]
pub use client::{ClientStatus, ConnState, NatsClient, Subscription};
pub use codec::{HeaderError, HeaderParseError, Headers, Msg, PermissionAction, StatusCode};
#[cfg(target_arch = "wasm32")]
pub use discovery::{
    cluster_stats_name, observe_subject, serve_discovery, ClusterStatsQuery, ServiceInstance,
    CLUSTER_STATS_WAIT, OBSERVE_AGENTS, OBSERVE_AGENTS_MAX, STATS_WAIT,
};
#[cfg(target_arch = "wasm32")]
pub use events::{publish, publish_to_stream, EventError};
pub use jetstream::{
    ClusterInfo, DeliverFrom, DiscardPolicy, DurableConfig, JsError, JsMessage, KvConfig, KvEntry,
    KvOperation, PubAck, RetentionPolicy, StorageType, StoredMsg, StreamConfig, StreamInfo,
    StreamState,
};
#[cfg(target_arch = "wasm32")]
pub use jetstream::{JetStream, KvBucket, KvWatch, PullConsumer};
pub use options::{Auth, Backoff, ConnectOptions, NatsError, ServerAddr, Transport};
#[cfg(target_arch = "wasm32")]
pub use streams::{durable_name, serve_streams, Replay, StreamOptions, StreamService};
#[cfg(target_arch = "wasm32")]
pub use subjects::{serve_subjects, SubjectService};

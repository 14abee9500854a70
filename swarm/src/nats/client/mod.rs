//! The NATS connection inside Lunatic: the handle users hold and the processes behind it, one
//! file per concern (as async-nats splits its client):
//!
//! - `handle.rs`: [`NatsClient`]. Any process holding one encodes its own PUB/HPUB (so subject
//!   validation and the `max_payload` check fail in the caller, synchronously) and sends the
//!   bytes to the connection process.
//! - `subscription.rs`: [`Subscription`], its messages taken from the subscriber's own mailbox,
//!   in order.
//! - `messages.rs`: the typed messages between the processes; `waiting.rs`: how callers wait for
//!   their answers.
//! - `connection/`: the **connection process**, one per [`NatsClient::connect`]: the only writer
//!   of the socket (everything queued goes out in one `write`), the subscriptions (subscribed
//!   again after a reconnect), request numbers, PING/PONG (`control.rs`), connecting and
//!   reconnecting (`link.rs`).
//! - `connector.rs`: opening a socket (TCP, TLS, WebSocket upgrade) and the client's half of the
//!   handshake (CONNECT, with credentials).
//! - `reader.rs`: the **reader process**, one per socket: reads, unwraps WebSocket frames,
//!   parses, and hands each message straight to its subscriber or requester; only the server's
//!   control operations (PING, PONG, INFO, -ERR, a broken socket) go to the connection process.
//! - `routing.rs`: the reader's routing table (which process gets a message), kept up to date by
//!   notes from the connection process that always arrive before the messages they route.
//!
//! A request takes two Lunatic hops (requester → connection process, reader → requester), a
//! subscription's messages one (reader → subscriber, one message per read for however many NATS
//! messages the read held). Callers wait on their own tag with `runtime::mailbox`'s wait loop,
//! which notices when the connection process is gone, so nobody hangs.
//!
//! Messages between these processes use swarm's [`Wire`](crate::runtime::wire::Wire) serializer
//! (bincode handed to Lunatic in one call); publishes go as raw bytes. Only the plain-data parts
//! (`messages.rs`, `routing.rs`, the ordering in `subscription.rs`) build natively, for their
//! unit tests.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

#[cfg(target_arch = "wasm32")]
mod connection;
#[cfg(target_arch = "wasm32")]
mod connector;
#[cfg(target_arch = "wasm32")]
mod handle;
mod messages;
#[cfg(target_arch = "wasm32")]
mod reader;
mod routing;
mod subscription;
#[cfg(target_arch = "wasm32")]
mod waiting;

#[cfg(target_arch = "wasm32")]
pub use handle::NatsClient;
#[cfg(target_arch = "wasm32")]
pub use subscription::Subscription;

use serde::{Deserialize, Serialize};

/// State of the connection, as reported by [`NatsClient::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnState {
    /// Handshake done; traffic flows.
    Connected,
    /// TCP/WebSocket connected, waiting for the server's INFO and PONG.
    Handshaking,
    /// Between servers, waiting to retry.
    Disconnected,
}

/// A snapshot of the connection, from [`NatsClient::status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Where the connection stands.
    pub state: ConnState,
    /// The server of the current (or last) connection.
    pub server: String,
    /// The server's `max_payload`.
    pub max_payload: u64,
    /// Successful reconnects after the first connection.
    pub reconnects: u64,
    /// Publishes dropped: over the buffer while disconnected, or over the `max_payload` of a
    /// server reached after a reconnect; plus one per write buffer lost when a connection broke
    /// (it may have held several).
    pub dropped: u64,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Requests waiting for a reply.
    pub pending_requests: usize,
    /// Messages this connection queued for the server (publishes, requests, replies).
    pub messages_out: u64,
    /// Their header and payload bytes.
    pub bytes_out: u64,
    /// Messages the server delivered to this connection (counted by its reader, and told at
    /// least once a second while they come).
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// The last error reported by the server or the socket.
    pub last_error: Option<String>,
}

#[cfg(target_arch = "wasm32")]
use messages::Addr;
#[cfg(target_arch = "wasm32")]
use waiting::{drain_tag, receive_now, wait_tagged, WaitFailed};

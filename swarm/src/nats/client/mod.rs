//! The NATS connection inside Lunatic (wasm32 only).
//!
//! Processes:
//! - the **connection process** owns the connection state (subscriptions, requests waiting for
//!   a reply, the outgoing buffer, PING bookkeeping, reconnects) and is the only writer of the
//!   socket. Its mailbox takes commands from client handles and batches of parsed server ops
//!   from the reader. After each batch of mailbox messages it writes everything buffered in one
//!   `write`, so many small publishes become one system call.
//! - one **reader process** per socket blocks in `read`, unwraps WebSocket frames if any, parses
//!   with [`ServerOpParser`] and sends the ops of each read to the connection process. When the
//!   socket fails it says so and ends; the connection process reconnects and starts a new one.
//! - any process holding a [`NatsClient`] encodes its own PUB/HPUB (so subject validation and
//!   the `max_payload` check fail in the caller, synchronously) and sends the bytes. Messages
//!   for a [`Subscription`] and replies to a request are sent to the caller's own process with a
//!   tag unique to that subscription or request; callers wait on their tag with
//!   `runtime::mailbox`'s wait loop, which notices when the connection process is gone, so
//!   nobody hangs.
//!
//! Messages between these processes use swarm's [`Wire`] serializer (bincode handed to Lunatic
//! in one call): Lunatic's stock `Bincode` serializer writes field by field, which for a
//! `Vec<u8>` payload means one host call per byte.

mod connection;
mod connector;
mod messages;
mod reader;
mod subscription;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::auth;
use super::codec::{check_payload_size, encode_hpub, encode_pub, encode_sub, Headers, Msg};
use super::options::{ConnectOptions, Failure, NatsError};
use crate::runtime::host;
use crate::runtime::mailbox::process_exists;
use messages::{drain_tag, wait_tagged, Addr, Command, Connected, Reply, WaitFailed};
pub use subscription::Subscription;

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
    /// The last error reported by the server or the socket.
    pub last_error: Option<String>,
}

/// A handle to a NATS connection. Cheap to clone, serializable (send it to other processes),
/// usable from any Lunatic process on this node. The connection lives until [`NatsClient::close`]
/// (or until reconnecting gives up, if `max_reconnects` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsClient {
    node: u64,
    conn: u64,
    inbox_prefix: String,
    max_payload: u64,
    op_timeout: Duration,
}

impl NatsClient {
    /// Connects to the first server of the list that accepts (each is tried once), and starts
    /// the connection process. Fails with [`NatsError::Connect`] naming the last server and
    /// why (socket error, or the server's `-ERR` such as `Authorization Violation`).
    pub fn connect(options: ConnectOptions) -> Result<NatsClient, NatsError> {
        if options.servers.is_empty() {
            return Err(NatsError::NoServers);
        }
        // A seed put into `Auth` by hand is checked here, not at every handshake.
        auth::check(&options.auth)?;
        let reply = Addr::fresh();
        let op_timeout = options.op_timeout;
        let budget = (options.connect_timeout + Duration::from_millis(500))
            .saturating_mul(options.servers.len() as u32 + 1);
        let conn = crate::runtime::process::spawn((options, reply), connection::connection_main)
            .map_err(|err| NatsError::Connect {
                server: "(none tried)".into(),
                reason: err.to_string(),
            })?;
        match wait_tagged::<Result<Connected, Failure>>(reply.tag, conn, Some(budget)) {
            Ok(Ok(connected)) => Ok(NatsClient {
                node: host::this().node,
                conn,
                inbox_prefix: connected.inbox_prefix,
                max_payload: connected.max_payload,
                op_timeout,
            }),
            Ok(Err(failure)) => Err(failure.into()),
            Err(WaitFailed::TimedOut) => {
                host::kill(conn);
                Err(NatsError::TimedOut {
                    what: "connect".into(),
                    timeout: budget,
                })
            }
            Err(WaitFailed::Gone) => Err(NatsError::Closed),
        }
    }

    fn command(&self, command: Command) -> Result<(), NatsError> {
        if !process_exists(self.conn) {
            return Err(NatsError::Closed);
        }
        host::send(self.conn, 0, &command)
            .map_err(|err| NatsError::Server(format!("a command does not encode: {err}")))
    }

    /// The server's `max_payload` (headers + payload), as of the first connection.
    pub fn max_payload(&self) -> u64 {
        self.max_payload
    }

    /// Publishes `payload` on `subject`. Returns once the message is queued for the connection
    /// process; [`NatsClient::flush`] waits until the server has it.
    pub fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<(), NatsError> {
        self.publish_inner(subject, None, None, payload.as_ref())
    }

    /// Publishes with a reply subject (for answering requests yourself, or replying).
    pub fn publish_with_reply(
        &self,
        subject: &str,
        reply_to: &str,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), NatsError> {
        self.publish_inner(subject, Some(reply_to), None, payload.as_ref())
    }

    /// Publishes with headers (HPUB).
    pub fn publish_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), NatsError> {
        self.publish_inner(subject, None, Some(headers), payload.as_ref())
    }

    /// Answers a received request (a message with a reply subject); an error if it has none.
    pub fn respond(&self, request: &Msg, payload: impl AsRef<[u8]>) -> Result<(), NatsError> {
        match &request.reply_to {
            Some(reply) => self.publish(reply, payload),
            None => Err(NatsError::Server(format!(
                "the message on {:?} has no reply subject",
                request.subject
            ))),
        }
    }

    fn encode(
        &self,
        subject: &str,
        reply_to: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
    ) -> Result<(Vec<u8>, usize), NatsError> {
        let size = headers.map_or(0, |h| h.wire_len()) + payload.len();
        check_payload_size(size, self.max_payload)?;
        let mut bytes = Vec::new();
        match headers {
            Some(h) => encode_hpub(&mut bytes, subject, reply_to, h, payload)?,
            None => encode_pub(&mut bytes, subject, reply_to, payload)?,
        }
        Ok((bytes, size))
    }

    fn publish_inner(
        &self,
        subject: &str,
        reply_to: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
    ) -> Result<(), NatsError> {
        let (bytes, size) = self.encode(subject, reply_to, headers, payload)?;
        self.command(Command::Publish { bytes, size })
    }

    /// Sends a request and waits up to `timeout` for the first reply, on the connection's muxed
    /// inbox. [`NatsError::NoResponders`] if nobody listens on `subject`;
    /// [`NatsError::PermissionDenied`] as soon as the server refuses the publish to `subject`
    /// (or has refused this connection's inbox subscription: the user may not subscribe to
    /// `_INBOX.>`); [`NatsError::Disconnected`] if the connection is lost meanwhile;
    /// [`NatsError::NotConnected`] while reconnecting.
    pub fn request(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Msg, NatsError> {
        self.request_inner(subject, None, payload.as_ref(), timeout)
    }

    /// [`NatsClient::request`] with headers.
    pub fn request_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Msg, NatsError> {
        self.request_inner(subject, Some(headers), payload.as_ref(), timeout)
    }

    fn request_inner(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Msg, NatsError> {
        let reply = Addr::fresh();
        // Unique per connection: (node, process, tag) is unique, and only hex digits and `x`.
        let token = format!("{:x}x{:x}x{:x}", reply.node, reply.process, reply.tag);
        let reply_subject = format!("{}{}", self.inbox_prefix, token);
        let (bytes, size) = self.encode(subject, Some(&reply_subject), headers, payload)?;
        self.command(Command::Request {
            token: token.clone(),
            subject: subject.to_owned(),
            bytes,
            size,
            reply,
        })?;
        match wait_tagged::<Reply>(reply.tag, self.conn, Some(timeout)) {
            Ok(Reply::Msg(msg)) if msg.is_no_responders() => Err(NatsError::NoResponders {
                subject: subject.to_owned(),
            }),
            Ok(Reply::Msg(msg)) => Ok(msg),
            Ok(Reply::Failed(failure)) => Err(failure.into()),
            Err(WaitFailed::Gone) => Err(NatsError::Closed),
            Err(WaitFailed::TimedOut) => {
                // Forget the request, wait until the connection process has (so no reply can
                // come after), and drop a reply that came in between.
                let ack = Addr::fresh();
                if self.command(Command::Cancel { token, ack }).is_ok() {
                    let _ = wait_tagged::<()>(ack.tag, self.conn, Some(self.op_timeout));
                }
                drain_tag(reply.tag);
                Err(NatsError::TimedOut {
                    what: format!("request to {subject:?}"),
                    timeout,
                })
            }
        }
    }

    /// Subscribes to `subject` (wildcards allowed). Messages arrive in the calling process's
    /// mailbox: only this process can take them, with [`Subscription::next`]. Returns once the
    /// server has confirmed the SUB (a PING/PONG round trip), so a refusal is reported here:
    /// [`NatsError::PermissionDenied`] if the user may not subscribe to `subject`.
    pub fn subscribe(&self, subject: &str) -> Result<Subscription, NatsError> {
        self.subscribe_inner(subject, None)
    }

    /// Subscribes as a member of queue group `queue`: each message goes to one member.
    pub fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription, NatsError> {
        self.subscribe_inner(subject, Some(queue))
    }

    fn subscribe_inner(
        &self,
        subject: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, NatsError> {
        // Validate here so the caller gets the error (sid 0 is never sent).
        encode_sub(&mut Vec::new(), subject, queue, 0)?;
        let deliver = Addr::fresh();
        let ack = Addr::fresh();
        self.command(Command::Subscribe {
            subject: subject.to_owned(),
            queue: queue.map(str::to_owned),
            deliver,
            ack,
        })?;
        match wait_tagged::<Result<u64, Failure>>(ack.tag, self.conn, Some(self.op_timeout)) {
            Ok(Ok(sid)) => Ok(Subscription::new(self.clone(), sid, deliver.tag, subject)),
            Ok(Err(failure)) => {
                drain_tag(deliver.tag);
                Err(failure.into())
            }
            Err(WaitFailed::Gone) => Err(NatsError::Closed),
            Err(WaitFailed::TimedOut) => {
                // No Subscription exists to unsubscribe on drop: make the connection forget
                // the one it may have made, so nothing is delivered to this tag any more.
                let _ = self.command(Command::Forget { deliver });
                Err(NatsError::TimedOut {
                    what: format!("subscribe to {subject:?}"),
                    timeout: self.op_timeout,
                })
            }
        }
    }

    /// Waits until the server has processed everything this client sent before (PING/PONG).
    /// [`NatsError::PermissionDenied`] if, meanwhile, the server refused a publish of this
    /// connection (from any handle: the server reports by connection) for lack of permission;
    /// publishing itself does not wait, so this is where a refused publish shows.
    pub fn flush(&self) -> Result<(), NatsError> {
        let ack = Addr::fresh();
        self.command(Command::Flush { ack })?;
        match wait_tagged::<Result<(), Failure>>(ack.tag, self.conn, Some(self.op_timeout)) {
            Ok(result) => result.map_err(Into::into),
            Err(WaitFailed::Gone) => Err(NatsError::Closed),
            Err(WaitFailed::TimedOut) => Err(NatsError::TimedOut {
                what: "flush".into(),
                timeout: self.op_timeout,
            }),
        }
    }

    /// A snapshot of the connection's state and counters.
    pub fn status(&self) -> Result<ClientStatus, NatsError> {
        let ack = Addr::fresh();
        self.command(Command::Status { ack })?;
        wait_tagged::<ClientStatus>(ack.tag, self.conn, Some(self.op_timeout)).map_err(
            |e| match e {
                WaitFailed::Gone => NatsError::Closed,
                WaitFailed::TimedOut => NatsError::TimedOut {
                    what: "status".into(),
                    timeout: self.op_timeout,
                },
            },
        )
    }

    /// Whether the connection process still runs.
    pub fn is_closed(&self) -> bool {
        !process_exists(self.conn)
    }

    /// Writes what is buffered, closes the connection and ends the connection process. Every
    /// handle of this connection then gets [`NatsError::Closed`]; subscriptions end.
    pub fn close(&self) {
        let ack = Addr::fresh();
        if self.command(Command::Close { ack }).is_ok() {
            let _ = wait_tagged::<()>(ack.tag, self.conn, Some(self.op_timeout));
            // The process answers just before it ends: wait until it has, so that
            // `is_closed` and every other handle see it closed once this returns.
            let started = Instant::now();
            while process_exists(self.conn) && started.elapsed() < self.op_timeout {
                lunatic::sleep(Duration::from_millis(1));
            }
        }
    }
}

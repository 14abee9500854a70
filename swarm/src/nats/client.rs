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

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use lunatic::net::{TcpStream, TlsStream};
use lunatic::Tag;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::auth;
use super::codec::{
    check_payload_size, encode_connect, encode_hpub, encode_ping, encode_pong, encode_pub,
    encode_sub, encode_unsub, Connect, Headers, Msg, PermissionAction, ServerError,
    ServerErrorKind, ServerInfo, ServerOp, ServerOpParser, DEFAULT_MAX_PAYLOAD,
};
use super::options::{
    random_token, random_u64, ConnectOptions, Failure, NatsError, ServerAddr, Transport,
};
use super::{tls, ws};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{process_exists, wait_value, WaitError};

/// The sid of the connection's muxed request inbox `_INBOX.<random>.*`.
const INBOX_SID: u64 = 1;
/// Write once this much is buffered, even if more messages wait in the mailbox.
const WRITE_THRESHOLD: usize = 64 * 1024;
/// The connection process' clock: timers (reconnect, handshake deadline, PING, sweep) are
/// checked this often.
const TICK: Duration = Duration::from_millis(25);
/// How often the connection process forgets subscribers and requesters whose process ended.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Size of the reader's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// A process and a tag in it: where the connection process sends one kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Addr {
    node: u64,
    process: u64,
    tag: i64,
}

impl Addr {
    /// The current process with a fresh tag.
    fn fresh() -> Addr {
        let this = host::this();
        Addr {
            node: this.node,
            process: this.id,
            tag: Tag::new().id(),
        }
    }

    /// Sends `value` there (a process that has ended drops it); the receiver waits on this tag
    /// for exactly this type.
    fn send<T: Serialize + DeserializeOwned>(&self, value: &T) {
        if let Err(err) = host::send(self.process, self.tag, value) {
            eprintln!("swarm: nats: a message does not encode: {err}");
        }
    }
}

/// The connection process' mailbox messages.
#[derive(Serialize, Deserialize)]
enum Command {
    /// Encoded PUB/HPUB bytes; `size` is headers + payload for the `max_payload` check.
    Publish {
        bytes: Vec<u8>,
        size: usize,
    },
    /// A request's PUB/HPUB to `subject` with reply subject `<inbox prefix><token>`.
    Request {
        token: String,
        subject: String,
        bytes: Vec<u8>,
        size: usize,
        reply: Addr,
    },
    /// Forget a request that timed out, then answer `()` on `ack`.
    Cancel {
        token: String,
        ack: Addr,
    },
    Subscribe {
        subject: String,
        queue: Option<String>,
        deliver: Addr,
        ack: Addr,
    },
    Unsubscribe {
        sid: u64,
        ack: Option<Addr>,
    },
    /// Forget the subscription delivering to `deliver` (its subscribe call timed out).
    Forget {
        deliver: Addr,
    },
    Flush {
        ack: Addr,
    },
    Status {
        ack: Addr,
    },
    Close {
        ack: Addr,
    },
    /// Time passes (sent by the connection process to itself every `TICK`).
    Tick,
    /// Write what is buffered (sent by the connection process to itself, see `Conn::run`).
    WriteMarker,
    /// Ops the reader of connection `generation` parsed.
    Inbound {
        generation: u64,
        events: Vec<Inbound>,
    },
}

/// What the reader saw.
#[derive(Debug, Serialize, Deserialize)]
enum Inbound {
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    Info(String),
    Err(String),
    /// A WebSocket ping to answer.
    WsPing(Vec<u8>),
    /// The socket is finished (EOF, error, WebSocket close, lost framing); the reader ended.
    Broken(String),
}

/// A message for a subscription, numbered per subscription so that the subscriber can restore
/// the order if Lunatic moved one to the back of its mailbox (see `Subscription::take`).
#[derive(Serialize, Deserialize)]
struct Delivery {
    seq: u64,
    msg: Msg,
}

/// The answer to a request, sent to the requester.
#[derive(Serialize, Deserialize)]
enum Reply {
    Msg(Msg),
    Failed(Failure),
}

/// The answer to the initial connect.
#[derive(Serialize, Deserialize)]
struct Connected {
    max_payload: u64,
    inbox_prefix: String,
}

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

/// Why a wait ended without the answer.
enum WaitFailed {
    TimedOut,
    Gone,
}

/// Waits for a message tagged `tag` in the current process, noticing if process `watch` (the
/// connection process) ends: `runtime::mailbox`'s wait loop, for bare values.
fn wait_tagged<T: Serialize + DeserializeOwned>(
    tag: i64,
    watch: u64,
    timeout: Option<Duration>,
) -> Result<T, WaitFailed> {
    match wait_value::<T>(tag, watch, timeout) {
        Ok(value) => Ok(value),
        Err(WaitError::TimedOut(_)) => Err(WaitFailed::TimedOut),
        // A value that does not decode cannot come (the tag is fresh and typed): treat it as a
        // connection that went away rather than wait for ever.
        Err(_) => Err(WaitFailed::Gone),
    }
}

/// Takes a message tagged `tag` that is already in the mailbox, without waiting.
fn receive_now<T: Serialize + DeserializeOwned>(tag: i64) -> Option<T> {
    if host::receive(&[tag], Some(Duration::ZERO)) == Received::Data {
        host::decode::<T>().ok()
    } else {
        None
    }
}

/// Drops every message tagged `tag` already in the mailbox (late replies after a cancel).
fn drain_tag(tag: i64) {
    for _ in 0..10_000 {
        if host::receive(&[tag], Some(Duration::ZERO)) != Received::Data {
            break;
        }
    }
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
        let conn =
            crate::runtime::process::spawn((options, reply), connection_main).map_err(|err| {
                NatsError::Connect {
                    server: "(none tried)".into(),
                    reason: err.to_string(),
                }
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
            Ok(Ok(sid)) => Ok(Subscription {
                client: self.clone(),
                sid,
                tag: deliver.tag,
                subject: subject.to_owned(),
                active: true,
                expected: Cell::new(0),
                early: RefCell::new(BTreeMap::new()),
            }),
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

/// A subscription; its messages arrive in the mailbox of the process that subscribed, under a
/// tag of its own, so only that process can receive them. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    client: NatsClient,
    sid: u64,
    tag: i64,
    subject: String,
    active: bool,
    /// Sequence number of the next message to hand out.
    expected: Cell<u64>,
    /// Messages that arrived before an earlier one (see `take`).
    early: RefCell<BTreeMap<u64, Msg>>,
}

impl Subscription {
    /// The subscription id on the connection.
    pub fn sid(&self) -> u64 {
        self.sid
    }

    /// The subject subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Waits for the next message; `None` once the client is closed. The subscription survives
    /// reconnects (it is subscribed again on the new connection).
    pub fn next(&self) -> Option<Msg> {
        self.take(None, false).ok()
    }

    /// Waits up to `timeout` for the next message: [`NatsError::TimedOut`] if none came,
    /// [`NatsError::Closed`] once the client is closed.
    pub fn next_timeout(&self, timeout: Duration) -> Result<Msg, NatsError> {
        self.take(Some(timeout), false).map_err(|e| match e {
            WaitFailed::Gone => NatsError::Closed,
            WaitFailed::TimedOut => NatsError::TimedOut {
                what: format!("next message on {:?}", self.subject),
                timeout,
            },
        })
    }

    /// Takes a message already in the mailbox, without waiting.
    pub fn try_next(&self) -> Option<Msg> {
        self.take(None, true).ok()
    }

    /// The next message in order. The connection process numbers each subscription's messages
    /// and sends them in order, but Lunatic 0.13 may move one message to the back of the
    /// mailbox when it arrives just as a timed receive gives up (it keeps the message, out of
    /// order). When a number is skipped, the missing one can only be further back in the
    /// mailbox: take everything queued, then hand out in order.
    fn take(&self, timeout: Option<Duration>, nowait: bool) -> Result<Msg, WaitFailed> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let expected = self.expected.get();
            if let Some(msg) = self.early.borrow_mut().remove(&expected) {
                self.expected.set(expected + 1);
                return Ok(msg);
            }
            let delivery = if nowait {
                receive_now::<Delivery>(self.tag).ok_or(WaitFailed::TimedOut)?
            } else {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                wait_tagged::<Delivery>(self.tag, self.client.conn, left)?
            };
            if delivery.seq == expected {
                self.expected.set(expected + 1);
                return Ok(delivery.msg);
            }
            if delivery.seq < expected {
                return Ok(delivery.msg);
            }
            let mut early = self.early.borrow_mut();
            early.insert(delivery.seq, delivery.msg);
            while let Some(d) = receive_now::<Delivery>(self.tag) {
                early.insert(d.seq, d.msg);
            }
            if !early.contains_key(&expected) {
                // Not there after all (cannot happen): go on with the oldest we have.
                if let Some(first) = early.keys().next() {
                    self.expected.set(*first);
                }
            }
        }
    }

    /// Stops the subscription; waits until the connection process has forgotten it, then
    /// drops messages that were already delivered.
    pub fn unsubscribe(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if !self.active {
            return;
        }
        self.active = false;
        let ack = Addr::fresh();
        if self
            .client
            .command(Command::Unsubscribe {
                sid: self.sid,
                ack: Some(ack),
            })
            .is_ok()
        {
            let _ = wait_tagged::<()>(ack.tag, self.client.conn, Some(self.client.op_timeout));
        }
        drain_tag(self.tag);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The connection process.

struct Sub {
    subject: String,
    queue: Option<String>,
    deliver: Addr,
    /// Sequence number of the next delivery (see [`Delivery`]).
    next_seq: u64,
}

/// What a PONG answers, in the order the PINGs were sent.
enum PongWaiter {
    /// A `flush`; `denied` is the first publish the server refused while it waited (see
    /// `Conn::permission_violation`).
    Flush {
        ack: Addr,
        denied: Option<Failure>,
    },
    SubAck {
        ack: Addr,
        sid: u64,
    },
    KeepAlive,
}

/// The socket of one connection: TCP (`nats://`, `ws://`) or TLS (`tls://`). Clones are
/// handles to the same socket: the connection process writes through one while the reader
/// process reads through another (the runtime locks reads and writes of a socket separately, TLS
/// included), and the reader's handle moves into its process with its spawn message.
#[derive(Clone, Serialize, Deserialize)]
enum Stream {
    Tcp(TcpStream),
    Tls(TlsStream),
}

impl Stream {
    /// Connects to `addr`; for `tls://`, with the TLS handshake and the server's certificate
    /// checked against `tls_ca` (see `tls::dial`). `Err` says why not.
    fn open(addr: &ServerAddr, tls_ca: Option<&str>, timeout: Duration) -> Result<Stream, String> {
        match addr.transport {
            Transport::Tcp | Transport::WebSocket => {
                TcpStream::connect_timeout(addr.socket_addr().as_str(), timeout)
                    .map(Stream::Tcp)
                    .map_err(|e| e.to_string())
            }
            Transport::Tls => tls::dial::dial(addr, tls_ca, timeout).map(Stream::Tls),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Tls(s) => s.set_write_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

enum Link {
    /// No socket; try again at `retry_at`.
    Down {
        retry_at: Instant,
    },
    /// Socket open, waiting for INFO then PONG.
    Handshake {
        stream: Stream,
        reader: u64,
        deadline: Instant,
        got_info: bool,
    },
    Up {
        stream: Stream,
        reader: u64,
    },
}

struct Conn {
    options: ConnectOptions,
    this: u64,
    inbox_prefix: String,
    link: Link,
    generation: u64,
    /// Server index of the current or last attempt.
    server: usize,
    /// Attempts since the last successful connection.
    failures: u32,
    /// Attempts of the initial connect (one per server), while `connect_reply` is pending.
    connect_reply: Option<Addr>,
    initial_attempts: usize,
    /// Bytes waiting to be written (publishes are kept here while disconnected).
    out: Vec<u8>,
    subs: BTreeMap<u64, Sub>,
    next_sid: u64,
    /// Requests waiting for a reply: token -> (requester, subject).
    requests: HashMap<String, (Addr, String)>,
    /// The inbox subscription the server refused on this connection (the user may not
    /// subscribe to `_INBOX.>`): requests cannot get replies, so they fail at once.
    inbox_denied: Option<String>,
    pongs: VecDeque<(Instant, PongWaiter)>,
    next_ping: Instant,
    next_sweep: Instant,
    max_payload: u64,
    reconnects: u64,
    dropped: u64,
    last_error: Option<String>,
    closing: bool,
    marker_pending: bool,
    close_ack: Option<Addr>,
    salt: u64,
}

fn connection_main((options, reply): (ConnectOptions, Addr)) {
    let now = Instant::now();
    let mut conn = Conn {
        this: lunatic::host::process_id(),
        inbox_prefix: format!("_INBOX.{}.", random_token(22)),
        link: Link::Down { retry_at: now },
        generation: 0,
        server: 0,
        failures: 0,
        connect_reply: Some(reply),
        initial_attempts: 0,
        out: Vec::new(),
        subs: BTreeMap::new(),
        next_sid: INBOX_SID + 1,
        requests: HashMap::new(),
        inbox_denied: None,
        pongs: VecDeque::new(),
        next_ping: now + options.ping_interval,
        next_sweep: now + SWEEP_EVERY,
        max_payload: DEFAULT_MAX_PAYLOAD,
        reconnects: 0,
        dropped: 0,
        last_error: None,
        closing: false,
        marker_pending: false,
        close_ack: None,
        salt: 0,
        options,
    };
    conn.run();
}

impl Conn {
    /// The loop. It only ever blocks in a receive *without* timeout: Lunatic 0.13 can lose the
    /// race between a timed receive ending and a message arriving, and then puts that message at
    /// the back of the mailbox, which would reorder commands. Time comes in as `Tick` messages
    /// the process sends itself; writes are coalesced by sending itself a `WriteMarker`, which
    /// arrives after every message already queued, so one `write` carries all of them.
    fn run(&mut self) {
        self.on_timers();
        self.schedule_tick();
        while !self.closing {
            match receive() {
                Some(Command::Tick) => {
                    self.on_timers();
                    self.schedule_tick();
                }
                Some(Command::WriteMarker) => {
                    self.marker_pending = false;
                    self.write_out();
                }
                Some(command) => self.handle(command),
                None => {}
            }
            if self.out.len() >= WRITE_THRESHOLD {
                self.write_out();
            } else if !self.out.is_empty() && !self.marker_pending && !self.closing {
                self.marker_pending = true;
                self.to_myself(&Command::WriteMarker);
            }
        }
        self.shutdown();
    }

    fn to_myself(&self, command: &Command) {
        let _small_commands_encode = host::send(self.this, 0, command);
    }

    fn schedule_tick(&self) {
        let _small_commands_encode = host::send_after(self.this, 0, &Command::Tick, TICK);
    }

    fn jitter(&mut self) -> u64 {
        self.salt += 1;
        random_u64(self.salt)
    }

    fn is_ws(&self) -> bool {
        self.options.servers[self.server % self.options.servers.len()].transport
            == Transport::WebSocket
    }

    fn server_name(&self) -> String {
        self.options.servers[self.server % self.options.servers.len()].to_string()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_sweep {
            self.sweep();
            self.next_sweep = now + SWEEP_EVERY;
        }
        match &self.link {
            Link::Down { retry_at } if now >= *retry_at => self.attempt(),
            Link::Handshake { deadline, .. } if now >= *deadline => {
                self.lost("the handshake timed out".into());
            }
            Link::Up { .. } if now >= self.next_ping => {
                let limit = self.options.ping_interval * self.options.max_pings_out;
                let stale = self
                    .pongs
                    .front()
                    .is_some_and(|(sent, _)| now.duration_since(*sent) >= limit);
                if stale {
                    self.lost("the server did not answer PINGs (stale connection)".into());
                } else {
                    encode_ping(&mut self.out);
                    self.pongs.push_back((now, PongWaiter::KeepAlive));
                    self.next_ping = now + self.options.ping_interval;
                }
            }
            _ => {}
        }
    }

    /// Forgets subscribers and requesters whose process has ended.
    fn sweep(&mut self) {
        let dead: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| !process_exists(s.deliver.process))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in dead {
            self.subs.remove(&sid);
            if matches!(self.link, Link::Up { .. }) {
                encode_unsub(&mut self.out, sid, None);
            }
        }
        self.requests.retain(|_, (a, _)| process_exists(a.process));
    }

    /// Opens a socket to the next server and starts its reader; the handshake continues as
    /// the reader reports INFO and PONG.
    fn attempt(&mut self) {
        if let Some(max) = self.options.max_reconnects {
            if self.connect_reply.is_none() && self.failures > max {
                self.last_error = Some(format!("gave up after {max} reconnect attempts"));
                self.closing = true;
                return;
            }
        }
        let addr = self.options.servers[self.server % self.options.servers.len()].clone();
        self.generation += 1;
        let timeout = self.options.connect_timeout;
        let stream = match Stream::open(&addr, self.options.tls_ca.as_deref(), timeout) {
            Ok(s) => s,
            Err(reason) => {
                self.failed_attempt(reason);
                return;
            }
        };
        let mut writer = stream.clone();
        let ws_key = match addr.transport {
            Transport::Tcp | Transport::Tls => None,
            Transport::WebSocket => {
                let mut nonce = [0u8; 16];
                nonce[..8].copy_from_slice(&self.jitter().to_le_bytes());
                nonce[8..].copy_from_slice(&self.jitter().to_le_bytes());
                let key = ws::handshake_key(nonce);
                let request = ws::handshake_request(&addr.host, addr.port, &addr.path, &key);
                if let Err(e) = writer.write_all(&request) {
                    self.failed_attempt(format!("WebSocket upgrade request: {e}"));
                    return;
                }
                Some(key)
            }
        };
        let _ = writer.set_write_timeout(Some(Duration::from_secs(10)));
        let args = ReaderArgs {
            stream,
            conn: self.this,
            generation: self.generation,
            ws_key,
        };
        // A reader the node has no room for is a failed attempt like any other: retried with
        // backoff, never the end of the connection process.
        let reader = match crate::runtime::process::spawn(args, reader_main) {
            Ok(id) => id,
            Err(err) => {
                self.failed_attempt(format!("cannot start the reader: {err}"));
                return;
            }
        };
        self.link = Link::Handshake {
            stream: writer,
            reader,
            deadline: Instant::now() + timeout,
            got_info: false,
        };
    }

    fn failed_attempt(&mut self, reason: String) {
        let server = self.server_name();
        self.last_error = Some(format!("{server}: {reason}"));
        self.server += 1;
        self.failures += 1;
        if let Some(reply) = self.connect_reply {
            self.initial_attempts += 1;
            if self.initial_attempts >= self.options.servers.len() {
                reply.send::<Result<Connected, Failure>>(&Err(Failure::Connect { server, reason }));
                self.connect_reply = None;
                self.closing = true;
                return;
            }
        }
        let jitter = self.jitter();
        let delay = self
            .options
            .backoff
            .delay(self.failures.saturating_sub(1), jitter);
        let delay = if self.connect_reply.is_some() {
            Duration::ZERO
        } else {
            delay
        };
        self.link = Link::Down {
            retry_at: Instant::now() + delay,
        };
    }

    /// Kills the reader, marks the link down, and answers everyone waiting on the server with
    /// `failure`; subscriptions waiting for their confirmation are confirmed when they are kept
    /// for the next connection (`keep_subscriptions`), failed otherwise.
    fn drop_link(&mut self, failure: Failure, keep_subscriptions: bool) {
        let link = std::mem::replace(
            &mut self.link,
            Link::Down {
                retry_at: Instant::now(),
            },
        );
        match link {
            Link::Handshake { reader, .. } | Link::Up { reader, .. } => host::kill(reader),
            Link::Down { .. } => {}
        }
        for (_, (reply, _)) in self.requests.drain() {
            reply.send(&Reply::Failed(failure.clone()));
        }
        for (_, waiter) in self.pongs.drain(..) {
            match waiter {
                PongWaiter::Flush { ack, .. } => {
                    ack.send::<Result<(), Failure>>(&Err(failure.clone()))
                }
                PongWaiter::SubAck { ack, sid } if keep_subscriptions => {
                    ack.send::<Result<u64, Failure>>(&Ok(sid))
                }
                PongWaiter::SubAck { ack, .. } => {
                    ack.send::<Result<u64, Failure>>(&Err(failure.clone()))
                }
                PongWaiter::KeepAlive => {}
            }
        }
    }

    /// The connection is gone (or the attempt failed): fail what waits on it, plan a retry.
    fn lost(&mut self, reason: String) {
        let was_up = matches!(self.link, Link::Up { .. });
        // Subscriptions stay: they are subscribed again on the next connection.
        self.drop_link(Failure::Disconnected, true);
        if was_up {
            // What was buffered may be half written: drop it rather than corrupt the next stream.
            if !self.out.is_empty() {
                self.dropped += 1;
                self.out.clear();
            }
            self.last_error = Some(format!("{}: {reason}", self.server_name()));
            self.server += 1;
            self.failures = 0;
            self.link = Link::Down {
                retry_at: Instant::now(),
            };
        } else {
            self.failed_attempt(reason);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Publish { bytes, size } => {
                self.queue_publish(bytes, size, None);
            }
            Command::Request {
                token,
                subject,
                bytes,
                size,
                reply,
            } => {
                if !matches!(self.link, Link::Up { .. }) {
                    reply.send(&Reply::Failed(Failure::NotConnected));
                    return;
                }
                if let Some(inbox) = &self.inbox_denied {
                    reply.send(&Reply::Failed(Failure::PermissionDenied {
                        operation: PermissionAction::Subscribe,
                        subject: inbox.clone(),
                    }));
                    return;
                }
                if self.queue_publish(bytes, size, Some(reply)) {
                    self.requests.insert(token, (reply, subject));
                }
            }
            Command::Cancel { token, ack } => {
                self.requests.remove(&token);
                ack.send(&());
            }
            Command::Subscribe {
                subject,
                queue,
                deliver,
                ack,
            } => {
                let sid = self.next_sid;
                self.next_sid += 1;
                if matches!(self.link, Link::Up { .. }) {
                    if let Err(e) = encode_sub(&mut self.out, &subject, queue.as_deref(), sid) {
                        ack.send::<Result<u64, Failure>>(&Err(Failure::Server(e.to_string())));
                        return;
                    }
                    encode_ping(&mut self.out);
                    self.pongs
                        .push_back((Instant::now(), PongWaiter::SubAck { ack, sid }));
                } else {
                    ack.send::<Result<u64, Failure>>(&Ok(sid));
                }
                self.subs.insert(
                    sid,
                    Sub {
                        subject,
                        queue,
                        deliver,
                        next_seq: 0,
                    },
                );
            }
            Command::Forget { deliver } => {
                let sids: Vec<u64> = self
                    .subs
                    .iter()
                    .filter(|(_, s)| s.deliver == deliver)
                    .map(|(sid, _)| *sid)
                    .collect();
                for sid in sids {
                    self.subs.remove(&sid);
                    if matches!(self.link, Link::Up { .. }) {
                        encode_unsub(&mut self.out, sid, None);
                    }
                }
            }
            Command::Unsubscribe { sid, ack } => {
                if self.subs.remove(&sid).is_some() && matches!(self.link, Link::Up { .. }) {
                    encode_unsub(&mut self.out, sid, None);
                }
                if let Some(ack) = ack {
                    ack.send(&());
                }
            }
            Command::Flush { ack } => {
                if matches!(self.link, Link::Up { .. }) {
                    encode_ping(&mut self.out);
                    self.pongs
                        .push_back((Instant::now(), PongWaiter::Flush { ack, denied: None }));
                } else {
                    ack.send::<Result<(), Failure>>(&Err(Failure::NotConnected));
                }
            }
            Command::Status { ack } => {
                let state = match self.link {
                    Link::Up { .. } => ConnState::Connected,
                    Link::Handshake { .. } => ConnState::Handshaking,
                    Link::Down { .. } => ConnState::Disconnected,
                };
                ack.send(&ClientStatus {
                    state,
                    server: self.server_name(),
                    max_payload: self.max_payload,
                    reconnects: self.reconnects,
                    dropped: self.dropped,
                    subscriptions: self.subs.len(),
                    pending_requests: self.requests.len(),
                    last_error: self.last_error.clone(),
                });
            }
            Command::Tick | Command::WriteMarker => {}
            Command::Close { ack } => {
                self.closing = true;
                self.close_ack = Some(ack);
            }
            Command::Inbound { generation, events } => {
                if generation != self.generation {
                    return;
                }
                for event in events {
                    self.inbound(event);
                    if generation != self.generation {
                        return;
                    }
                }
            }
        }
    }

    /// Buffers a PUB; `false` (and the requester told) if it cannot be sent.
    fn queue_publish(&mut self, bytes: Vec<u8>, size: usize, requester: Option<Addr>) -> bool {
        if let Err(e) = check_payload_size(size, self.max_payload) {
            // The handle checked against the first server's limit; this one is smaller.
            self.dropped += 1;
            self.last_error = Some(e.to_string());
            if let Some(reply) = requester {
                reply.send(&Reply::Failed(Failure::PayloadTooLarge {
                    size: e.size,
                    max_payload: e.max_payload,
                }));
            }
            return false;
        }
        if !matches!(self.link, Link::Up { .. })
            && self.out.len() + bytes.len() > self.options.max_buffer
        {
            self.dropped += 1;
            return false;
        }
        self.out.extend_from_slice(&bytes);
        true
    }

    fn inbound(&mut self, event: Inbound) {
        match event {
            Inbound::Msg(msg) => self.route(msg),
            Inbound::Ping => encode_pong(&mut self.out),
            Inbound::Ok => {}
            Inbound::WsPing(payload) => {
                if let Link::Up { stream, .. } | Link::Handshake { stream, .. } = &mut self.link {
                    let mut frame = Vec::new();
                    ws::encode_frame(&mut frame, ws::OP_PONG, &payload, mask(self.salt ^ 0xa5));
                    let _ = stream.write_all(&frame);
                }
            }
            Inbound::Pong => {
                if matches!(self.link, Link::Handshake { got_info: true, .. }) {
                    self.up();
                    return;
                }
                if let Some((_, waiter)) = self.pongs.pop_front() {
                    match waiter {
                        PongWaiter::Flush { ack, denied } => {
                            ack.send::<Result<(), Failure>>(&denied.map_or(Ok(()), Err))
                        }
                        PongWaiter::SubAck { ack, sid } => {
                            let result = if self.subs.contains_key(&sid) {
                                Ok(sid)
                            } else {
                                Err(Failure::Server(self.last_error.clone().unwrap_or_default()))
                            };
                            ack.send::<Result<u64, Failure>>(&result);
                        }
                        PongWaiter::KeepAlive => {}
                    }
                }
            }
            Inbound::Info(json) => match ServerInfo::parse(&json) {
                Ok(info) => {
                    if info.max_payload > 0 {
                        self.max_payload = info.max_payload;
                    }
                    let hello = self.hello(info.nonce.as_deref());
                    let ws = self.is_ws();
                    let salt = self.jitter();
                    let mut failed = None;
                    if let Link::Handshake {
                        stream, got_info, ..
                    } = &mut self.link
                    {
                        if !*got_info {
                            *got_info = true;
                            match hello {
                                Ok(hello) => {
                                    let bytes = if ws {
                                        frame_binary(&hello, salt)
                                    } else {
                                        hello
                                    };
                                    if let Err(e) = stream.write_all(&bytes) {
                                        failed = Some(format!("writing CONNECT: {e}"));
                                    }
                                }
                                Err(e) => failed = Some(e.to_string()),
                            }
                        }
                    }
                    if let Some(reason) = failed {
                        self.lost(reason);
                    }
                }
                Err(e) => self.last_error = Some(format!("unreadable INFO: {e}")),
            },
            Inbound::Err(text) => {
                let error = ServerError::parse(&text);
                self.last_error = Some(error.message.clone());
                if matches!(self.link, Link::Handshake { .. }) || error.is_fatal() {
                    self.lost(format!("server error: {}", error.message));
                    return;
                }
                if let ServerErrorKind::PermissionViolation {
                    action,
                    subject: Some(subject),
                    ..
                } = error.kind
                {
                    self.permission_violation(action, subject);
                }
            }
            Inbound::Broken(reason) => self.lost(reason),
        }
    }

    /// The server refused one operation and keeps the connection (`-ERR 'Permissions Violation
    /// for ...'`, naming the subject). Whoever waits on that operation gets `PermissionDenied`
    /// now, instead of a timeout or a silent drop:
    /// - a refused SUB: the `subscribe` still waiting for its confirmation (the subscription is
    ///   forgotten). A refused inbox SUB fails every request now, and the next ones at once,
    ///   until the next connection subscribes the inbox again;
    /// - a refused PUB (the subject, or the reply subject): the requests to that subject (or
    ///   with that reply subject), and every `flush` waiting. The server answers in order, so
    ///   the refused PUB was sent before each waiting flush's PING.
    fn permission_violation(&mut self, action: PermissionAction, subject: String) {
        let denied = Failure::PermissionDenied {
            operation: action,
            subject: subject.clone(),
        };
        match action {
            PermissionAction::Subscribe if subject == format!("{}*", self.inbox_prefix) => {
                for (_, (reply, _)) in self.requests.drain() {
                    reply.send(&Reply::Failed(denied.clone()));
                }
                self.inbox_denied = Some(subject);
            }
            PermissionAction::Subscribe => {
                for (_, waiter) in self.pongs.iter_mut() {
                    let PongWaiter::SubAck { ack, sid } = *waiter else {
                        continue;
                    };
                    if self.subs.get(&sid).is_some_and(|s| s.subject == subject) {
                        self.subs.remove(&sid);
                        ack.send::<Result<u64, Failure>>(&Err(denied.clone()));
                        // Its PONG still comes; nobody waits for it any more.
                        *waiter = PongWaiter::KeepAlive;
                    }
                }
            }
            PermissionAction::Publish | PermissionAction::Reply => {
                let refused: Vec<String> = self
                    .requests
                    .iter()
                    .filter(|(token, (_, request_subject))| match action {
                        PermissionAction::Reply => {
                            subject.strip_prefix(self.inbox_prefix.as_str()) == Some(token.as_str())
                        }
                        _ => *request_subject == subject,
                    })
                    .map(|(token, _)| token.clone())
                    .collect();
                for token in refused {
                    if let Some((reply, _)) = self.requests.remove(&token) {
                        reply.send(&Reply::Failed(denied.clone()));
                    }
                }
                for (_, waiter) in self.pongs.iter_mut() {
                    if let PongWaiter::Flush {
                        denied: slot @ None,
                        ..
                    } = waiter
                    {
                        *slot = Some(denied.clone());
                    }
                }
            }
        }
    }

    /// CONNECT and PING, the client's half of the handshake. Credentials go into CONNECT; for
    /// nkey and JWT users that includes the signature of the INFO's `nonce`, made here, so the
    /// seed never leaves this process.
    fn hello(&self, nonce: Option<&str>) -> Result<Vec<u8>, auth::AuthError> {
        let mut connect = Connect {
            name: self.options.name.clone(),
            echo: self.options.echo,
            lang: "rust-swarm-lunatic".into(),
            ..Connect::default()
        };
        // `connect` checked the credentials before starting this process; should signing fail
        // anyway, the attempt fails with the reason.
        auth::fill_connect(&self.options.auth, nonce, &mut connect)?;
        let mut out = Vec::new();
        // Cannot fail: the options serialize as JSON.
        let _ = encode_connect(&mut out, &connect);
        encode_ping(&mut out);
        Ok(out)
    }

    /// The handshake completed: subscribe the inbox and every subscription again, then send
    /// what was buffered.
    fn up(&mut self) {
        let Link::Handshake { stream, reader, .. } = std::mem::replace(
            &mut self.link,
            Link::Down {
                retry_at: Instant::now(),
            },
        ) else {
            return;
        };
        self.link = Link::Up { stream, reader };
        // The inbox is subscribed again below; the server says again if it refuses it.
        self.inbox_denied = None;
        let mut head = Vec::new();
        let inbox = format!("{}*", self.inbox_prefix);
        let _ = encode_sub(&mut head, &inbox, None, INBOX_SID);
        for (sid, sub) in &self.subs {
            let _ = encode_sub(&mut head, &sub.subject, sub.queue.as_deref(), *sid);
        }
        head.append(&mut self.out);
        self.out = head;
        self.failures = 0;
        self.initial_attempts = 0;
        self.next_ping = Instant::now() + self.options.ping_interval;
        match self.connect_reply.take() {
            Some(reply) => reply.send::<Result<Connected, Failure>>(&Ok(Connected {
                max_payload: self.max_payload,
                inbox_prefix: self.inbox_prefix.clone(),
            })),
            None => self.reconnects += 1,
        }
    }

    fn route(&mut self, msg: Msg) {
        if msg.sid == INBOX_SID {
            let token = msg.subject.strip_prefix(self.inbox_prefix.as_str());
            if let Some((reply, _)) = token.and_then(|t| self.requests.remove(t)) {
                reply.send(&Reply::Msg(msg));
            }
            return;
        }
        if let Some(sub) = self.subs.get_mut(&msg.sid) {
            let seq = sub.next_seq;
            sub.next_seq += 1;
            sub.deliver.send(&Delivery { seq, msg });
        }
    }

    fn write_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let ws = self.is_ws();
        let salt = if ws { self.jitter() } else { 0 };
        let Link::Up { stream, .. } = &mut self.link else {
            return;
        };
        let result = if ws {
            let framed = frame_binary(&self.out, salt);
            stream.write_all(&framed)
        } else {
            stream.write_all(&self.out)
        };
        match result {
            Ok(()) => {
                if self.out.capacity() > 4 * WRITE_THRESHOLD {
                    self.out = Vec::new();
                } else {
                    self.out.clear();
                }
            }
            Err(e) => self.lost(format!("write failed: {e}")),
        }
    }

    fn shutdown(&mut self) {
        self.write_out();
        self.drop_link(Failure::Closed, false);
        if let Some(ack) = self.close_ack.take() {
            ack.send(&());
        }
    }
}

/// A WebSocket masking key from a random number.
fn mask(random: u64) -> [u8; 4] {
    (random as u32).to_le_bytes()
}

fn frame_binary(data: &[u8], random: u64) -> Vec<u8> {
    let mut framed = Vec::with_capacity(data.len() + 14);
    ws::encode_frame(&mut framed, ws::OP_BINARY, data, mask(random));
    framed
}

/// Waits for the next command. `None` for signals and messages that are not a `Command`.
fn receive() -> Option<Command> {
    // No tags: any message; no timeout (see `Conn::run`).
    if host::receive(&[], None) == Received::Data {
        host::decode::<Command>().ok()
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The reader process.

#[derive(Serialize, Deserialize)]
struct ReaderArgs {
    stream: Stream,
    conn: u64,
    generation: u64,
    /// `Some(key)` for WebSocket: check the upgrade answer first, then unwrap frames.
    ws_key: Option<String>,
}

fn reader_main(args: ReaderArgs) {
    let ReaderArgs {
        mut stream,
        conn,
        generation,
        ws_key,
    } = args;
    let send = |events: Vec<Inbound>| {
        let inbound = Command::Inbound { generation, events };
        if let Err(err) = host::send(conn, 0, &inbound) {
            eprintln!("swarm: nats: the reader could not hand on what it read: {err}");
        }
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let mut parser = ServerOpParser::new();
    let mut frames = ws_key.as_ref().map(|_| ws::FrameDecoder::new());
    let mut head: Vec<u8> = Vec::new();
    let mut upgraded = ws_key.is_none();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                send(vec![Inbound::Broken(
                    "the server closed the connection".into(),
                )]);
                return;
            }
            Ok(n) => n,
            Err(e) => {
                send(vec![Inbound::Broken(format!("read failed: {e}"))]);
                return;
            }
        };
        if !process_exists(conn) {
            return;
        }
        let mut events = Vec::new();
        let mut data = &buf[..n];
        if !upgraded {
            head.extend_from_slice(data);
            match ws::check_handshake(&head, ws_key.as_deref().unwrap_or_default()) {
                Ok(None) => continue,
                Ok(Some(len)) => {
                    upgraded = true;
                    let rest = head.split_off(len);
                    head = rest;
                    data = &head;
                }
                Err(e) => {
                    send(vec![Inbound::Broken(e.to_string())]);
                    return;
                }
            }
        }
        let mut broken = None;
        match &mut frames {
            Some(decoder) => {
                decoder.feed(data);
                loop {
                    match decoder.next_event() {
                        Ok(Some(ws::WsEvent::Data(bytes))) => parser.feed(&bytes),
                        Ok(Some(ws::WsEvent::Ping(p))) => events.push(Inbound::WsPing(p)),
                        Ok(Some(ws::WsEvent::Pong)) => {}
                        Ok(Some(ws::WsEvent::Close(code, reason))) => {
                            broken = Some(format!(
                                "WebSocket closed by the server ({code:?} {reason})"
                            ));
                            break;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(e.to_string());
                            break;
                        }
                    }
                }
                head.clear();
            }
            None => parser.feed(data),
        }
        loop {
            match parser.next_op() {
                Ok(Some(op)) => events.push(match op {
                    ServerOp::Msg(m) => Inbound::Msg(m),
                    ServerOp::Ping => Inbound::Ping,
                    ServerOp::Pong => Inbound::Pong,
                    ServerOp::Ok => Inbound::Ok,
                    ServerOp::Info(info) => Inbound::Info(info.raw.clone()),
                    ServerOp::Err(e) => Inbound::Err(format!("'{}'", e.message)),
                }),
                Ok(None) => break,
                Err(e) if e.is_fatal() => {
                    broken = Some(format!("protocol error: {e}"));
                    break;
                }
                // One bad line or message, skipped by the parser.
                Err(_) => continue,
            }
        }
        let done = broken.is_some();
        if let Some(reason) = broken {
            events.push(Inbound::Broken(reason));
        }
        if !events.is_empty() {
            send(events);
        }
        if done {
            return;
        }
    }
}

//! [`NatsClient`]: the handle users hold, usable from any process of the node.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::messages::{publish_tag, Command, Connected, Reply, ID_DIGITS};
use super::subscription::Subscription;
use super::{connection, drain_tag, wait_tagged, Addr, ClientStatus, WaitFailed};
use crate::nats::auth;
use crate::nats::codec::{check_payload_size, encode_hpub, encode_pub, encode_sub, Headers, Msg};
use crate::nats::options::{ConnectOptions, Failure, NatsError};
use crate::runtime::host;
use crate::runtime::mailbox::{process_exists, send_wait_value};

thread_local! {
    /// Where this process encodes its publishes (a Lunatic process is single-threaded).
    static PUBLISH_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A publish buffer that grew past this (a large message) is not kept.
const KEPT_PUBLISH_BUFFER: usize = 64 * 1024;

/// A handle to a NATS connection. Cheap to clone, serializable (send it to other processes),
/// usable from any Lunatic process on this node. The connection lives until [`NatsClient::close`]
/// (or until reconnecting gives up, if `max_reconnects` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsClient {
    node: u64,
    pub(super) conn: u64,
    inbox_prefix: String,
    max_payload: u64,
    pub(super) op_timeout: Duration,
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

    pub(super) fn command(&self, command: Command) -> Result<(), NatsError> {
        if !process_exists(self.conn) {
            return Err(NatsError::Closed);
        }
        host::send(self.conn, 0, &command)
            .map_err(|err| NatsError::Server(format!("a command does not encode: {err}")))
    }

    /// The connection process: what tells two connections apart (one services-API instance per
    /// connection and namespace, see `discovery.rs`).
    pub(crate) fn connection_id(&self) -> u64 {
        self.conn
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

    /// Publishes a received message's payload and headers again, on `subject` with the reply
    /// subject `reply_to` (the front door forwarding a request to its agent's node: the request
    /// id and trace headers go along).
    pub(crate) fn forward(
        &self,
        subject: &str,
        reply_to: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
    ) -> Result<(), NatsError> {
        self.publish_inner(subject, reply_to, headers, payload)
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
        let size = headers.map_or(0, |h| h.wire_len()) + payload.len();
        check_payload_size(size, self.max_payload)?;
        PUBLISH_BUFFER.with(|buffer| {
            let mut bytes = buffer.borrow_mut();
            bytes.clear();
            match headers {
                Some(h) => encode_hpub(&mut bytes, subject, reply_to, h, payload)?,
                None => encode_pub(&mut bytes, subject, reply_to, payload)?,
            }
            if !process_exists(self.conn) {
                return Err(NatsError::Closed);
            }
            host::send_bytes(self.conn, publish_tag(size), &bytes);
            if bytes.capacity() > KEPT_PUBLISH_BUFFER {
                *bytes = Vec::new();
            }
            Ok(())
        })
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
        // The connection numbers the request (the reader's routing relies on numbers that only
        // grow) and writes the number over these zeros; the caller still encodes, so a bad
        // subject or an oversized payload fails here.
        let mut reply_subject = String::with_capacity(self.inbox_prefix.len() + ID_DIGITS);
        reply_subject.push_str(&self.inbox_prefix);
        reply_subject.extend(std::iter::repeat('0').take(ID_DIGITS));
        let (bytes, size) = self.encode(subject, Some(&reply_subject), headers, payload)?;
        let op = if headers.is_some() { "HPUB " } else { "PUB " };
        let id_at = op.len() + subject.len() + 1 + self.inbox_prefix.len();
        if !process_exists(self.conn) {
            return Err(NatsError::Closed);
        }
        let command = Command::Request {
            subject: subject.to_owned(),
            bytes,
            size,
            id_at,
            reply,
        };
        // One host call sends the request and starts waiting for its reply.
        let answer = send_wait_value::<_, Reply>(
            self.conn,
            0,
            &command,
            reply.tag,
            self.conn,
            Some(timeout),
        );
        match answer.map_err(WaitFailed::from) {
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
                if self.command(Command::Cancel { reply, ack }).is_ok() {
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

//! The connection process: protocol state, writes, PING/PONG, reconnects.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use super::connector::{frame_binary, mask, Stream};
use super::messages::{Addr, Command, Connected, Delivery, Inbound, Reply};
use super::reader::{reader_main, ReaderArgs};
use super::{ClientStatus, ConnState};
use crate::nats::auth;
use crate::nats::codec::{
    check_payload_size, encode_connect, encode_ping, encode_pong, encode_sub, encode_unsub,
    Connect, Msg, PermissionAction, ServerErrorKind, DEFAULT_MAX_PAYLOAD,
};
use crate::nats::options::{random_token, random_u64, ConnectOptions, Failure, Transport};
use crate::nats::ws;
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::process_exists;

/// The sid of the connection's muxed request inbox `_INBOX.<random>.*`.
const INBOX_SID: u64 = 1;
/// Write once this much is buffered, even if more messages wait in the mailbox.
const WRITE_THRESHOLD: usize = 64 * 1024;
/// The connection process' clock: timers (reconnect, handshake deadline, PING, sweep) are
/// checked this often.
const TICK: Duration = Duration::from_millis(25);
/// How often the connection process forgets subscribers and requesters whose process ended.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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

pub(super) fn connection_main((options, reply): (ConnectOptions, Addr)) {
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
            Inbound::Info(info) => {
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
            Inbound::BadInfo(reason) => {
                self.last_error = Some(format!("unreadable INFO: {reason}"))
            }
            Inbound::Err(error) => {
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

/// Waits for the next command. `None` for signals and messages that are not a `Command`.
fn receive() -> Option<Command> {
    // No tags: any message; no timeout (see `Conn::run`).
    if host::receive(&[], None) == Received::Data {
        host::decode::<Command>().ok()
    } else {
        None
    }
}

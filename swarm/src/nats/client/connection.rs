//! The connection process: the protocol state of one client connection.
//!
//! It is the only writer of the socket, owns the subscriptions (to subscribe them again after
//! a reconnect), numbers the requests, keeps PING/PONG and reconnects. Messages from the server
//! do not pass through it: the reader routes them (see `routing.rs`). The connection process
//! tells the reader of every routing change in a note sent *before* the SUB or PUB goes out,
//! and makes sure the reader reads each note in time (see `reader.rs`): a note that needs an
//! answer soon (an unsubscribe, a cancelled request, a status) is followed by a PING, and when
//! the reader reads its PONG it takes every note sent before.
//!
//! When a connection ends, its reader is told to stop: it fails the requests it routes, confirms
//! and ends. Until it has, acknowledgements that promise "nothing more will be delivered" wait
//! (see `Conn::ack_after_readers`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use lunatic::Tag;

use super::connector::{dial, hello, Stream};
use super::messages::{
    published_size, write_id, Addr, Command, Connected, Control, Note, Reply, RouteOp, Which,
    ID_DIGITS, NOTE_TAG, WRITE_MARKER_TAG,
};
use super::reader::{reader_main, ReaderArgs};
use super::routing::INBOX_SID;
use super::{ClientStatus, ConnState};
use crate::nats::codec::{
    check_payload_size, encode_ping, encode_pong, encode_sub, encode_unsub, PermissionAction,
    ServerErrorKind, ServerInfo, DEFAULT_MAX_PAYLOAD,
};
use crate::nats::options::{random_token, random_u64, ConnectOptions, Failure, Transport};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::process_exists;
use crate::runtime::process::spawn_linked;

/// Write once this much is buffered, even if more messages wait in the mailbox.
const WRITE_THRESHOLD: usize = 64 * 1024;
/// The connection process' clock: timers (reconnect, handshake deadline, PING, sweep) are
/// checked this often.
const TICK: Duration = Duration::from_millis(25);
/// How often the connection process forgets subscribers whose process ended.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a reader told to stop has to confirm before it is killed (it may be blocked reading
/// a socket that no longer answers).
const STOP_GRACE: Duration = Duration::from_secs(1);

struct Sub {
    subject: String,
    queue: Option<String>,
    deliver: Addr,
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
    /// A keep-alive, or a PING that makes the reader read its notes.
    KeepAlive,
}

/// An answer the reader owes for a note it has been sent: given by the connection process
/// instead if the reader is killed before it read the note.
enum Owed {
    Ack(Addr),
    Status(Addr, ClientStatus),
}

/// The reader of a socket, and what the connection process knows of its progress.
struct Reader {
    pid: u64,
    /// The tag of the link with it: its crash arrives as a link death with this tag.
    link: i64,
    generation: u64,
    /// Notes sent to it.
    notes: u64,
    /// PINGs queued or written on this socket, and the count the last note carried.
    pings: u64,
    pings_noted: u64,
    /// PONGs the reader has reported: it has read every note whose `pings` is at most this.
    pongs: u64,
    /// Answers owed by notes it may not have read yet, with the PONG count that proves it has.
    owed: VecDeque<(u64, Owed)>,
}

/// How to tell a reader to stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Note it, and write a PING so its PONG makes the reader read the note.
    WithPing,
    /// Note it only: the socket is broken (the reader reads its notes once it sees that) or
    /// cannot be trusted to carry a PING; a reader that does not confirm is killed later.
    Quietly,
    /// The reader is dead already.
    Dead,
}

/// A reader told to stop that has not confirmed yet.
struct Stopping {
    reader: Reader,
    deadline: Instant,
}

enum Link {
    /// No socket; try again at `retry_at`.
    Down {
        retry_at: Instant,
    },
    /// Socket open, waiting for INFO then PONG.
    Handshake {
        stream: Stream,
        reader: Reader,
        deadline: Instant,
        got_info: bool,
    },
    Up {
        stream: Stream,
        reader: Reader,
    },
}

impl Link {
    fn reader(&mut self) -> Option<&mut Reader> {
        match self {
            Link::Handshake { reader, .. } | Link::Up { reader, .. } => Some(reader),
            Link::Down { .. } => None,
        }
    }
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
    /// Routing changes for the current reader, sent before the next write.
    notes: Vec<RouteOp>,
    subs: BTreeMap<u64, Sub>,
    next_sid: u64,
    next_request: u64,
    /// The inbox subscription the server refused on this connection (the user may not
    /// subscribe to `_INBOX.>`): requests cannot get replies, so they fail at once.
    inbox_denied: Option<String>,
    pongs: VecDeque<(Instant, PongWaiter)>,
    /// Readers of earlier sockets, told to stop.
    stopping: Vec<Stopping>,
    /// Acknowledgements waiting until no stopping reader can deliver any more.
    held: Vec<Addr>,
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
    // A reader that crashes must not take this process with it: its link death is a message.
    host::die_when_link_dies(false);
    let now = Instant::now();
    let mut conn = Conn {
        this: host::this().id,
        inbox_prefix: format!("_INBOX.{}.", random_token(22)),
        link: Link::Down { retry_at: now },
        generation: 0,
        server: 0,
        failures: 0,
        connect_reply: Some(reply),
        initial_attempts: 0,
        out: Vec::new(),
        notes: Vec::new(),
        subs: BTreeMap::new(),
        next_sid: INBOX_SID + 1,
        next_request: 0,
        inbox_denied: None,
        pongs: VecDeque::new(),
        stopping: Vec::new(),
        held: Vec::new(),
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

/// What the mailbox held.
enum Event {
    Command(Command),
    /// A publish of `size` bytes of headers and payload: its bytes are the current message's.
    Publish {
        size: usize,
    },
    WriteMarker,
    /// A linked process (a reader) ended abnormally; the link's tag.
    LinkDied(i64),
    Other,
}

/// Waits for the next message. No tags: any message; no timeout (see `Conn::run`).
fn receive() -> Event {
    match host::receive(&[], None) {
        Received::Data => {
            let tag = host::tag();
            if let Some(size) = published_size(tag) {
                Event::Publish { size }
            } else if tag == WRITE_MARKER_TAG {
                Event::WriteMarker
            } else {
                host::decode::<Command>().map_or(Event::Other, Event::Command)
            }
        }
        Received::LinkDied => Event::LinkDied(host::tag()),
        _ => Event::Other,
    }
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
                Event::Command(Command::Tick) => {
                    self.on_timers();
                    self.schedule_tick();
                }
                Event::Publish { size } => {
                    if self.may_queue(size, host::data_size(), None) {
                        host::read_into(&mut self.out);
                    }
                }
                Event::WriteMarker => {
                    self.marker_pending = false;
                    self.write_out();
                }
                Event::Command(command) => self.handle(command),
                Event::LinkDied(tag) => self.reader_died(tag),
                Event::Other => {}
            }
            if self.out.len() >= WRITE_THRESHOLD && matches!(self.link, Link::Up { .. }) {
                self.write_out();
            } else if self.has_output() && !self.marker_pending && !self.closing {
                self.marker_pending = true;
                host::send_bytes(self.this, WRITE_MARKER_TAG, &[]);
            }
        }
        self.shutdown();
    }

    /// Whether a write (or a note) is due.
    fn has_output(&mut self) -> bool {
        let up = matches!(self.link, Link::Up { .. });
        let unnoted = !self.notes.is_empty();
        (up && !self.out.is_empty())
            || self
                .link
                .reader()
                .is_some_and(|r| unnoted || r.pings > r.pings_noted)
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
        self.kill_late_readers(now);
        match &self.link {
            Link::Down { retry_at } if now >= *retry_at => self.attempt(),
            Link::Handshake { deadline, .. } if now >= *deadline => {
                self.lost("the handshake timed out".into(), Stop::Quietly);
            }
            Link::Up { .. } if now >= self.next_ping => {
                let limit = self.options.ping_interval * self.options.max_pings_out;
                let stale = self
                    .pongs
                    .front()
                    .is_some_and(|(sent, _)| now.duration_since(*sent) >= limit);
                if stale {
                    let reason = "the server did not answer PINGs (stale connection)";
                    self.lost(reason.into(), Stop::Quietly);
                } else {
                    self.queue_ping(PongWaiter::KeepAlive);
                    self.next_ping = now + self.options.ping_interval;
                }
            }
            _ => {}
        }
    }

    /// Forgets subscribers whose process has ended.
    fn sweep(&mut self) {
        let dead: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| !process_exists(s.deliver.process))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in dead {
            self.remove_sub(sid);
        }
    }

    fn remove_sub(&mut self, sid: u64) -> bool {
        if self.subs.remove(&sid).is_none() {
            return false;
        }
        if matches!(self.link, Link::Up { .. }) {
            encode_unsub(&mut self.out, sid, None);
        }
        self.note(RouteOp::Unsubscribe { sid });
        true
    }

    /// Queues a routing change for the current reader (none while disconnected: the next reader
    /// starts with the table as it is then).
    fn note(&mut self, op: RouteOp) {
        if self.link.reader().is_some() {
            self.notes.push(op);
        }
    }

    /// Queues a PING; its PONG answers `waiter`, and makes the reader read every note sent
    /// before it was written.
    fn queue_ping(&mut self, waiter: PongWaiter) {
        encode_ping(&mut self.out);
        if let Some(reader) = self.link.reader() {
            reader.pings += 1;
        }
        self.pongs.push_back((Instant::now(), waiter));
    }

    /// Sends the current reader the routing changes queued for it (and the PING count), before
    /// anything they concern is written.
    fn send_notes(&mut self) {
        let ops = std::mem::take(&mut self.notes);
        if let Some(reader) = self.link.reader() {
            send_note(reader, ops);
        }
    }

    /// Answers `ack` once nothing routed before this moment can still be delivered: after every
    /// stopping reader has ended, and after the current reader has read the notes sent so far.
    fn ack_after_readers(&mut self, ack: Addr) {
        if !self.stopping.is_empty() {
            self.held.push(ack);
        } else if self.link.reader().is_some() {
            self.owe(RouteOp::Ack(ack), Owed::Ack(ack));
        } else {
            ack.send(&());
        }
    }

    /// Notes `op`, which the reader answers, and a PING that makes it read the note soon.
    fn owe(&mut self, op: RouteOp, owed: Owed) {
        self.notes.push(op);
        self.queue_ping(PongWaiter::KeepAlive);
        if let Some(reader) = self.link.reader() {
            reader.owed.push_back((reader.pings, owed));
        }
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
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.jitter().to_le_bytes());
        nonce[8..].copy_from_slice(&self.jitter().to_le_bytes());
        let dialed = match dial(&addr, self.options.tls_ca.as_deref(), timeout, nonce) {
            Ok(dialed) => dialed,
            Err(reason) => {
                self.failed_attempt(reason);
                return;
            }
        };
        let args = ReaderArgs {
            stream: dialed.stream.clone(),
            conn: self.this,
            generation: self.generation,
            ws_key: dialed.ws_key,
            inbox_prefix: self.inbox_prefix.clone(),
            subs: self.subs.iter().map(|(sid, s)| (*sid, s.deliver)).collect(),
            next_sid: self.next_sid,
            next_request: self.next_request,
        };
        // A reader the node has no room for is a failed attempt like any other: retried with
        // backoff, never the end of the connection process.
        let link = Tag::new();
        let pid = match spawn_linked(args, reader_main, link) {
            Ok(pid) => pid,
            Err(err) => {
                self.failed_attempt(format!("cannot start the reader: {err}"));
                return;
            }
        };
        self.link = Link::Handshake {
            stream: dialed.stream,
            reader: Reader {
                pid,
                link: link.id(),
                generation: self.generation,
                notes: 0,
                pings: 0,
                pings_noted: 0,
                pongs: 0,
                owed: VecDeque::new(),
            },
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

    /// Marks the link down and tells its reader to stop (it fails the requests it routes with
    /// `failure`), and answers everyone waiting on a PONG; subscriptions waiting for their
    /// confirmation are confirmed when they are kept for the next connection
    /// (`keep_subscriptions`), failed otherwise.
    fn drop_link(&mut self, failure: Failure, keep_subscriptions: bool, stop: Stop) {
        let link = std::mem::replace(
            &mut self.link,
            Link::Down {
                retry_at: Instant::now(),
            },
        );
        let ops = std::mem::take(&mut self.notes);
        if let Link::Handshake {
            mut stream,
            mut reader,
            ..
        }
        | Link::Up {
            mut stream,
            mut reader,
        } = link
        {
            if stop != Stop::Dead {
                let mut ops = ops;
                ops.push(RouteOp::Stop {
                    failure: failure.clone(),
                });
                if stop == Stop::WithPing {
                    reader.pings += 1;
                }
                send_note(&mut reader, ops);
                if stop == Stop::WithPing {
                    let mut ping = Vec::new();
                    encode_ping(&mut ping);
                    let salt = self.jitter();
                    // Best effort: if it cannot be written, the reader is killed after the grace.
                    let _ = stream.send(self.is_ws(), &ping, salt);
                }
                self.stopping.push(Stopping {
                    reader,
                    deadline: Instant::now() + STOP_GRACE,
                });
            } else {
                pay(reader.owed);
            }
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
    fn lost(&mut self, reason: String, stop: Stop) {
        let was_up = matches!(self.link, Link::Up { .. });
        // Subscriptions stay: they are subscribed again on the next connection.
        self.drop_link(Failure::Disconnected, true, stop);
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

    /// A reader ended abnormally (its link died): the current one means a lost connection; a
    /// stopping one will not confirm.
    fn reader_died(&mut self, link: i64) {
        if self.link.reader().is_some_and(|r| r.link == link) {
            self.lost("the reader process failed".into(), Stop::Dead);
        }
        if let Some(at) = self.stopping.iter().position(|s| s.reader.link == link) {
            let stopped = self.stopping.swap_remove(at);
            pay(stopped.reader.owed);
            self.release_held();
        }
    }

    /// A stopping reader confirmed: it delivers nothing more.
    fn reader_stopped(&mut self, generation: u64) {
        if let Some(at) = self
            .stopping
            .iter()
            .position(|s| s.reader.generation == generation)
        {
            self.stopping.swap_remove(at);
            self.release_held();
        }
    }

    /// Kills the stopping readers that did not confirm in time, answering what they owed.
    fn kill_late_readers(&mut self, now: Instant) {
        let (late, waiting): (Vec<Stopping>, Vec<Stopping>) = std::mem::take(&mut self.stopping)
            .into_iter()
            .partition(|s| now >= s.deadline);
        self.stopping = waiting;
        if late.is_empty() {
            return;
        }
        for stopping in late {
            host::kill(stopping.reader.pid);
            pay(stopping.reader.owed);
        }
        self.release_held();
    }

    /// Gives the held acknowledgements once no stopping reader is left.
    fn release_held(&mut self) {
        if self.stopping.is_empty() {
            for ack in std::mem::take(&mut self.held) {
                self.ack_after_readers(ack);
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Request {
                subject,
                mut bytes,
                size,
                id_at,
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
                let id = self.next_request;
                match bytes.get_mut(id_at..id_at + ID_DIGITS) {
                    Some(digits) => write_id(digits, id),
                    None => {
                        let why = "the request's reply subject is not where it should be";
                        reply.send(&Reply::Failed(Failure::Server(why.into())));
                        return;
                    }
                }
                self.next_request += 1;
                if self.may_queue(size, bytes.len(), Some(reply)) {
                    self.out.extend_from_slice(&bytes);
                    self.note(RouteOp::Request { id, reply, subject });
                }
            }
            Command::Cancel { reply, ack } => {
                self.note(RouteOp::Cancel { reply });
                self.ack_after_readers(ack);
            }
            Command::Subscribe {
                subject,
                queue,
                deliver,
                ack,
            } => {
                let sid = self.next_sid;
                if matches!(self.link, Link::Up { .. }) {
                    if let Err(e) = encode_sub(&mut self.out, &subject, queue.as_deref(), sid) {
                        ack.send::<Result<u64, Failure>>(&Err(Failure::Server(e.to_string())));
                        return;
                    }
                    self.queue_ping(PongWaiter::SubAck { ack, sid });
                } else {
                    ack.send::<Result<u64, Failure>>(&Ok(sid));
                }
                self.next_sid += 1;
                self.note(RouteOp::Subscribe { sid, deliver });
                self.subs.insert(
                    sid,
                    Sub {
                        subject,
                        queue,
                        deliver,
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
                    self.remove_sub(sid);
                }
            }
            Command::Unsubscribe { sid, ack } => {
                self.remove_sub(sid);
                if let Some(ack) = ack {
                    self.ack_after_readers(ack);
                }
            }
            Command::Flush { ack } => {
                if matches!(self.link, Link::Up { .. }) {
                    self.queue_ping(PongWaiter::Flush { ack, denied: None });
                } else {
                    ack.send::<Result<(), Failure>>(&Err(Failure::NotConnected));
                }
            }
            Command::Status { ack } => {
                let status = self.status();
                if self.link.reader().is_some() {
                    // The reader knows the requests waiting: it completes the answer.
                    self.owe(
                        RouteOp::Status {
                            status: status.clone(),
                            ack,
                        },
                        Owed::Status(ack, status),
                    );
                } else {
                    ack.send(&status);
                }
            }
            Command::Tick => {}
            Command::Close { ack } => {
                self.closing = true;
                self.close_ack = Some(ack);
            }
            Command::Control { generation, ops } => {
                // Only the reader of the current socket is listened to; a stopping one is heard
                // only when it confirms.
                for op in ops {
                    if matches!(op, Control::Stopped) {
                        self.reader_stopped(generation);
                    } else if self
                        .link
                        .reader()
                        .is_some_and(|r| r.generation == generation)
                    {
                        self.control(op);
                    }
                }
            }
        }
    }

    fn status(&self) -> ClientStatus {
        let state = match self.link {
            Link::Up { .. } => ConnState::Connected,
            Link::Handshake { .. } => ConnState::Handshaking,
            Link::Down { .. } => ConnState::Disconnected,
        };
        ClientStatus {
            state,
            server: self.server_name(),
            max_payload: self.max_payload,
            reconnects: self.reconnects,
            dropped: self.dropped,
            subscriptions: self.subs.len(),
            pending_requests: 0,
            last_error: self.last_error.clone(),
        }
    }

    /// Whether a PUB of `len` bytes (`size` of them headers and payload) may be buffered; if not,
    /// it is counted as dropped and the requester, if any, is told.
    fn may_queue(&mut self, size: usize, len: usize, requester: Option<Addr>) -> bool {
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
        if !matches!(self.link, Link::Up { .. }) && self.out.len() + len > self.options.max_buffer {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// A control operation from the current reader.
    fn control(&mut self, op: Control) {
        match op {
            Control::Ping => encode_pong(&mut self.out),
            Control::WsPing(payload) => {
                let salt = self.salt ^ 0xa5;
                if let Link::Up { stream, .. } | Link::Handshake { stream, .. } = &mut self.link {
                    let _ = stream.send_ws_pong(&payload, salt);
                }
            }
            Control::Pong => self.pong(),
            Control::Info(info) => self.info(&info),
            Control::BadInfo(reason) => {
                self.last_error = Some(format!("unreadable INFO: {reason}"))
            }
            Control::Err(error) => {
                self.last_error = Some(error.message.clone());
                if matches!(self.link, Link::Handshake { .. }) || error.is_fatal() {
                    // The server closes the socket after a fatal error, or should: the PING
                    // reaches the reader if it does not.
                    self.lost(format!("server error: {}", error.message), Stop::WithPing);
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
            Control::Broken(reason) => self.lost(reason, Stop::Quietly),
            Control::Stopped => {}
        }
    }

    fn pong(&mut self) {
        if let Some(reader) = self.link.reader() {
            reader.pongs += 1;
            let pongs = reader.pongs;
            while reader
                .owed
                .front()
                .is_some_and(|(pings, _)| *pings <= pongs)
            {
                reader.owed.pop_front();
            }
        }
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

    /// The server's INFO: its limits, and during the handshake the answer (CONNECT + PING).
    fn info(&mut self, info: &ServerInfo) {
        if info.max_payload > 0 {
            self.max_payload = info.max_payload;
        }
        if !matches!(
            self.link,
            Link::Handshake {
                got_info: false,
                ..
            }
        ) {
            return;
        }
        let hello = hello(&self.options, info.nonce.as_deref());
        let ws = self.is_ws();
        let salt = self.jitter();
        if let Link::Handshake { reader, .. } = &mut self.link {
            // Its PONG ends the handshake; the reader counts it like any other.
            reader.pings += 1;
        }
        self.send_notes();
        let failed = match (&mut self.link, hello) {
            (
                Link::Handshake {
                    stream, got_info, ..
                },
                Ok(hello),
            ) => {
                *got_info = true;
                stream
                    .send(ws, &hello, salt)
                    .err()
                    .map(|e| format!("writing CONNECT: {e}"))
            }
            (_, Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(reason) = failed {
            self.lost(reason, Stop::Quietly);
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
    ///
    /// The reader holds the requests: it is told in a note, with a PING that makes it read the
    /// note (and every request noted before it) at once.
    fn permission_violation(&mut self, action: PermissionAction, subject: String) {
        let denied = Failure::PermissionDenied {
            operation: action,
            subject: subject.clone(),
        };
        match action {
            PermissionAction::Subscribe if subject == format!("{}*", self.inbox_prefix) => {
                self.fail_requests(Which::All, denied);
                self.inbox_denied = Some(subject);
            }
            PermissionAction::Subscribe => {
                let mut refused = Vec::new();
                for (_, waiter) in self.pongs.iter_mut() {
                    let PongWaiter::SubAck { ack, sid } = *waiter else {
                        continue;
                    };
                    if self.subs.get(&sid).is_some_and(|s| s.subject == subject) {
                        refused.push(sid);
                        ack.send::<Result<u64, Failure>>(&Err(denied.clone()));
                        // Its PONG still comes; nobody waits for it any more.
                        *waiter = PongWaiter::KeepAlive;
                    }
                }
                for sid in refused {
                    // The server has no such subscription: nothing to UNSUB.
                    self.subs.remove(&sid);
                    self.note(RouteOp::Unsubscribe { sid });
                }
            }
            PermissionAction::Publish | PermissionAction::Reply => {
                let which = match action {
                    PermissionAction::Reply => {
                        let id = subject
                            .strip_prefix(self.inbox_prefix.as_str())
                            .and_then(super::messages::read_id);
                        id.map(Which::Id)
                    }
                    _ => Some(Which::Subject(subject)),
                };
                if let Some(which) = which {
                    self.fail_requests(which, denied.clone());
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

    fn fail_requests(&mut self, which: Which, failure: Failure) {
        if self.link.reader().is_some() {
            self.notes.push(RouteOp::Fail { which, failure });
            self.queue_ping(PongWaiter::KeepAlive);
        }
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

    /// Sends the notes, then writes everything buffered in one `write`.
    fn write_out(&mut self) {
        self.send_notes();
        if self.out.is_empty() {
            return;
        }
        let ws = self.is_ws();
        let salt = if ws { self.jitter() } else { 0 };
        let Link::Up { stream, .. } = &mut self.link else {
            return;
        };
        match stream.send(ws, &self.out, salt) {
            Ok(()) => {
                if self.out.capacity() > 4 * WRITE_THRESHOLD {
                    self.out = Vec::new();
                } else {
                    self.out.clear();
                }
            }
            Err(e) => self.lost(format!("write failed: {e}"), Stop::Quietly),
        }
    }

    /// Writes what is left, stops the reader (the requests it routes fail with `Closed`) and
    /// waits, boundedly, for it to confirm, so those requesters hear it before this process ends.
    fn shutdown(&mut self) {
        self.write_out();
        self.drop_link(Failure::Closed, false, Stop::WithPing);
        let deadline = Instant::now() + STOP_GRACE.min(self.options.op_timeout);
        while !self.stopping.is_empty() && Instant::now() < deadline {
            match receive() {
                Event::Command(Command::Control { generation, ops })
                    if ops.iter().any(|op| matches!(op, Control::Stopped)) =>
                {
                    self.reader_stopped(generation);
                }
                Event::Command(Command::Tick) => self.schedule_tick(),
                Event::LinkDied(tag) => self.reader_died(tag),
                // Callers waiting on anything else see this process end.
                _ => {}
            }
        }
        self.kill_late_readers(Instant::now() + STOP_GRACE);
        for ack in std::mem::take(&mut self.held) {
            ack.send(&());
        }
        if let Some(ack) = self.close_ack.take() {
            ack.send(&());
        }
    }
}

/// Sends `reader` a note with `ops` and its PING count.
fn send_note(reader: &mut Reader, ops: Vec<RouteOp>) {
    if ops.is_empty() && reader.pings == reader.pings_noted {
        return;
    }
    let note = Note {
        seq: reader.notes,
        pings: reader.pings,
        ops,
    };
    match host::send(reader.pid, NOTE_TAG, &note) {
        Ok(()) => {
            reader.notes += 1;
            reader.pings_noted = reader.pings;
        }
        Err(err) => eprintln!("swarm: nats: a note for the reader does not encode: {err}"),
    }
}

/// Gives the answers a reader owed and will not give (it ended without reading its notes).
fn pay(owed: VecDeque<(u64, Owed)>) {
    for (_, owed) in owed {
        match owed {
            Owed::Ack(ack) => ack.send(&()),
            Owed::Status(ack, status) => ack.send(&status),
        }
    }
}

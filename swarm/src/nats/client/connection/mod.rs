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
//!
//! Here: the state, the loop, the callers' commands, notes and writes. `link.rs`: the socket's
//! life (connect, handshake, loss, reconnect, stopping readers). `control.rs`: the server's
//! control operations (PING, PONG, INFO, -ERR and permission violations).

mod control;
mod link;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::connector::Stream;
use super::messages::{
    published_size, write_id, Addr, Command, Control, Note, Reply, RouteOp, ID_DIGITS, NOTE_TAG,
    WRITE_MARKER_TAG,
};
use super::routing::INBOX_SID;
use super::{ClientStatus, ConnState};
use crate::nats::codec::{
    check_payload_size, encode_ping, encode_sub, encode_unsub, PermissionAction,
    DEFAULT_MAX_PAYLOAD,
};
use crate::nats::options::{random_token, random_u64, ConnectOptions, Failure, Transport};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::process_exists;

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
    /// Messages written (and their headers and payload bytes), and read (payload bytes).
    messages_out: u64,
    bytes_out: u64,
    messages_in: u64,
    bytes_in: u64,
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
        messages_out: 0,
        bytes_out: 0,
        messages_in: 0,
        bytes_in: 0,
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
            messages_out: self.messages_out,
            bytes_out: self.bytes_out,
            messages_in: self.messages_in,
            bytes_in: self.bytes_in,
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
        self.messages_out += 1;
        self.bytes_out += size as u64;
        true
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

//! The reader process, one per socket: reads, unwraps WebSocket frames, parses, and routes.
//!
//! Messages go straight to their subscriber (one [`Delivery`](super::messages::Delivery) per
//! subscription per read) or requester; only control operations go to the connection process,
//! one message per read. The routing table changes by notes from the connection process
//! (`routing.rs`), which the reader takes from its mailbox only when it knows one is there:
//!
//! - a message whose subscription or request is newer than any it knows: its note was sent before
//!   the SUB or PUB was written, so it is in the mailbox;
//! - the n-th PONG: the connection sends a note carrying its PING count before writing any PING,
//!   so the note for the n-th PING is in the mailbox. The connection follows a note that needs an
//!   answer soon (an unsubscribe, a cancel, a status, a stop) with a PING for this reason.
//!
//! So the reader never waits on its mailbox on the way of a message, and never looks into an
//! empty one (Lunatic's shortest timed receive takes about a millisecond). After the socket
//! breaks it reports that, then reads notes until it is told to stop; it ends after answering
//! everything noted before the stop. It is linked to the connection process, so it never
//! outlives it.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::connector::Stream;
use super::messages::{Addr, Command, Control, Note, NOTE_TAG};
use super::routing::{Out, Routes};
use crate::nats::codec::{Msg, ParseError, ServerOp, ServerOpParser};
use crate::nats::ws;
use crate::runtime::host::{self, Received};

/// Size of the reader's read buffer.
const READ_BUFFER: usize = 64 * 1024;
/// How long the reader waits for a note it knows was sent. It is in the mailbox already; the
/// limit only bounds a server that sends messages for subscriptions nobody made.
const NOTE_WAIT: Duration = Duration::from_millis(100);
/// How often (at most, checked on PONGs) the reader forgets requests whose process ended.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a reader starts with.
#[derive(Serialize, Deserialize)]
pub(super) struct ReaderArgs {
    pub(super) stream: Stream,
    pub(super) conn: u64,
    pub(super) generation: u64,
    /// `Some(key)` for WebSocket: check the upgrade answer first, then unwrap frames.
    pub(super) ws_key: Option<String>,
    pub(super) inbox_prefix: String,
    /// The subscriptions when the reader starts, and the first sid and request number it will
    /// learn of from notes.
    pub(super) subs: Vec<(u64, Addr)>,
    pub(super) next_sid: u64,
    pub(super) next_request: u64,
}

/// Whether the reader goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    /// It applied a stop and confirmed it: it ends.
    Stopped,
}

/// What taking a note did.
#[derive(PartialEq, Eq)]
enum Pulled {
    Applied,
    /// None came in time (or the one that came is not due yet).
    Nothing,
    Stopped,
}

struct Reader {
    stream: Stream,
    conn: u64,
    generation: u64,
    routes: Routes,
    parser: ServerOpParser,
    /// WebSocket: the upgrade answer is checked against `ws_key` (bytes collect in `head` until
    /// it is complete), then frames are unwrapped.
    ws_key: Option<String>,
    upgraded: bool,
    head: Vec<u8>,
    frames: Option<ws::FrameDecoder>,
    /// The next note to apply, and notes that came before their turn.
    next_note: u64,
    early_notes: BTreeMap<u64, Note>,
    /// PONGs read, and the PING count of the last note applied.
    pongs: u64,
    noted: u64,
    /// What to send: to subscribers and requesters, and to the connection process.
    out: Vec<Out>,
    control: Vec<Control>,
    next_sweep: Instant,
    /// Messages and payload bytes read since the last `Control::Received`, and when that was.
    received: (u64, u64),
    received_said: Instant,
}

pub(super) fn reader_main(args: ReaderArgs) {
    let ReaderArgs {
        stream,
        conn,
        generation,
        ws_key,
        inbox_prefix,
        subs,
        next_sid,
        next_request,
    } = args;
    let mut reader = Reader {
        stream,
        conn,
        generation,
        routes: Routes::new(generation, inbox_prefix, subs, next_sid, next_request),
        parser: ServerOpParser::new(),
        upgraded: ws_key.is_none(),
        frames: ws_key.as_ref().map(|_| ws::FrameDecoder::new()),
        ws_key,
        head: Vec::new(),
        next_note: 0,
        early_notes: BTreeMap::new(),
        pongs: 0,
        noted: 0,
        out: Vec::new(),
        control: Vec::new(),
        next_sweep: Instant::now() + SWEEP_EVERY,
        received: (0, 0),
        received_said: Instant::now(),
    };
    reader.run();
}

impl Reader {
    fn run(&mut self) {
        let mut buf = vec![0u8; READ_BUFFER];
        let broken = loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => break "the server closed the connection".to_string(),
                Ok(n) => n,
                Err(e) => break format!("read failed: {e}"),
            };
            match self.on_read(&buf[..n]) {
                Ok(Flow::Go) => {}
                Ok(Flow::Stopped) => return,
                Err(reason) => break reason,
            }
        };
        // The socket is finished. Notes keep coming until the connection process has heard it
        // (a stop always comes; the connection process never ends without sending one).
        self.control.push(Control::Broken(broken));
        self.send_control();
        while self.pull(None) != Pulled::Stopped {}
    }

    /// Handles what one read brought; `Err` when the socket is finished (a WebSocket close,
    /// broken framing or protocol).
    fn on_read(&mut self, read: &[u8]) -> Result<Flow, String> {
        let rest;
        let mut data = read;
        if !self.upgraded {
            self.head.extend_from_slice(data);
            let key = self.ws_key.as_deref().unwrap_or_default();
            match ws::check_handshake(&self.head, key) {
                Ok(None) => return Ok(Flow::Go),
                Ok(Some(len)) => {
                    self.upgraded = true;
                    rest = self.head.split_off(len);
                    self.head = Vec::new();
                    data = &rest;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut broken = None;
        match &mut self.frames {
            Some(decoder) => {
                decoder.feed(data);
                loop {
                    match decoder.next_event() {
                        Ok(Some(ws::WsEvent::Data(bytes))) => self.parser.feed(&bytes),
                        Ok(Some(ws::WsEvent::Ping(p))) => self.control.push(Control::WsPing(p)),
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
            }
            None => self.parser.feed(data),
        }
        loop {
            let flow = match self.parser.next_op() {
                Ok(Some(ServerOp::Msg(msg))) => self.on_msg(msg),
                Ok(Some(ServerOp::Pong)) => self.on_pong(),
                Ok(Some(ServerOp::Ping)) => {
                    self.control.push(Control::Ping);
                    Flow::Go
                }
                Ok(Some(ServerOp::Ok)) => Flow::Go,
                Ok(Some(ServerOp::Info(info))) => {
                    self.control.push(Control::Info(info));
                    Flow::Go
                }
                Ok(Some(ServerOp::Err(error))) => {
                    self.control.push(Control::Err(error));
                    Flow::Go
                }
                Ok(None) => break,
                Err(ParseError::InvalidInfo { reason }) => {
                    self.control.push(Control::BadInfo(reason));
                    Flow::Go
                }
                Err(e) if e.is_fatal() => {
                    broken = Some(format!("protocol error: {e}"));
                    break;
                }
                // One bad line or message, skipped by the parser.
                Err(_) => Flow::Go,
            };
            if flow == Flow::Stopped {
                return Ok(Flow::Stopped);
            }
        }
        self.routes.flush(&mut self.out);
        self.send_out();
        self.say_received();
        self.send_control();
        broken.map_or(Ok(Flow::Go), Err)
    }

    fn on_msg(&mut self, msg: Msg) -> Flow {
        self.received.0 += 1;
        self.received.1 += msg.payload.len() as u64;
        if self.routes.is_unknown(&msg) {
            // Its note is in the mailbox; what was routed so far goes out first, so that every
            // delivery precedes the acknowledgements the coming notes may hold.
            self.routes.flush(&mut self.out);
            self.send_out();
            while self.routes.is_unknown(&msg) {
                match self.pull(Some(NOTE_WAIT)) {
                    Pulled::Applied => {}
                    Pulled::Stopped => return Flow::Stopped,
                    // A message for a subscription or request never noted (the server's
                    // mistake): dropped.
                    Pulled::Nothing if self.early_notes.is_empty() => return Flow::Go,
                    Pulled::Nothing => {}
                }
            }
        }
        self.routes.route(msg, &mut self.out);
        Flow::Go
    }

    fn on_pong(&mut self) -> Flow {
        self.pongs += 1;
        self.control.push(Control::Pong);
        if self.noted < self.pongs {
            self.routes.flush(&mut self.out);
            self.send_out();
            while self.noted < self.pongs {
                match self.pull(Some(NOTE_WAIT)) {
                    Pulled::Applied => {}
                    Pulled::Stopped => return Flow::Stopped,
                    // A PONG for no PING of ours (the server's mistake).
                    Pulled::Nothing if self.early_notes.is_empty() => break,
                    Pulled::Nothing => {}
                }
            }
        }
        let now = Instant::now();
        if now >= self.next_sweep {
            self.routes.sweep(host::exists);
            self.next_sweep = now + SWEEP_EVERY;
        }
        Flow::Go
    }

    /// Applies the next note, from those that came early or from the mailbox (waiting at most
    /// `wait`, for ever with `None`).
    fn pull(&mut self, wait: Option<Duration>) -> Pulled {
        let note = match self.early_notes.remove(&self.next_note) {
            Some(note) => note,
            None => {
                if host::receive(&[NOTE_TAG], wait) != Received::Data {
                    // Nothing came in time. A note that did not come although a later one did
                    // (cannot happen) is skipped, so the later ones are not held for ever.
                    if let Some(&first) = self.early_notes.keys().next() {
                        self.next_note = first;
                    }
                    return Pulled::Nothing;
                }
                let Ok(note) = host::decode::<Note>() else {
                    return Pulled::Nothing;
                };
                if note.seq != self.next_note {
                    // A timed wait that gave up can make Lunatic hand out a later message first.
                    self.early_notes.insert(note.seq, note);
                    return Pulled::Nothing;
                }
                note
            }
        };
        self.next_note += 1;
        self.noted = self.noted.max(note.pings);
        for op in note.ops {
            if self.routes.apply(op, &mut self.out).is_some() {
                self.send_out();
                // The connection process listens to a stopping reader only for this.
                self.control = vec![Control::Stopped];
                self.send_control();
                return Pulled::Stopped;
            }
        }
        self.send_out();
        Pulled::Applied
    }

    /// Sends what routing produced (a process that has ended drops what is sent to it).
    fn send_out(&mut self) {
        for out in self.out.drain(..) {
            let sent = match out {
                Out::Deliver(to, delivery) => host::send(to.process, to.tag, &delivery),
                Out::Reply(to, reply) => host::send(to.process, to.tag, &reply),
                Out::Ack(to) => host::send(to.process, to.tag, &()),
                Out::Status(to, mut status) => {
                    // What this reader read and has not told the connection process yet.
                    status.messages_in += self.received.0;
                    status.bytes_in += self.received.1;
                    host::send(to.process, to.tag, &status)
                }
            };
            if let Err(err) = sent {
                eprintln!("swarm: nats: the reader could not hand a message on: {err}");
            }
        }
    }

    /// Adds the counts of messages read to the control ops going out anyway, or on their own
    /// once a second (one clock read per socket read, no message per delivery).
    fn say_received(&mut self) {
        if self.received.0 == 0 {
            return;
        }
        if self.control.is_empty() && self.received_said.elapsed() < Duration::from_secs(1) {
            return;
        }
        let (messages, bytes) = std::mem::take(&mut self.received);
        self.control.push(Control::Received { messages, bytes });
        self.received_said = Instant::now();
    }

    fn send_control(&mut self) {
        if self.control.is_empty() {
            return;
        }
        let control = Command::Control {
            generation: self.generation,
            ops: std::mem::take(&mut self.control),
        };
        if let Err(err) = host::send(self.conn, 0, &control) {
            eprintln!("swarm: nats: the reader could not hand on what it read: {err}");
        }
    }
}

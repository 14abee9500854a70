//! The messages between a client's processes, and how a caller waits for its answer.

use std::time::Duration;

use lunatic::Tag;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::nats::codec::{Msg, ServerError, ServerInfo};
use crate::nats::options::Failure;
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{wait_value, WaitError};

/// A process and a tag in it: where the connection process sends one kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Addr {
    pub(super) node: u64,
    pub(super) process: u64,
    pub(super) tag: i64,
}

impl Addr {
    /// The current process with a fresh tag.
    pub(super) fn fresh() -> Addr {
        let this = host::this();
        Addr {
            node: this.node,
            process: this.id,
            tag: Tag::new().id(),
        }
    }

    /// Sends `value` there (a process that has ended drops it); the receiver waits on this tag
    /// for exactly this type.
    pub(super) fn send<T: Serialize + DeserializeOwned>(&self, value: &T) {
        if let Err(err) = host::send(self.process, self.tag, value) {
            eprintln!("swarm: nats: a message does not encode: {err}");
        }
    }
}

/// The connection process' mailbox messages.
#[derive(Serialize, Deserialize)]
pub(super) enum Command {
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

/// What the reader saw: the server's operations as the parser typed them (nothing is turned
/// back into text to be parsed again), and what happened to the socket.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Inbound {
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    Info(Box<ServerInfo>),
    /// An INFO whose JSON did not parse (the reason); the line is skipped.
    BadInfo(String),
    Err(ServerError),
    /// A WebSocket ping to answer.
    WsPing(Vec<u8>),
    /// The socket is finished (EOF, error, WebSocket close, lost framing); the reader ended.
    Broken(String),
}

/// A message for a subscription, numbered per subscription so that the subscriber can restore
/// the order if Lunatic moved one to the back of its mailbox (see `Subscription::take`).
#[derive(Serialize, Deserialize)]
pub(super) struct Delivery {
    pub(super) seq: u64,
    pub(super) msg: Msg,
}

/// The answer to a request, sent to the requester.
#[derive(Serialize, Deserialize)]
pub(super) enum Reply {
    Msg(Msg),
    Failed(Failure),
}

/// The answer to the initial connect.
#[derive(Serialize, Deserialize)]
pub(super) struct Connected {
    pub(super) max_payload: u64,
    pub(super) inbox_prefix: String,
}

/// Why a wait ended without the answer.
pub(super) enum WaitFailed {
    TimedOut,
    Gone,
}

/// Waits for a message tagged `tag` in the current process, noticing if process `watch` (the
/// connection process) ends: `runtime::mailbox`'s wait loop, for bare values.
pub(super) fn wait_tagged<T: Serialize + DeserializeOwned>(
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
pub(super) fn receive_now<T: Serialize + DeserializeOwned>(tag: i64) -> Option<T> {
    if host::receive(&[tag], Some(Duration::ZERO)) == Received::Data {
        host::decode::<T>().ok()
    } else {
        None
    }
}

/// Drops every message tagged `tag` already in the mailbox (late replies after a cancel).
pub(super) fn drain_tag(tag: i64) {
    for _ in 0..10_000 {
        if host::receive(&[tag], Some(Duration::ZERO)) != Received::Data {
            break;
        }
    }
}

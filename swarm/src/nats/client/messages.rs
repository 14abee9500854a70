//! The messages between a client's processes.
//!
//! - handles ([`NatsClient`](super::NatsClient), [`Subscription`](super::Subscription)) →
//!   connection process: [`Command`];
//! - connection → reader: [`Note`]s, each a batch of changes to the reader's routing table
//!   ([`RouteOp`]), always sent *before* the bytes they concern are written to the socket;
//! - reader → connection: [`Command::Control`], the server's control operations ([`Control`]),
//!   never a message for a subscriber or requester;
//! - reader → subscriber: [`Delivery`] on the subscription's tag; reader → requester: [`Reply`]
//!   on the request's tag.
//!
//! Everything here is plain data (tested natively); sending needs the Lunatic host.

use serde::{Deserialize, Serialize};

use super::ClientStatus;
use crate::nats::codec::{as_bytes, Msg, ServerError, ServerInfo};
use crate::nats::options::Failure;

/// The tag of a [`Note`] in the reader's mailbox. The reader receives nothing else (its spawn
/// message aside), and only with a blocking receive of this tag (see `reader.rs`). The top byte
/// (0x7E) is no Lunatic handler number and `Tag::new()` counters stay far below 2^56.
pub(super) const NOTE_TAG: i64 = (0x7E << 56) | 0x4E4F_5445;

/// A process and a tag in it: where one kind of answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Addr {
    pub(super) node: u64,
    pub(super) process: u64,
    pub(super) tag: i64,
}

/// The top byte of the tag of a publish: the PUB/HPUB the caller encoded, sent as raw bytes
/// (`host::send_bytes`) that the connection process appends to its write buffer without decoding
/// or copying them twice; the rest of the tag is headers + payload size, for the `max_payload`
/// check. Publishing is the hottest path (one Lunatic message per publish).
///
/// Top bytes of swarm's own tags (none is a Lunatic handler number, those are below 64, and
/// `Tag::new()` counters stay far below 2^56): 0x7F a new process' argument, 0x7E the reader's notes
/// (and the store's end-of-queue marker, in other processes), 0x7D the mailbox probe, 0x7C the write
/// marker, 0x7B a publish, 0x7A the services API's request for a front-door worker's counts,
/// 0x79 the request that a front-door worker stop.
const PUBLISH_KIND: i64 = 0x7B;
const SIZE_BITS: i64 = (1 << 56) - 1;

/// The tag of a publish of `size` bytes of headers and payload.
pub(super) fn publish_tag(size: usize) -> i64 {
    (PUBLISH_KIND << 56) | (size as i64 & SIZE_BITS)
}

/// The headers + payload size of a publish, if `tag` is a publish's.
pub(super) fn published_size(tag: i64) -> Option<usize> {
    (tag >> 56 == PUBLISH_KIND).then_some((tag & SIZE_BITS) as usize)
}

/// The tag of the empty message the connection process sends itself to write what is queued.
pub(super) const WRITE_MARKER_TAG: i64 = (0x7C << 56) | 0x5752_4954;

/// The connection process' mailbox messages (besides publishes and write markers, see above).
#[derive(Serialize, Deserialize)]
pub(super) enum Command {
    /// A request's PUB/HPUB to `subject`. Its reply subject ends in 16 zeros at `id_at`, where
    /// the connection writes the request's number (see [`RouteOp::Request`]).
    Request {
        subject: String,
        #[serde(with = "as_bytes")]
        bytes: Vec<u8>,
        size: usize,
        id_at: usize,
        reply: Addr,
    },
    /// Forget the request answered at `reply` (it timed out); answer `()` on `ack` once no reply
    /// can come any more.
    Cancel {
        reply: Addr,
        ack: Addr,
    },
    Subscribe {
        subject: String,
        queue: Option<String>,
        deliver: Addr,
        ack: Addr,
    },
    /// Stop subscription `sid`; answer `()` on `ack` once nothing more can be delivered for it.
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
    /// Control operations from the reader of connection `generation`.
    Control {
        generation: u64,
        ops: Vec<Control>,
    },
}

/// What the reader hands to the connection process: the server's control operations as the
/// parser typed them (nothing is turned back into text to be parsed again), and the reader's own
/// news. Messages for subscribers and requesters never take this way.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Control {
    Ping,
    Pong,
    Info(Box<ServerInfo>),
    /// An INFO whose JSON did not parse (the reason); the line is skipped.
    BadInfo(String),
    Err(ServerError),
    /// A WebSocket ping to answer.
    WsPing(#[serde(with = "as_bytes")] Vec<u8>),
    /// The socket is finished (EOF, error, WebSocket close, lost framing). The reader goes on
    /// serving its notes until it is told to stop.
    Broken(String),
    /// The reader applied [`RouteOp::Stop`]: it delivers nothing more, and has ended.
    Stopped,
    /// Messages (and their payload bytes) the reader read since it last said so: sent with
    /// other control ops, or on its own once a second while messages come (`ClientStatus`).
    Received {
        messages: u64,
        bytes: u64,
    },
}

/// A batch of routing changes for the reader, sent before the bytes they concern are written.
/// `pings` counts the PINGs written on this socket once those bytes are: when the reader has read
/// that many PONGs, this note is certainly in its mailbox (see `reader.rs`). `seq` (0, 1, 2, ...
/// per reader) lets the reader apply notes in the order they were sent whatever order its
/// mailbox hands them out in.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Note {
    pub(super) seq: u64,
    pub(super) pings: u64,
    pub(super) ops: Vec<RouteOp>,
}

/// One change to the reader's routing table (see `routing.rs`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum RouteOp {
    /// Messages on `sid` go to `deliver`.
    Subscribe {
        sid: u64,
        deliver: Addr,
    },
    Unsubscribe {
        sid: u64,
    },
    /// The reply to request number `id` goes to `reply`; `subject` is what it was sent to (a
    /// permission violation names it).
    Request {
        id: u64,
        reply: Addr,
        subject: String,
    },
    /// Forget the requests answered at `reply`.
    Cancel {
        reply: Addr,
    },
    /// Fail the requests that `which` names with `failure`.
    Fail {
        which: Which,
        failure: Failure,
    },
    /// Answer `()` on this address: everything noted before is done.
    Ack(Addr),
    /// Complete `status` with the requests waiting and send it to `ack`.
    Status {
        status: ClientStatus,
        ack: Addr,
    },
    /// Fail every waiting request with `failure`, deliver nothing more, confirm with
    /// [`Control::Stopped`] and end.
    Stop {
        failure: Failure,
    },
}

/// Which waiting requests a [`RouteOp::Fail`] fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Which {
    /// All, and every later one at once (the server refused the inbox subscription).
    All,
    /// Those sent to this subject.
    Subject(String),
    /// Request number `id` (its reply subject was refused).
    Id(u64),
}

/// Messages for one subscription from one read, numbered per subscription and connection so
/// the subscriber can restore their order if Lunatic moved one delivery behind a later one in
/// its mailbox (see `Subscription::take`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Delivery {
    /// The connection (`generation`) whose reader numbered it.
    pub(super) generation: u64,
    /// 0, 1, 2, ... per subscription on that connection.
    pub(super) seq: u64,
    pub(super) msgs: Vec<Msg>,
}

/// The answer to a request, sent to the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The width of a request number in a reply subject: 16 hex digits, so that the connection can
/// write it into bytes the requester encoded.
pub(super) const ID_DIGITS: usize = 16;

/// Writes `id` as [`ID_DIGITS`] hex digits into `at`.
pub(super) fn write_id(at: &mut [u8], id: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in at.iter_mut().take(ID_DIGITS).enumerate() {
        *byte = HEX[((id >> (4 * (ID_DIGITS - 1 - i))) & 0xF) as usize];
    }
}

/// The request number at the end of a reply subject, after the connection's inbox prefix.
pub(super) fn read_id(token: &str) -> Option<u64> {
    if token.len() != ID_DIGITS {
        return None;
    }
    u64::from_str_radix(token, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_tags_carry_the_size_and_nothing_else_looks_like_one() {
        for size in [0, 1, 1 << 20, (1 << 56) - 1] {
            assert_eq!(published_size(publish_tag(size)), Some(size));
        }
        let probe = (0x7D << 56) | 0x5052_4F42;
        for tag in [0, NOTE_TAG, WRITE_MARKER_TAG, probe, 1 << 56, 129] {
            assert_eq!(published_size(tag), None);
        }
    }

    #[test]
    fn request_numbers_round_trip_through_reply_subjects() {
        for id in [0, 1, 0xabc, u64::MAX] {
            let mut digits = [b'0'; ID_DIGITS];
            write_id(&mut digits, id);
            assert_eq!(read_id(std::str::from_utf8(&digits).unwrap()), Some(id));
        }
        assert_eq!(read_id("12"), None);
        assert_eq!(read_id("000000000000000g"), None);
    }
}

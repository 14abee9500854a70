//! Incremental parser for the operations a server sends: INFO, MSG, HMSG, PING, PONG, +OK, -ERR.
//!
//! Feed it bytes as they arrive, in chunks of any size (TCP reads, WebSocket frames), then call
//! [`ServerOpParser::next_op`] until it returns `Ok(None)`. Ops come out whole and in order; how
//! the bytes were split never changes the result.
//!
//! How it works, and why:
//! - A control line is found by scanning for LF, resuming where the last scan stopped, so a line
//!   trickling in byte by byte costs linear time. The scan never looks further than the line
//!   limit: without that bound a peer could make the buffer grow forever.
//! - Payloads are framed by their declared length only, never by searching for CRLF, because a
//!   payload may contain CRLF. After the payload must come exactly CRLF, which catches a wrong
//!   length before it corrupts everything after it.
//! - Fields are separated by runs of spaces or tabs (nats-server 2.9 sends `MSG s 1  31`), op
//!   names ignore case, and MSG/HMSG tell an optional reply-to apart by argument count.
//! - A payload that is already buffered is copied out once into the message's own `Vec`. A payload
//!   that spans reads is copied straight from the caller's chunks into a `Vec` of the declared
//!   size, and that `Vec` becomes the message payload, so large messages are not copied twice.
//!
//! Errors are of two kinds (see [`ParseError::is_fatal`]). When the framing is still known
//! (an unknown op is one line; a MSG with a non-UTF-8 subject still has a valid length) the
//! parser skips the offending line or message, reports the error and carries on, as async-nats
//! does (nats.rs #1572). When the framing is lost (bad length, missing CRLF after a payload,
//! over-long line) nothing after it can be trusted: the parser reports the error, drops its
//! buffer and answers [`ParseError::Poisoned`] until [`ServerOpParser::reset`], and the caller
//! should close the connection.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::headers::{is_blank, parse_block, trim, HeaderParseError, Headers, StatusCode};
use super::info::ServerInfo;
use super::server_error::ServerError;

/// Default longest control line, in bytes before the LF. The server's own limit for client lines
/// is 4 KiB; INFO can be longer in large clusters (`connect_urls`), hence the headroom.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 16 * 1024;

/// Default largest MSG/HMSG body (headers + payload) the parser accepts. The server cannot be
/// configured above 64 MiB; lower it to the INFO `max_payload` with
/// [`ServerOpParser::set_max_body`].
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Above this, an emptied buffer gives its memory back, so that one burst of large messages does
/// not pin that much memory for the rest of the connection.
const RETAINED_CAPACITY: usize = 256 * 1024;

/// Longest excerpt of bad input kept in an error.
const EXCERPT: usize = 32;

/// Bounds on what the parser buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Longest control line, counted in bytes before the LF (a CR before it included).
    pub max_control_line: usize,
    /// Largest MSG/HMSG body (headers + payload); larger ones are skipped with an error.
    pub max_body: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// One operation sent by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json}`: on connect, and at any time later (topology changes, lame-duck mode).
    Info(Box<ServerInfo>),
    /// `MSG` or `HMSG`: a message for one of our subscriptions.
    Msg(Msg),
    /// `PING`: answer with PONG promptly, or the server drops the connection.
    Ping,
    /// `PONG`: the answer to our PING.
    Pong,
    /// `+OK`: acknowledgement, only in verbose mode.
    Ok,
    /// `-ERR '<message>'`.
    Err(ServerError),
}

/// A delivered message (MSG, or HMSG when `headers` is `Some`). Serializable so that a reader
/// process can hand it to the subscriber's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msg {
    /// Subject the message was published to.
    pub subject: String,
    /// Id of the subscription it was delivered to.
    pub sid: u64,
    /// Subject to send a reply to, if the publisher asked for one.
    pub reply_to: Option<String>,
    /// The headers of an HMSG; `None` for a MSG.
    pub headers: Option<Headers>,
    /// The status of an HMSG's `NATS/1.0 <status>` line, such as 503 for no responders.
    pub status: Option<StatusCode>,
    /// The text after the status, such as `Message Not Found`.
    pub description: Option<String>,
    /// The payload bytes, which need not be UTF-8.
    #[serde(with = "super::as_bytes")]
    pub payload: Vec<u8>,
}

impl Msg {
    /// Whether this is the server's "no responders" answer to a request: status 503 and an
    /// empty payload.
    pub fn is_no_responders(&self) -> bool {
        self.status == Some(StatusCode::NO_RESPONDERS) && self.payload.is_empty()
    }
}

/// Why the input could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No LF within the line limit. Fatal.
    #[error("control line longer than {max} bytes")]
    ControlLineTooLong {
        /// The limit in force.
        max: usize,
    },
    /// MSG/HMSG with the wrong number of fields, so the payload length is unknown. Fatal.
    #[error("{op}: expected {expected} fields, got {got}")]
    ArgumentCount {
        /// `MSG` or `HMSG`.
        op: &'static str,
        /// The accepted counts, such as `3 or 4`.
        expected: &'static str,
        /// The count received.
        got: usize,
    },
    /// A length field that is not a decimal number, so the payload length is unknown. Fatal.
    #[error("{op}: {field} {text:?} is not a decimal number")]
    InvalidLength {
        /// `MSG` or `HMSG`.
        op: &'static str,
        /// Which field.
        field: &'static str,
        /// The field as received (lossy UTF-8, truncated).
        text: String,
    },
    /// Payload not followed by CRLF: the declared length was wrong. Fatal.
    #[error("{op}: payload not followed by CRLF, its declared length does not match the data")]
    MissingPayloadTerminator {
        /// `MSG` or `HMSG`.
        op: &'static str,
    },
    /// The parser stopped at an earlier fatal error. Fatal.
    #[error("parser stopped after a fatal error; reset it for a new connection")]
    Poisoned,
    /// An op name we do not know; the line was skipped.
    #[error("unknown operation {op:?}")]
    UnknownOp {
        /// The op name as received (lossy UTF-8, truncated).
        op: String,
    },
    /// PING, PONG or +OK followed by fields; the line was skipped.
    #[error("{op} takes no fields")]
    UnexpectedFields {
        /// The op.
        op: &'static str,
    },
    /// INFO whose JSON could not be read; the line was skipped.
    #[error("INFO: invalid JSON: {reason}")]
    InvalidInfo {
        /// What `serde_json` reported.
        reason: String,
    },
    /// MSG/HMSG with a sid that is not a decimal number; the message was skipped.
    #[error("{op}: sid {text:?} is not a decimal number")]
    InvalidSid {
        /// `MSG` or `HMSG`.
        op: &'static str,
        /// The sid as received (lossy UTF-8, truncated).
        text: String,
    },
    /// MSG/HMSG with a subject or reply-to that is not UTF-8; the message was skipped.
    #[error("{op} for sid {sid}: {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// `MSG` or `HMSG`.
        op: &'static str,
        /// `subject` or `reply-to`.
        field: &'static str,
        /// The subscription the message was for.
        sid: u64,
    },
    /// HMSG whose header length exceeds its total length; the message was skipped.
    #[error("HMSG for sid {sid}: header length {header_len} exceeds total length {total_len}")]
    HeaderLenExceedsTotal {
        /// The subscription the message was for.
        sid: u64,
        /// Declared header bytes.
        header_len: u64,
        /// Declared total bytes.
        total_len: u64,
    },
    /// MSG/HMSG larger than [`ParserLimits::max_body`]; the message was skipped unbuffered.
    #[error("{op} for sid {sid}: body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// `MSG` or `HMSG`.
        op: &'static str,
        /// The subscription the message was for.
        sid: u64,
        /// Declared body bytes.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// HMSG whose header block could not be read; the message was skipped.
    #[error("HMSG for sid {sid}: {source}")]
    InvalidHeaders {
        /// The subscription the message was for.
        sid: u64,
        /// What is wrong with the block.
        source: HeaderParseError,
    },
}

impl ParseError {
    /// Whether the framing is lost: the parser is poisoned and the connection must be closed.
    /// Non-fatal errors cover one line or message, which was skipped.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ParseError::ControlLineTooLong { .. }
                | ParseError::ArgumentCount { .. }
                | ParseError::InvalidLength { .. }
                | ParseError::MissingPayloadTerminator { .. }
                | ParseError::Poisoned
        )
    }
}

/// What the parser is in the middle of.
enum State {
    /// Waiting for a control line.
    Line,
    /// Collecting the body of a MSG/HMSG. `body` stays empty (unallocated) while the whole body
    /// may still arrive in the buffer; once a body spans reads, it collects the bytes.
    Body { head: MsgHead, body: Vec<u8> },
    /// Skipping the body of a message that was reported as an error.
    Discard { op: &'static str, remaining: u64 },
}

/// The control line of a MSG/HMSG whose body is pending.
struct MsgHead {
    subject: String,
    sid: u64,
    reply_to: Option<String>,
    header_len: Option<usize>,
    total_len: usize,
}

impl MsgHead {
    fn op(&self) -> &'static str {
        if self.header_len.is_some() {
            "HMSG"
        } else {
            "MSG"
        }
    }
}

/// What a control line turned out to be.
enum Line {
    Op(ServerOp),
    Msg(MsgHead),
    /// A message to skip (body `len` bytes plus CRLF) after reporting `error`.
    Skip {
        op: &'static str,
        len: u64,
        error: ParseError,
    },
}

/// Incremental, sans-IO parser of server operations. See the module docs.
pub struct ServerOpParser {
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the current control line already scanned for LF, counted from `start`.
    scanned: usize,
    state: State,
    limits: ParserLimits,
    poisoned: bool,
}

impl Default for ServerOpParser {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ServerOpParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer itself would flood logs; its size is what matters when debugging.
        let state = match &self.state {
            State::Line => "line",
            State::Body { .. } => "body",
            State::Discard { .. } => "discard",
        };
        f.debug_struct("ServerOpParser")
            .field("buffered", &self.buffered_len())
            .field("state", &state)
            .field("limits", &self.limits)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl ServerOpParser {
    /// A parser with the [default limits](ParserLimits::default).
    pub fn new() -> Self {
        Self::with_limits(ParserLimits::default())
    }

    /// A parser with the given limits.
    pub fn with_limits(limits: ParserLimits) -> Self {
        ServerOpParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            state: State::Line,
            limits,
            poisoned: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> ParserLimits {
        self.limits
    }

    /// Changes the largest body accepted, typically to INFO's `max_payload`. Applies to messages
    /// whose control line has not been parsed yet.
    pub fn set_max_body(&mut self, max_body: usize) {
        self.limits.max_body = max_body;
    }

    /// Bytes received but not yet returned as ops (including a partial body).
    pub fn buffered_len(&self) -> usize {
        let body = match &self.state {
            State::Body { body, .. } => body.len(),
            _ => 0,
        };
        self.available() + body
    }

    /// Whether a fatal error stopped the parser.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Forgets all input and any fatal error, ready for a new connection.
    pub fn reset(&mut self) {
        *self = Self::with_limits(self.limits);
    }

    /// Appends received bytes. Call [`ServerOpParser::next_op`] until `Ok(None)` afterwards:
    /// bytes are only bounded by the limits as ops are taken out. Ignored once poisoned.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.poisoned {
            return;
        }
        if self.available() == 0 {
            // Nothing is queued before these bytes, so the body of a message in progress can go
            // straight to its destination instead of through the buffer.
            match &mut self.state {
                State::Body { head, body } => {
                    let n = (head.total_len - body.len()).min(data.len());
                    if n > 0 {
                        body.reserve_exact(head.total_len - body.len());
                        body.extend_from_slice(&data[..n]);
                        data = &data[n..];
                    }
                }
                State::Discard { remaining, .. } => {
                    let n = clamp(*remaining, data.len());
                    *remaining -= n as u64;
                    data = &data[n..];
                }
                State::Line => {}
            }
        }
        if data.is_empty() {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// The next complete op, `Ok(None)` if more bytes are needed, or an error. After a
    /// non-fatal error call again: the bad line or message was skipped. After a fatal one,
    /// every call returns [`ParseError::Poisoned`].
    pub fn next_op(&mut self) -> Result<Option<ServerOp>, ParseError> {
        if self.poisoned {
            return Err(ParseError::Poisoned);
        }
        let result = self.step();
        if matches!(&result, Err(e) if e.is_fatal()) {
            self.poisoned = true;
            self.buf = Vec::new();
            self.start = 0;
            self.scanned = 0;
            self.state = State::Line;
        }
        result
    }

    fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Moves unconsumed bytes to the front once they are at most half the buffer, so the buffer
    /// does not grow with consumed bytes; the copy is amortised over the consumed half.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            if self.buf.capacity() > RETAINED_CAPACITY {
                self.buf.shrink_to(RETAINED_CAPACITY);
            }
        } else if self.start >= self.buf.len() / 2 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
        } else {
            return;
        }
        self.start = 0;
    }

    fn step(&mut self) -> Result<Option<ServerOp>, ParseError> {
        loop {
            match std::mem::replace(&mut self.state, State::Line) {
                State::Line => {
                    let Some(len) = self.find_line()? else {
                        return Ok(None);
                    };
                    let begin = self.start;
                    self.start += len + 1;
                    self.scanned = 0;
                    let line = &self.buf[begin..begin + len];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    match parse_line(line, self.limits.max_body)? {
                        Line::Op(op) => return Ok(Some(op)),
                        Line::Msg(head) => {
                            self.state = State::Body {
                                head,
                                body: Vec::new(),
                            }
                        }
                        Line::Skip { op, len, error } => {
                            self.state = State::Discard { op, remaining: len };
                            return Err(error);
                        }
                    }
                }
                State::Discard { op, remaining } => {
                    let n = clamp(remaining, self.available());
                    self.start += n;
                    let remaining = remaining - n as u64;
                    if remaining > 0 || self.available() < 2 {
                        self.state = State::Discard { op, remaining };
                        return Ok(None);
                    }
                    self.take_terminator(op)?;
                }
                State::Body { head, body } => return self.step_body(head, body),
            }
        }
    }

    /// Length of the next control line (bytes before the LF), if it is complete.
    fn find_line(&mut self) -> Result<Option<usize>, ParseError> {
        let max = self.limits.max_control_line;
        let from = self.start + self.scanned;
        // A line is too long once max + 1 bytes are seen without LF; never scan past that.
        let end = self
            .buf
            .len()
            .min(self.start.saturating_add(max).saturating_add(1));
        match self.buf[from..end].iter().position(|&b| b == b'\n') {
            Some(i) => Ok(Some(self.scanned + i)),
            None if end - self.start > max => Err(ParseError::ControlLineTooLong { max }),
            None => {
                self.scanned = end - self.start;
                Ok(None)
            }
        }
    }

    /// Consumes the CRLF after a payload; the caller checked that 2 bytes are available.
    fn take_terminator(&mut self, op: &'static str) -> Result<(), ParseError> {
        if self.buf[self.start..self.start + 2] != *b"\r\n" {
            return Err(ParseError::MissingPayloadTerminator { op });
        }
        self.start += 2;
        Ok(())
    }

    fn step_body(
        &mut self,
        head: MsgHead,
        mut body: Vec<u8>,
    ) -> Result<Option<ServerOp>, ParseError> {
        let total = head.total_len;
        if body.is_empty() && self.available() >= total.saturating_add(2) {
            // Whole body buffered: one copy out of the buffer into the payload.
            let begin = self.start;
            self.start += total;
            self.take_terminator(head.op())?;
            let bytes = &self.buf[begin..begin + total];
            let hdr = head.header_len.unwrap_or(0);
            let meta = read_headers(&head, &bytes[..hdr])?;
            let payload = bytes[hdr..].to_vec();
            return Ok(Some(ServerOp::Msg(assemble(head, meta, payload))));
        }
        let n = (total - body.len()).min(self.available());
        if n > 0 {
            body.reserve_exact(total - body.len());
            body.extend_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
        }
        if body.len() < total || self.available() < 2 {
            self.state = State::Body { head, body };
            return Ok(None);
        }
        self.take_terminator(head.op())?;
        let hdr = head.header_len.unwrap_or(0);
        let meta = read_headers(&head, &body[..hdr])?;
        // Shifting the payload down reuses the allocation instead of copying to a new one.
        body.drain(..hdr);
        Ok(Some(ServerOp::Msg(assemble(head, meta, body))))
    }
}

/// `min(remaining, available)` across integer widths (bodies are counted in u64 so that 32-bit
/// targets treat a huge declared length like 64-bit ones: skipped, not fatal).
fn clamp(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

type HeaderMeta = (Option<Headers>, Option<StatusCode>, Option<String>);

fn read_headers(head: &MsgHead, block: &[u8]) -> Result<HeaderMeta, ParseError> {
    if head.header_len.is_none() {
        return Ok((None, None, None));
    }
    let block = parse_block(block).map_err(|source| ParseError::InvalidHeaders {
        sid: head.sid,
        source,
    })?;
    Ok((Some(block.headers), block.status, block.description))
}

fn assemble(head: MsgHead, (headers, status, description): HeaderMeta, payload: Vec<u8>) -> Msg {
    Msg {
        subject: head.subject,
        sid: head.sid,
        reply_to: head.reply_to,
        headers,
        status,
        description,
        payload,
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT)]).into_owned()
}

/// Splits on runs of blanks into `out`; returns the number of fields, which may exceed
/// `out.len()` (the extra ones are counted, not stored).
fn split_fields<'a>(line: &'a [u8], out: &mut [&'a [u8]]) -> usize {
    let mut count = 0;
    for field in line.split(|&b| is_blank(b)).filter(|f| !f.is_empty()) {
        if let Some(slot) = out.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    count
}

fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn parse_line(line: &[u8], max_body: usize) -> Result<Line, ParseError> {
    let line = trim(line);
    let op_end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    let (op, rest) = line.split_at(op_end);
    let rest = trim(rest);
    let no_fields = |name: &'static str, op: ServerOp| {
        if rest.is_empty() {
            Ok(Line::Op(op))
        } else {
            Err(ParseError::UnexpectedFields { op: name })
        }
    };
    if op.eq_ignore_ascii_case(b"MSG") {
        parse_msg(rest, false, max_body)
    } else if op.eq_ignore_ascii_case(b"HMSG") {
        parse_msg(rest, true, max_body)
    } else if op.eq_ignore_ascii_case(b"PING") {
        no_fields("PING", ServerOp::Ping)
    } else if op.eq_ignore_ascii_case(b"PONG") {
        no_fields("PONG", ServerOp::Pong)
    } else if op.eq_ignore_ascii_case(b"+OK") {
        no_fields("+OK", ServerOp::Ok)
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        // Error text is for humans; a stray invalid byte must not hide the error itself.
        Ok(Line::Op(ServerOp::Err(ServerError::parse(
            &String::from_utf8_lossy(rest),
        ))))
    } else if op.eq_ignore_ascii_case(b"INFO") {
        let json = std::str::from_utf8(rest).map_err(|e| ParseError::InvalidInfo {
            reason: e.to_string(),
        })?;
        let info = ServerInfo::parse(json).map_err(|e| ParseError::InvalidInfo {
            reason: e.to_string(),
        })?;
        Ok(Line::Op(ServerOp::Info(Box::new(info))))
    } else {
        Err(ParseError::UnknownOp { op: excerpt(op) })
    }
}

/// `MSG <subject> <sid> [reply-to] <#bytes>` or
/// `HMSG <subject> <sid> [reply-to] <#hdr bytes> <#total bytes>`.
fn parse_msg(rest: &[u8], with_headers: bool, max_body: usize) -> Result<Line, ParseError> {
    let op = if with_headers { "HMSG" } else { "MSG" };
    let mut f: [&[u8]; 5] = [&[]; 5];
    let count = split_fields(rest, &mut f);
    let (subject, sid, reply_to, header_len, total_len) = match (with_headers, count) {
        (false, 3) => (f[0], f[1], None, None, f[2]),
        (false, 4) => (f[0], f[1], Some(f[2]), None, f[3]),
        (true, 4) => (f[0], f[1], None, Some(f[2]), f[3]),
        (true, 5) => (f[0], f[1], Some(f[2]), Some(f[3]), f[4]),
        (false, got) => {
            return Err(ParseError::ArgumentCount {
                op,
                expected: "3 or 4",
                got,
            })
        }
        (true, got) => {
            return Err(ParseError::ArgumentCount {
                op,
                expected: "4 or 5",
                got,
            })
        }
    };

    // Lengths first: they decide the framing, so a bad one is fatal and everything below is a
    // per-message problem that can be skipped.
    let length = |field: &'static str, text: &[u8]| {
        parse_decimal(text).ok_or_else(|| ParseError::InvalidLength {
            op,
            field,
            text: excerpt(text),
        })
    };
    let total = length(
        if with_headers {
            "total length"
        } else {
            "payload length"
        },
        total_len,
    )?;
    let header = header_len.map(|h| length("header length", h)).transpose()?;
    let skip = |error: ParseError| -> Result<Line, ParseError> {
        Ok(Line::Skip {
            op,
            len: total,
            error,
        })
    };

    let Some(sid) = parse_decimal(sid) else {
        return skip(ParseError::InvalidSid {
            op,
            text: excerpt(sid),
        });
    };
    if let Some(header_len) = header {
        if header_len > total {
            return skip(ParseError::HeaderLenExceedsTotal {
                sid,
                header_len,
                total_len: total,
            });
        }
    }
    let total_len = match usize::try_from(total) {
        Ok(t) if t <= max_body => t,
        _ => {
            return skip(ParseError::BodyTooLarge {
                op,
                sid,
                len: total,
                max: max_body,
            })
        }
    };
    let Ok(subject) = std::str::from_utf8(subject) else {
        return skip(ParseError::InvalidUtf8 {
            op,
            field: "subject",
            sid,
        });
    };
    let reply_to = match reply_to.map(std::str::from_utf8).transpose() {
        Ok(r) => r.map(str::to_owned),
        Err(_) => {
            return skip(ParseError::InvalidUtf8 {
                op,
                field: "reply-to",
                sid,
            })
        }
    };
    Ok(Line::Msg(MsgHead {
        subject: subject.to_owned(),
        sid,
        reply_to,
        // header <= total, which fits in usize, so the fallback is never taken.
        header_len: header.map(|h| usize::try_from(h).unwrap_or(total_len)),
        total_len,
    }))
}

//! Message headers (ADR-4): the header map, status codes, and the `NATS/1.0` block format.
//!
//! A header block is `NATS/1.0[ <status>[ <description>]]\r\n`, then `Name: value\r\n` lines,
//! then an empty line. Names are case-preserving and may repeat (one value per line), so the map
//! is an ordered list of pairs rather than a hash map: messages carry a handful of headers, and
//! order and duplicates must survive a round trip.
//!
//! Parsing received blocks is lenient (trims values, joins folded continuation lines like
//! async-nats, skips stray blank lines) because a message must not be lost over cosmetics.
//! Building blocks to send is strict: [`Headers::append`] and the HPUB encoder refuse names
//! and values that would break the block, so received headers can be forwarded safely.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The version line that opens every header block.
const VERSION: &[u8] = b"NATS/1.0";

/// The 3-digit status of a header block's first line, such as `503` for "no responders".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// JetStream idle heartbeat or flow control.
    pub const IDLE_HEARTBEAT: StatusCode = StatusCode(100);
    /// Success.
    pub const OK: StatusCode = StatusCode(200);
    /// End of a Direct Get batch (ADR-31).
    pub const END_OF_BATCH: StatusCode = StatusCode(204);
    /// Not found, or no messages.
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// Request timeout, or bad request.
    pub const TIMEOUT: StatusCode = StatusCode(408);
    /// Request terminated (for example, consumer deleted).
    pub const CONFLICT: StatusCode = StatusCode(409);
    /// Nobody is subscribed to the request subject.
    pub const NO_RESPONDERS: StatusCode = StatusCode(503);
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a header name or value was refused for sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HeaderError {
    /// The name is the empty string.
    #[error("header name is empty")]
    EmptyName,
    /// The name holds a character outside printable ASCII, or a `:`.
    #[error("header name {name:?}: forbidden character {ch:?} at byte {at}, names are printable ASCII without ':'")]
    InvalidName {
        /// The refused name.
        name: String,
        /// The offending character.
        ch: char,
        /// Its byte offset in the name.
        at: usize,
    },
    /// The value holds a CR or LF, which would end the header line.
    #[error("header {name:?}: forbidden character {ch:?} at byte {at} of the value")]
    InvalidValue {
        /// The header's name.
        name: String,
        /// The offending character.
        ch: char,
        /// Its byte offset in the value.
        at: usize,
    },
}

/// Why a received header block could not be read. Lines are numbered from 1 within the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderParseError {
    /// The block does not open with `NATS/1.0`.
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    /// The status after `NATS/1.0` is not 3 digits.
    #[error("header status {text:?} is not a 3-digit code")]
    InvalidStatus {
        /// The status text as received (lossy UTF-8, truncated).
        text: String,
    },
    /// A header line without `:`.
    #[error("header line {line} has no ':'")]
    MissingColon {
        /// 1-based line number in the block.
        line: usize,
    },
    /// A header line whose name is empty.
    #[error("header line {line} has an empty name")]
    EmptyName {
        /// 1-based line number in the block.
        line: usize,
    },
    /// A folded continuation line with no header before it.
    #[error("header line {line} continues a header that does not exist")]
    OrphanContinuation {
        /// 1-based line number in the block.
        line: usize,
    },
    /// A line that is not valid UTF-8.
    #[error("header line {line} is not valid UTF-8")]
    InvalidUtf8 {
        /// 1-based line number in the block.
        line: usize,
    },
}

/// An ordered, multi-valued, case-preserving header map.
///
/// It is serializable so that messages can be passed between Lunatic processes. A deserialized
/// map is not validated, which is safe because the HPUB encoder checks every pair again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value for `name`, keeping any earlier values. Refuses names and values that
    /// cannot be sent (see [`HeaderError`]).
    pub fn append(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), HeaderError> {
        let (name, value) = (name.into(), value.into());
        check_entry(&name, &value)?;
        self.entries.push((name, value));
        Ok(())
    }

    /// Sets `name` to the single `value`, dropping earlier values (exact-case name match).
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), HeaderError> {
        let (name, value) = (name.into(), value.into());
        check_entry(&name, &value)?;
        self.entries.retain(|(n, _)| *n != name);
        self.entries.push((name, value));
        Ok(())
    }

    /// Removes every value of `name` (exact case); returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        before - self.entries.len()
    }

    /// The first value of `name`, matched case-sensitively as the spec says.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, ignoring ASCII case (for peers that change case).
    pub fn get_ignore_ascii_case(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` in arrival order, matched case-sensitively.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All `(name, value)` pairs in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the status-less block HPUB sends for these headers, `NATS/1.0\r\n` through the
    /// closing empty line: the `<#hdr bytes>` of HPUB, and the part of a message that counts
    /// towards `max_payload` besides the payload.
    pub fn wire_len(&self) -> usize {
        let lines: usize = self
            .entries
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + 2)
            .sum();
        VERSION.len() + 2 + lines + 2
    }

    /// Checks every pair as [`Headers::append`] would. Needed because received headers are
    /// parsed leniently and may hold names that cannot be sent back as they are.
    pub fn validate(&self) -> Result<(), HeaderError> {
        self.entries.iter().try_for_each(|(n, v)| check_entry(n, v))
    }

    /// Reads a header block as the server stores it with a message (`NATS/1.0\r\n`, then
    /// `Name: value` lines): JetStream hands one out, base64 encoded, with a stored message. A
    /// status on the first line, which stored messages do not have, is ignored.
    pub fn parse(block: &[u8]) -> Result<Headers, HeaderParseError> {
        parse_block(block).map(|parsed| parsed.headers)
    }

    /// Writes the status-less block; the caller has validated the pairs.
    pub(super) fn write_block(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(VERSION);
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.entries {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn check_entry(name: &str, value: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    if let Some((at, ch)) = name
        .char_indices()
        .find(|&(_, ch)| !ch.is_ascii_graphic() || ch == ':')
    {
        return Err(HeaderError::InvalidName {
            name: name.to_owned(),
            ch,
            at,
        });
    }
    if let Some((at, ch)) = value
        .char_indices()
        .find(|&(_, ch)| ch == '\r' || ch == '\n')
    {
        return Err(HeaderError::InvalidValue {
            name: name.to_owned(),
            ch,
            at,
        });
    }
    Ok(())
}

/// A parsed header block of a received HMSG.
#[derive(Debug)]
pub(super) struct HeaderBlock {
    pub(super) status: Option<StatusCode>,
    pub(super) description: Option<String>,
    pub(super) headers: Headers,
}

/// Whether `b` separates fields: NATS allows runs of spaces and tabs.
pub(super) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing blanks.
pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_blank(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_blank(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn utf8(bytes: &[u8], line: usize) -> Result<&str, HeaderParseError> {
    std::str::from_utf8(bytes).map_err(|_| HeaderParseError::InvalidUtf8 { line })
}

/// Parses a received header block (`#hdr bytes` of an HMSG).
pub(super) fn parse_block(block: &[u8]) -> Result<HeaderBlock, HeaderParseError> {
    let mut lines = block
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .enumerate()
        .map(|(i, line)| (i + 1, line));

    let first = lines.next().map(|(_, line)| line).unwrap_or_default();
    let after_version = first
        .strip_prefix(VERSION)
        .ok_or(HeaderParseError::MissingVersion)?;
    let (status, description) = match after_version {
        [] => (None, None),
        [b, ..] if is_blank(*b) => parse_status(trim(after_version))?,
        _ => return Err(HeaderParseError::MissingVersion),
    };

    let mut headers = Headers::new();
    for (line_no, line) in lines {
        if line.is_empty() {
            // The closing empty line, or a stray one: nothing to keep.
            continue;
        }
        if is_blank(line[0]) {
            // Folded continuation (obsolete MIME style): joined with one space, as async-nats.
            let more = utf8(trim(line), line_no)?;
            let (_, value) = headers
                .entries
                .last_mut()
                .ok_or(HeaderParseError::OrphanContinuation { line: line_no })?;
            if !more.is_empty() {
                value.push(' ');
                value.push_str(more);
            }
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeaderParseError::MissingColon { line: line_no })?;
        let name = utf8(trim(&line[..colon]), line_no)?;
        if name.is_empty() {
            return Err(HeaderParseError::EmptyName { line: line_no });
        }
        let value = utf8(trim(&line[colon + 1..]), line_no)?;
        headers.entries.push((name.to_owned(), value.to_owned()));
    }
    Ok(HeaderBlock {
        status,
        description,
        headers,
    })
}

/// Parses `<3 digits>[ <description>]` after the version.
fn parse_status(text: &[u8]) -> Result<(Option<StatusCode>, Option<String>), HeaderParseError> {
    let code_end = text.iter().position(|&b| is_blank(b)).unwrap_or(text.len());
    let (code, rest) = text.split_at(code_end);
    let code = match code {
        [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => {
            let shown = &code[..code.len().min(16)];
            return Err(HeaderParseError::InvalidStatus {
                text: String::from_utf8_lossy(shown).into_owned(),
            });
        }
    };
    let rest = trim(rest);
    let description = if rest.is_empty() {
        None
    } else {
        Some(utf8(rest, 1)?.to_owned())
    };
    Ok((Some(StatusCode(code)), description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_measures_the_spec_block() {
        let mut h = Headers::new();
        h.append("Bar", "Baz").unwrap();
        let mut out = Vec::new();
        h.write_block(&mut out);
        assert_eq!(out, b"NATS/1.0\r\nBar: Baz\r\n\r\n");
        assert_eq!(h.wire_len(), 22);
        assert_eq!(Headers::new().wire_len(), b"NATS/1.0\r\n\r\n".len());
    }

    #[test]
    fn a_stored_block_reads_back_as_written() {
        let mut h = Headers::new();
        h.append("KV-Operation", "DEL").unwrap();
        h.append("X-Tag", "a").unwrap();
        h.append("X-Tag", "b").unwrap();
        let mut block = Vec::new();
        h.write_block(&mut block);
        assert_eq!(Headers::parse(&block), Ok(h));
        assert_eq!(Headers::parse(b"NATS/1.0\r\n\r\n"), Ok(Headers::new()));
        assert_eq!(
            Headers::parse(b"HTTP/1.1\r\n\r\n"),
            Err(HeaderParseError::MissingVersion)
        );
    }

    #[test]
    fn multi_valued_and_case_preserving() {
        let mut h = Headers::new();
        h.append("X-Tag", "a").unwrap();
        h.append("Other", "o").unwrap();
        h.append("X-Tag", "b").unwrap();
        assert_eq!(h.get("X-Tag"), Some("a"));
        assert_eq!(h.get("x-tag"), None);
        assert_eq!(h.get_ignore_ascii_case("x-tag"), Some("a"));
        assert_eq!(h.get_all("X-Tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.len(), 3);
        h.insert("X-Tag", "c").unwrap();
        assert_eq!(h.get_all("X-Tag").collect::<Vec<_>>(), ["c"]);
        assert_eq!(h.remove("Other"), 1);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("X-Tag", "c")]);
        assert!(!h.is_empty());
    }

    #[test]
    fn refuses_unsendable_names_and_values() {
        let mut h = Headers::new();
        assert_eq!(h.append("", "v"), Err(HeaderError::EmptyName));
        assert_eq!(
            h.append("Bad Name", "v").unwrap_err().to_string(),
            "header name \"Bad Name\": forbidden character ' ' at byte 3, names are printable ASCII without ':'"
        );
        assert!(matches!(
            h.append("a:b", "v"),
            Err(HeaderError::InvalidName { ch: ':', at: 1, .. })
        ));
        assert!(matches!(
            h.append("né", "v"),
            Err(HeaderError::InvalidName { ch: 'é', .. })
        ));
        assert_eq!(
            h.append("X", "ok\r\nPUB evil 0").unwrap_err().to_string(),
            "header \"X\": forbidden character '\\r' at byte 2 of the value"
        );
        assert!(h.insert("X", "a\nb").is_err());
        assert!(h.is_empty());
        // Tabs and UTF-8 are fine in values.
        h.append("X", "tab\there ünï").unwrap();
    }

    #[test]
    fn parses_status_description_and_values() {
        let b = parse_block(b"NATS/1.0 404 Message Not Found\r\n\r\n").unwrap();
        assert_eq!(b.status, Some(StatusCode::NOT_FOUND));
        assert_eq!(b.description.as_deref(), Some("Message Not Found"));
        assert!(b.headers.is_empty());

        let b = parse_block(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(
            (b.status, b.description),
            (Some(StatusCode::NO_RESPONDERS), None)
        );

        let b = parse_block(b"NATS/1.0\r\nA:1\r\nB:  two  \r\nA: 3\r\n  folded\r\n\r\n").unwrap();
        assert_eq!(b.status, None);
        assert_eq!(
            b.headers.get_all("A").collect::<Vec<_>>(),
            ["1", "3 folded"]
        );
        assert_eq!(b.headers.get("B"), Some("two"));
    }

    #[test]
    fn reports_bad_blocks() {
        assert_eq!(
            parse_block(b"").unwrap_err(),
            HeaderParseError::MissingVersion
        );
        assert_eq!(
            parse_block(b"HTTP/1.1\r\n\r\n").unwrap_err(),
            HeaderParseError::MissingVersion
        );
        assert_eq!(
            parse_block(b"NATS/1.01\r\n\r\n").unwrap_err(),
            HeaderParseError::MissingVersion
        );
        assert_eq!(
            parse_block(b"NATS/1.0 50x\r\n\r\n").unwrap_err(),
            HeaderParseError::InvalidStatus { text: "50x".into() }
        );
        assert_eq!(
            parse_block(b"NATS/1.0 5030\r\n\r\n")
                .unwrap_err()
                .to_string(),
            "header status \"5030\" is not a 3-digit code"
        );
        assert_eq!(
            parse_block(b"NATS/1.0\r\nno colon\r\n\r\n").unwrap_err(),
            HeaderParseError::MissingColon { line: 2 }
        );
        assert_eq!(
            parse_block(b"NATS/1.0\r\n: v\r\n\r\n").unwrap_err(),
            HeaderParseError::EmptyName { line: 2 }
        );
        assert_eq!(
            parse_block(b"NATS/1.0\r\n folded\r\n\r\n").unwrap_err(),
            HeaderParseError::OrphanContinuation { line: 2 }
        );
        assert_eq!(
            parse_block(b"NATS/1.0\r\nA: \xff\r\n\r\n").unwrap_err(),
            HeaderParseError::InvalidUtf8 { line: 3 - 1 }
        );
    }

    #[test]
    fn received_odd_names_fail_validation_before_forwarding() {
        let b = parse_block(b"NATS/1.0\r\nOdd Name: v\r\n\r\n").unwrap();
        assert_eq!(b.headers.get("Odd Name"), Some("v"));
        assert!(matches!(
            b.headers.validate(),
            Err(HeaderError::InvalidName { .. })
        ));
    }
}

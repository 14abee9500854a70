//! Encoders for the operations a client sends: CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG.
//!
//! Each encoder appends one complete op to a caller-provided `Vec<u8>`, so a writer can batch
//! many ops into one buffer and one write. Nothing else is allocated: numbers are formatted on
//! the stack and CONNECT is serialized straight into the buffer.
//!
//! Every subject, reply subject, queue group and header goes through the checks of
//! [`super::subject`] and [`super::headers`] first, so no input can inject protocol text. On
//! error nothing is written. The payload size is not checked here, because the encoders do not
//! know the server's `max_payload`: call [`super::check_payload_size`] first.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::headers::{HeaderError, Headers};
use super::limits::MAX_CLIENT_CONTROL_LINE;
use super::subject::{
    validate_publish_subject, validate_queue_group, validate_reply_subject,
    validate_subscribe_subject, SubjectError,
};

/// The options sent in CONNECT.
///
/// The defaults are what this framework needs, and are all sent explicitly, because the server
/// turns verbose and pedantic mode *on* for fields that are left out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Connect {
    /// `+OK` after every op. Keep false: errors come as `-ERR` anyway.
    pub verbose: bool,
    /// Strict server-side checks. Keep false: the encoders validate already.
    pub pedantic: bool,
    /// Whether the client requires TLS.
    pub tls_required: bool,
    /// Token for token authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Client name, shown in server monitoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Implementation language, required by the spec.
    pub lang: String,
    /// Client version, required by the spec.
    pub version: String,
    /// 1 = the client handles INFO at any time (needed for cluster updates and lame-duck mode).
    pub protocol: u8,
    /// Whether the server delivers this connection's own publishes back to it.
    pub echo: bool,
    /// Whether the client understands HPUB/HMSG.
    pub headers: bool,
    /// Whether requests nobody listens to get an immediate 503 (needs `headers`).
    pub no_responders: bool,
    /// User JWT for decentralized authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Public nkey for nkey authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// Signature of the INFO nonce, base64url without padding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            verbose: false,
            pedantic: false,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: "rust".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: 1,
            echo: true,
            headers: true,
            no_responders: true,
            jwt: None,
            nkey: None,
            sig: None,
        }
    }
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials must not end up in logs through a `{:?}`.
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Connect")
            .field("verbose", &self.verbose)
            .field("pedantic", &self.pedantic)
            .field("tls_required", &self.tls_required)
            .field("auth_token", &secret(&self.auth_token))
            .field("user", &self.user)
            .field("pass", &secret(&self.pass))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("echo", &self.echo)
            .field("headers", &self.headers)
            .field("no_responders", &self.no_responders)
            .field("jwt", &secret(&self.jwt))
            .field("nkey", &self.nkey)
            .field("sig", &self.sig)
            .finish()
    }
}

/// Why an op could not be encoded. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum EncodeError {
    /// A subject, reply subject or queue group is invalid.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// A header name or value is invalid.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The control line would exceed the server's default limit, and the server would close the
    /// connection.
    #[error("{op} control line of {len} bytes exceeds the server's limit of {max} bytes")]
    ControlLineTooLong {
        /// The op being encoded.
        op: &'static str,
        /// Length of the line without CRLF.
        len: usize,
        /// [`MAX_CLIENT_CONTROL_LINE`].
        max: usize,
    },
    /// The CONNECT options could not be serialized.
    #[error("CONNECT: cannot serialize the options: {reason}")]
    Connect {
        /// What `serde_json` reported.
        reason: String,
    },
}

/// Read by hand because of the `&'static str` in [`EncodeError::ControlLineTooLong`] (serde's
/// derive would only read it from `'static` input): the same shape as the derived `Serialize`,
/// with the op name mapped back to the encoders' own text.
impl<'de> Deserialize<'de> for EncodeError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        enum Wire {
            Subject(SubjectError),
            Header(HeaderError),
            ControlLineTooLong { op: String, len: usize, max: usize },
            Connect { reason: String },
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Subject(e) => EncodeError::Subject(e),
            Wire::Header(e) => EncodeError::Header(e),
            Wire::ControlLineTooLong { op, len, max } => EncodeError::ControlLineTooLong {
                // The names `check_line` is called with.
                op: ["PUB", "HPUB", "SUB"]
                    .into_iter()
                    .find(|known| *known == op)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown op {op:?}")))?,
                len,
                max,
            },
            Wire::Connect { reason } => EncodeError::Connect { reason },
        })
    }
}

/// Appends `CONNECT {json}\r\n`. The JSON escapes every control character, so the option
/// strings cannot break the line.
pub fn encode_connect(out: &mut Vec<u8>, connect: &Connect) -> Result<(), EncodeError> {
    let mark = out.len();
    out.extend_from_slice(b"CONNECT ");
    if let Err(e) = serde_json::to_writer(&mut *out, connect) {
        out.truncate(mark);
        return Err(EncodeError::Connect {
            reason: e.to_string(),
        });
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `PUB <subject> [reply-to] <#bytes>\r\n<payload>\r\n`.
pub fn encode_pub(
    out: &mut Vec<u8>,
    subject: &str,
    reply_to: Option<&str>,
    payload: &[u8],
) -> Result<(), EncodeError> {
    check_publish(subject, reply_to)?;
    let len = payload.len() as u64;
    let line_len = "PUB ".len() + subject.len() + reply_len(reply_to) + 1 + digits(len);
    check_line("PUB", line_len)?;
    out.reserve(line_len + 2 + payload.len() + 2);
    out.extend_from_slice(b"PUB ");
    push_subjects(out, subject, reply_to);
    push_u64(out, len);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `HPUB <subject> [reply-to] <#hdr bytes> <#total bytes>\r\n<headers><payload>\r\n`,
/// with a status-less `NATS/1.0` header block. The bytes that count towards `max_payload` are
/// [`Headers::wire_len`] plus the payload.
pub fn encode_hpub(
    out: &mut Vec<u8>,
    subject: &str,
    reply_to: Option<&str>,
    headers: &Headers,
    payload: &[u8],
) -> Result<(), EncodeError> {
    check_publish(subject, reply_to)?;
    headers.validate()?;
    let hdr_len = headers.wire_len() as u64;
    let total = hdr_len + payload.len() as u64;
    let line_len = "HPUB ".len()
        + subject.len()
        + reply_len(reply_to)
        + 1
        + digits(hdr_len)
        + 1
        + digits(total);
    check_line("HPUB", line_len)?;
    out.reserve(line_len + 2 + headers.wire_len() + payload.len() + 2);
    out.extend_from_slice(b"HPUB ");
    push_subjects(out, subject, reply_to);
    push_u64(out, hdr_len);
    out.push(b' ');
    push_u64(out, total);
    out.extend_from_slice(b"\r\n");
    headers.write_block(out);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `SUB <subject> [queue group] <sid>\r\n`. The subject may hold wildcards.
pub fn encode_sub(
    out: &mut Vec<u8>,
    subject: &str,
    queue_group: Option<&str>,
    sid: u64,
) -> Result<(), EncodeError> {
    validate_subscribe_subject(subject)?;
    if let Some(queue) = queue_group {
        validate_queue_group(queue)?;
    }
    let line_len =
        "SUB ".len() + subject.len() + queue_group.map_or(0, |q| q.len() + 1) + 1 + digits(sid);
    check_line("SUB", line_len)?;
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    if let Some(queue) = queue_group {
        out.extend_from_slice(queue.as_bytes());
        out.push(b' ');
    }
    push_u64(out, sid);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `UNSUB <sid> [max_msgs]\r\n`: unsubscribe now, or after `max_msgs` more messages.
pub fn encode_unsub(out: &mut Vec<u8>, sid: u64, max_msgs: Option<u64>) {
    out.extend_from_slice(b"UNSUB ");
    push_u64(out, sid);
    if let Some(max) = max_msgs {
        out.push(b' ');
        push_u64(out, max);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `PING\r\n`.
pub fn encode_ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// Appends `PONG\r\n`.
pub fn encode_pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

fn check_publish(subject: &str, reply_to: Option<&str>) -> Result<(), EncodeError> {
    validate_publish_subject(subject)?;
    if let Some(reply) = reply_to {
        validate_reply_subject(reply)?;
    }
    Ok(())
}

fn check_line(op: &'static str, len: usize) -> Result<(), EncodeError> {
    // Counting the verb makes this slightly stricter than the server, which is the safe side.
    if len > MAX_CLIENT_CONTROL_LINE {
        return Err(EncodeError::ControlLineTooLong {
            op,
            len,
            max: MAX_CLIENT_CONTROL_LINE,
        });
    }
    Ok(())
}

fn reply_len(reply_to: Option<&str>) -> usize {
    reply_to.map_or(0, |r| r.len() + 1)
}

/// Writes `<subject> [reply-to] ` (with the trailing space).
fn push_subjects(out: &mut Vec<u8>, subject: &str, reply_to: Option<&str>) {
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    if let Some(reply) = reply_to {
        out.extend_from_slice(reply.as_bytes());
        out.push(b' ');
    }
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::super::subject::{NameKind, SubjectError};
    use super::*;

    fn pub_bytes(subject: &str, reply: Option<&str>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_pub(&mut out, subject, reply, payload).unwrap();
        out
    }

    #[test]
    fn pub_matches_the_spec_examples() {
        assert_eq!(
            pub_bytes("FOO", None, b"Hello NATS!"),
            b"PUB FOO 11\r\nHello NATS!\r\n"
        );
        assert_eq!(
            pub_bytes("FRONT.DOOR", Some("JOKE.22"), b"Knock Knock"),
            b"PUB FRONT.DOOR JOKE.22 11\r\nKnock Knock\r\n"
        );
        assert_eq!(pub_bytes("NOTIFY", None, b""), b"PUB NOTIFY 0\r\n\r\n");
        // Payloads are opaque: CRLF and non-UTF-8 go through untouched.
        assert_eq!(
            pub_bytes("a", None, b"x\r\n\xff"),
            b"PUB a 4\r\nx\r\n\xff\r\n"
        );
    }

    #[test]
    fn hpub_matches_the_spec_examples() {
        let mut h = Headers::new();
        h.append("Bar", "Baz").unwrap();
        let mut out = Vec::new();
        encode_hpub(&mut out, "FOO", None, &h, b"Hello NATS!").unwrap();
        assert_eq!(
            out,
            b"HPUB FOO 22 33\r\nNATS/1.0\r\nBar: Baz\r\n\r\nHello NATS!\r\n"
        );

        out.clear();
        encode_hpub(&mut out, "NOTIFY", None, &h, b"").unwrap();
        assert_eq!(
            out,
            b"HPUB NOTIFY 22 22\r\nNATS/1.0\r\nBar: Baz\r\n\r\n\r\n"
        );

        out.clear();
        let mut h = Headers::new();
        h.append("Nats-Expected-Last-Subject-Sequence", "0")
            .unwrap();
        h.append("X", "1").unwrap();
        h.append("X", "2").unwrap();
        encode_hpub(&mut out, "$KV.agents.a1", Some("_INBOX.r.1"), &h, b"hi").unwrap();
        let block = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\nX: 1\r\nX: 2\r\n\r\n";
        let mut expected = format!(
            "HPUB $KV.agents.a1 _INBOX.r.1 {} {}\r\n",
            block.len(),
            block.len() + 2
        )
        .into_bytes();
        expected.extend_from_slice(block);
        expected.extend_from_slice(b"hi\r\n");
        assert_eq!(out, expected);

        out.clear();
        encode_hpub(&mut out, "E", None, &Headers::new(), b"").unwrap();
        assert_eq!(out, b"HPUB E 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    }

    #[test]
    fn sub_unsub_ping_pong() {
        let mut out = Vec::new();
        encode_sub(&mut out, "BAR", Some("G1"), 44).unwrap();
        encode_sub(&mut out, "_INBOX.x.*", None, 0).unwrap();
        encode_sub(&mut out, "a.>", None, u64::MAX).unwrap();
        encode_unsub(&mut out, 1, Some(5));
        encode_unsub(&mut out, 7, None);
        encode_ping(&mut out);
        encode_pong(&mut out);
        assert_eq!(
            out,
            b"SUB BAR G1 44\r\nSUB _INBOX.x.* 0\r\nSUB a.> 18446744073709551615\r\nUNSUB 1 5\r\nUNSUB 7\r\nPING\r\nPONG\r\n"
        );
    }

    #[test]
    fn connect_sends_every_default_explicitly() {
        let mut out = Vec::new();
        encode_connect(&mut out, &Connect::default()).unwrap();
        assert!(out.starts_with(b"CONNECT {") && out.ends_with(b"}\r\n"));
        let json: serde_json::Value = serde_json::from_slice(&out[8..out.len() - 2]).unwrap();
        assert_eq!(json["verbose"], false);
        assert_eq!(json["pedantic"], false);
        assert_eq!(json["headers"], true);
        assert_eq!(json["no_responders"], true);
        assert_eq!(json["protocol"], 1);
        assert_eq!(json["echo"], true);
        assert_eq!(json["lang"], "rust");
        assert!(json["version"].is_string());
        for absent in ["auth_token", "user", "pass", "name", "jwt", "nkey", "sig"] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn connect_escapes_option_strings_and_redacts_debug() {
        let connect = Connect {
            auth_token: Some("s3cret".into()),
            user: Some("bob".into()),
            pass: Some("hunter2".into()),
            name: Some("agent\r\nPUB evil 0".into()),
            ..Connect::default()
        };
        let mut out = b"PING\r\n".to_vec();
        encode_connect(&mut out, &connect).unwrap();
        // Exactly one CRLF after the PING: the one that ends CONNECT.
        let line = &out[6..];
        assert_eq!(line.windows(2).filter(|w| w == b"\r\n").count(), 1);
        let json: serde_json::Value = serde_json::from_slice(&line[8..line.len() - 2]).unwrap();
        assert_eq!(json["auth_token"], "s3cret");
        assert_eq!(json["user"], "bob");
        assert_eq!(json["pass"], "hunter2");
        assert_eq!(json["name"], "agent\r\nPUB evil 0");
        let debug = format!("{connect:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("<redacted>") && debug.contains("bob"));
    }

    #[test]
    fn validation_runs_first_and_nothing_is_written_on_error() {
        let mut out = b"keep".to_vec();
        let bad = [
            encode_pub(&mut out, "a b", None, b"x").unwrap_err(),
            encode_pub(&mut out, "foo.*", None, b"x").unwrap_err(),
            encode_pub(&mut out, "ok", Some("x\r\nUNSUB 1"), b"x").unwrap_err(),
            encode_pub(&mut out, "", None, b"x").unwrap_err(),
            encode_sub(&mut out, "a..b", None, 1).unwrap_err(),
            encode_sub(&mut out, "a.>.b", None, 1).unwrap_err(),
            encode_sub(&mut out, "ok", Some("q 1"), 1).unwrap_err(),
            encode_sub(&mut out, "ok", Some(""), 1).unwrap_err(),
            encode_hpub(&mut out, "x\ty", None, &Headers::new(), b"").unwrap_err(),
        ];
        assert_eq!(out, b"keep");
        assert!(
            bad.iter().all(|e| matches!(e, EncodeError::Subject(_))),
            "{bad:?}"
        );
        assert_eq!(
            bad[2].to_string(),
            "reply subject \"x\\r\\nUNSUB 1\": forbidden character '\\r' at byte 1"
        );
        assert_eq!(
            bad[7],
            EncodeError::Subject(SubjectError::Empty {
                what: NameKind::QueueGroup
            })
        );
    }

    #[test]
    fn forwarded_headers_are_revalidated() {
        // Headers parsed from the wire are lenient; sending them back must still be safe.
        let block = super::super::headers::parse_block(b"NATS/1.0\r\nOdd Name: v\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let err = encode_hpub(&mut out, "a", None, &block.headers, b"").unwrap_err();
        assert!(matches!(
            err,
            EncodeError::Header(HeaderError::InvalidName { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn refuses_control_lines_the_server_would_reject() {
        let long = "a".repeat(MAX_CLIENT_CONTROL_LINE);
        let mut out = Vec::new();
        let err = encode_pub(&mut out, &long, None, b"").unwrap_err();
        assert_eq!(
            err,
            EncodeError::ControlLineTooLong {
                op: "PUB",
                len: 4 + 4096 + 2,
                max: 4096
            }
        );
        assert_eq!(
            err.to_string(),
            "PUB control line of 4102 bytes exceeds the server's limit of 4096 bytes"
        );
        assert!(encode_sub(&mut out, &long, None, 1).is_err());
        assert!(encode_hpub(&mut out, &long, None, &Headers::new(), b"").is_err());
        assert!(out.is_empty());
        // Just at the limit is fine: "PUB " + subject + " 0" == 4096.
        let fits = "a".repeat(MAX_CLIENT_CONTROL_LINE - 6);
        encode_pub(&mut out, &fits, None, b"").unwrap();
    }

    #[test]
    fn number_formatting() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            assert_eq!(digits(n), n.to_string().len());
        }
    }
}

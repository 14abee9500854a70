//! A sans-IO codec for the NATS client protocol: parse what the server sends, encode what the
//! client sends. No sockets, threads or async: the caller moves bytes, this module only turns
//! them into ops and back, so it runs unchanged natively and on wasm32-wasip1 under Lunatic.
//!
//! - [`ServerOpParser`] takes byte chunks of any size and yields [`ServerOp`]s
//!   (INFO, MSG/HMSG, PING, PONG, +OK, -ERR).
//! - `encode_*` functions append client ops (CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG) to a
//!   caller's `Vec<u8>`, after validating every subject, queue group and header, so callers
//!   cannot inject protocol text.
//! - [`check_payload_size`] checks a message against the server's `max_payload` before sending.
//!
//! # Why our own codec rather than `watermelon-proto`
//!
//! `watermelon-proto` 0.1.8 is the only maintained sans-IO NATS protocol crate, and was weighed
//! before writing this one (the project's research notes, which are not part of the repository).
//! We write our own because:
//! - it needs Rust 1.89 (edition 2024) while this workspace promises 1.80;
//! - it is 0.x with breaking changes pending on its master branch, from a single small vendor;
//! - it would add `bytes`, `bytestring`, `url`, `percent-encoding`, `unicase` and `itoa` to the
//!   wasm build, where this codec needs only what the crate already uses (std, `serde`,
//!   `serde_json` for INFO/CONNECT, `thiserror`);
//! - its choices differ from ours where it matters: it refuses unquoted `-ERR` and subjects over
//!   256 bytes, while we want a lenient reader, and we want to choose ourselves which errors skip
//!   one message and which end the connection.
//!
//! The protocol is small (a dozen ops), so the cost is a few hundred lines plus tests that cover
//! the edge cases real clients handle (split reads, CRLF in payloads, runs of blanks, optional
//! reply-to, header-only messages, async INFO, unknown ops, non-UTF-8 subjects, injection).

pub(crate) mod as_bytes;
mod client_op;
mod headers;
mod info;
mod limits;
mod server_error;
mod server_op;
mod subject;

#[cfg(test)]
mod tests;

pub use client_op::{
    encode_connect, encode_hpub, encode_ping, encode_pong, encode_pub, encode_sub, encode_unsub,
    Connect, EncodeError,
};
pub use headers::{HeaderError, HeaderParseError, Headers, StatusCode};
pub use info::ServerInfo;
pub use limits::{
    check_payload_size, PayloadTooLarge, DEFAULT_MAX_PAYLOAD, MAX_CLIENT_CONTROL_LINE,
};
pub use server_error::{PermissionAction, ServerError, ServerErrorKind};
pub use server_op::{
    Msg, ParseError, ParserLimits, ServerOp, ServerOpParser, DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONTROL_LINE,
};
pub use subject::{
    validate_publish_subject, validate_queue_group, validate_reply_subject,
    validate_subscribe_subject, NameKind, SubjectError,
};

//! A durable pull consumer with explicit acks, without the I/O: its configuration as the
//! JetStream API takes it (`$JS.API.CONSUMER.CREATE.<stream>.<durable>`), the pull request
//! (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`), what each message that comes back to the
//! pull's inbox is (a stream message, or a status that ends the pull), and the ack bodies.
//!
//! A durable consumer is kept by the server under its name: its position (what was acked) outlives
//! the process and the node that consumed it, so a consumer started again after a crash gets every
//! message that was not acked, again (at least once). A message not acked within `ack_wait` is
//! delivered again, at most `max_deliver` times.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ordered::parse_ack_subject;
use crate::nats::codec::{Headers, Msg, StatusCode};

/// Where a new durable consumer starts in its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliverFrom {
    /// The stream's first message.
    All,
    /// Only messages stored after the consumer is made.
    New,
    /// The message with this stream sequence, and on.
    Sequence(u64),
    /// The first message stored at or after this time (RFC 3339, such as
    /// `2026-12-01T22:00:00Z`), and on.
    Time(String),
}

/// A durable pull consumer's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableConfig {
    /// Its name (`A-Z a-z 0-9 _ -`): the server keeps its position under it.
    pub durable: String,
    /// Only messages on this subject (wildcards allowed); empty: every message of the stream.
    pub filter_subject: String,
    /// Where it starts when it is made (an existing consumer goes on from its position).
    pub deliver_from: DeliverFrom,
    /// How long the server waits for a message's ack before delivering it again.
    pub ack_wait: Duration,
    /// How many times a message is delivered at most (then the server gives up on it).
    pub max_deliver: i64,
    /// How many delivered messages may wait for their ack at once.
    pub max_ack_pending: i64,
}

impl DurableConfig {
    /// A consumer named `durable` of every message from the first, acks awaited 30 s, each
    /// message delivered at most 5 times, at most 1,024 waiting for their ack.
    pub fn new(durable: impl Into<String>) -> DurableConfig {
        DurableConfig {
            durable: durable.into(),
            filter_subject: String::new(),
            deliver_from: DeliverFrom::All,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_ack_pending: 1024,
        }
    }
}

#[derive(Serialize)]
struct CreateRequest<'a> {
    stream_name: &'a str,
    config: ConsumerConfig<'a>,
}

#[derive(Serialize)]
struct ConsumerConfig<'a> {
    durable_name: &'a str,
    name: &'a str,
    deliver_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    opt_start_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opt_start_time: Option<&'a str>,
    ack_policy: &'static str,
    ack_wait: u64,
    max_deliver: i64,
    max_ack_pending: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    filter_subject: &'a str,
    replay_policy: &'static str,
}

/// The body of `$JS.API.CONSUMER.CREATE.<stream>.<durable>`.
pub(crate) fn create_request(stream: &str, config: &DurableConfig) -> Vec<u8> {
    let (deliver_policy, opt_start_seq, opt_start_time) = match &config.deliver_from {
        DeliverFrom::All => ("all", None, None),
        DeliverFrom::New => ("new", None, None),
        DeliverFrom::Sequence(seq) => ("by_start_sequence", Some(*seq), None),
        DeliverFrom::Time(time) => ("by_start_time", None, Some(time.as_str())),
    };
    let request = CreateRequest {
        stream_name: stream,
        config: ConsumerConfig {
            durable_name: &config.durable,
            name: &config.durable,
            deliver_policy,
            opt_start_seq,
            opt_start_time,
            ack_policy: "explicit",
            ack_wait: config.ack_wait.as_nanos() as u64,
            max_deliver: config.max_deliver,
            max_ack_pending: config.max_ack_pending,
            filter_subject: &config.filter_subject,
            replay_policy: "instant",
        },
    };
    // Strings, numbers and booleans always serialize.
    serde_json::to_vec(&request).unwrap_or_default()
}

/// The body of a pull: up to `batch` messages, the request standing for `expires` at most.
pub(crate) fn next_request(batch: usize, expires: Duration) -> Vec<u8> {
    format!(
        r#"{{"batch":{batch},"expires":{}}}"#,
        expires.as_nanos() as u64
    )
    .into_bytes()
}

/// A message a durable consumer delivered, to be acked once it is dealt with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsMessage {
    /// The subject it was published to.
    pub subject: String,
    /// Its headers, if it had any.
    pub headers: Option<Headers>,
    /// Its payload.
    #[serde(with = "crate::nats::codec::as_bytes")]
    pub payload: Vec<u8>,
    /// Its sequence in the stream: the same on every delivery of it.
    pub stream_sequence: u64,
    /// How many times it was delivered, this time included (1 the first time).
    pub delivered: u64,
    /// Messages the consumer still has for this pull's filter after this one.
    pub pending: u64,
    /// The subject its ack goes to (`$JS.ACK...`).
    pub reply: String,
}

/// What came to a pull's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pulled {
    /// A message of the stream.
    Message(JsMessage),
    /// The pull is over: no messages (404), its time ran out (408), or the server ended it
    /// (409: the consumer was deleted, or too many pulls wait).
    Ended(u16, String),
    /// A heartbeat or something else to ignore.
    Ignore,
}

/// Reads one message of a pull's inbox.
pub(crate) fn classify(msg: Msg) -> Pulled {
    match msg.status {
        Some(StatusCode::IDLE_HEARTBEAT) => return Pulled::Ignore,
        Some(StatusCode(code)) if msg.payload.is_empty() => {
            return Pulled::Ended(code, msg.description.unwrap_or_default())
        }
        _ => {}
    }
    let Some(reply) = msg.reply_to else {
        return Pulled::Ignore;
    };
    let Some(info) = parse_ack_subject(&reply) else {
        return Pulled::Ignore;
    };
    Pulled::Message(JsMessage {
        subject: msg.subject,
        headers: msg.headers,
        payload: msg.payload,
        stream_sequence: info.stream_seq,
        delivered: info.delivered,
        pending: info.pending,
        reply,
    })
}

/// The body of an ack: done with the message.
pub(crate) const ACK: &[u8] = b"+ACK";

/// The body of a negative ack: deliver it again after `delay`.
pub(crate) fn nak(delay: Duration) -> Vec<u8> {
    format!(r#"-NAK {{"delay":{}}}"#, delay.as_nanos() as u64).into_bytes()
}

/// The body of a terminal ack: never deliver it again.
pub(crate) const TERM: &[u8] = b"+TERM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_request_is_a_durable_with_explicit_acks() {
        let mut config = DurableConfig::new("swarm-stock-placed");
        config.filter_subject = "shop.orders.*.placed".into();
        config.deliver_from = DeliverFrom::Sequence(42);
        let body: serde_json::Value =
            serde_json::from_slice(&create_request("ORDERS", &config)).unwrap();
        assert_eq!(body["stream_name"], "ORDERS");
        let c = &body["config"];
        assert_eq!(c["durable_name"], "swarm-stock-placed");
        assert_eq!(c["ack_policy"], "explicit");
        assert_eq!(c["deliver_policy"], "by_start_sequence");
        assert_eq!(c["opt_start_seq"], 42);
        assert_eq!(c["ack_wait"], 30_000_000_000u64);
        assert_eq!(c["filter_subject"], "shop.orders.*.placed");
        assert!(c.get("opt_start_time").is_none());

        config.deliver_from = DeliverFrom::Time("2026-12-01T22:00:00Z".into());
        config.filter_subject.clear();
        let body: serde_json::Value =
            serde_json::from_slice(&create_request("ORDERS", &config)).unwrap();
        assert_eq!(body["config"]["deliver_policy"], "by_start_time");
        assert_eq!(body["config"]["opt_start_time"], "2026-12-01T22:00:00Z");
        assert!(body["config"].get("filter_subject").is_none());
    }

    #[test]
    fn pulled_messages_and_statuses_are_told_apart() {
        let msg = |status: Option<u16>, reply: Option<&str>, payload: &[u8]| Msg {
            subject: "shop.orders.a.placed".into(),
            sid: 1,
            reply_to: reply.map(str::to_owned),
            headers: None,
            status: status.map(StatusCode),
            description: status.map(|_| "No Messages".to_owned()),
            payload: payload.to_vec(),
        };
        match classify(msg(
            None,
            Some("$JS.ACK.ORDERS.d.2.17.9.1700000000000000000.3"),
            b"{}",
        )) {
            Pulled::Message(m) => {
                assert_eq!((m.stream_sequence, m.delivered, m.pending), (17, 2, 3));
                assert_eq!(m.payload, b"{}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(msg(Some(404), None, b"")),
            Pulled::Ended(404, "No Messages".into())
        );
        assert_eq!(classify(msg(Some(100), None, b"")), Pulled::Ignore);
        assert_eq!(classify(msg(None, Some("_INBOX.x"), b"{}")), Pulled::Ignore);
        assert_eq!(nak(Duration::from_secs(1)), br#"-NAK {"delay":1000000000}"#);
        assert_eq!(
            next_request(10, Duration::from_millis(500)),
            br#"{"batch":10,"expires":500000000}"#
        );
    }
}

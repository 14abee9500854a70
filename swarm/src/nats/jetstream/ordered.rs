//! The ordered consumer behind a KV watch, without the I/O (ADR-17's ordered consumer, as
//! async-nats's `consumer/push.rs` implements it): the consumer's configuration, where a
//! delivered message sits (from its `$JS.ACK...` reply subject), and what to do with each
//! message: hand it out, answer flow control, or start again after a gap.
//!
//! An ordered consumer is an ephemeral push consumer without acknowledgements, delivering to an
//! inbox subject that only the watching process subscribes to. The server numbers deliveries
//! (the consumer sequence): one that does not follow the last one, or a heartbeat whose
//! `Nats-Last-Consumer` is not the last one seen, means messages were lost on the way, and the
//! watch makes a new consumer that starts after the last stream sequence it handed out. So does
//! silence past a few heartbeats: the consumer is gone (server restarted, consumer deleted).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::nats::codec::{Msg, StatusCode};

/// How often the server sends a heartbeat to an idle watch. Short, because silence is how a
/// watch learns that its consumer is gone (a restarted server forgets it): a heartbeat a second
/// per idle watch costs little, and a cluster's watchers recover within a few seconds.
pub(crate) const IDLE_HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which a watch presumes its consumer lost and makes a new one: three missed
/// heartbeats.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// A heartbeat's header: the last consumer sequence the server delivered.
const LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// A heartbeat's header while flow control waits for an answer: where to send it.
const CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";

/// Where a delivered message sits, from its `$JS.ACK` reply subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckInfo {
    /// How many times the message was delivered to this consumer, this time included.
    pub(crate) delivered: u64,
    /// The message's sequence in the stream (a KV revision).
    pub(crate) stream_seq: u64,
    /// The delivery's number for this consumer: 1, 2, 3, ...
    pub(crate) consumer_seq: u64,
    /// Messages the consumer still has to deliver after this one.
    pub(crate) pending: u64,
}

/// Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`
/// and the v2 form with `<domain>.<account hash>` after `ACK` (ADR-15; the server may append
/// more tokens to v2).
pub(crate) fn parse_ack_subject(reply: &str) -> Option<AckInfo> {
    let tokens: Vec<&str> = reply.split('.').collect();
    if tokens.len() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    // After `$JS.ACK.`: v1 has stream and consumer, v2 domain, account hash, stream, consumer.
    let at = match tokens.len() {
        9 => 4,
        n if n >= 11 => 6,
        _ => return None,
    };
    let number = |i: usize| tokens[at + i].parse::<u64>().ok();
    Some(AckInfo {
        delivered: number(0)?,
        stream_seq: number(1)?,
        consumer_seq: number(2)?,
        pending: number(4)?,
    })
}

/// Where a new consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The last message of each subject, then everything new (a watch's snapshot).
    LastPerSubject,
    /// At this stream sequence (after a reset).
    At(u64),
}

/// `$JS.API.CONSUMER.CREATE.<stream>`'s body for an ordered push consumer.
#[derive(Serialize)]
struct CreateRequest<'a> {
    stream_name: &'a str,
    config: ConsumerConfig<'a>,
}

#[derive(Serialize)]
struct ConsumerConfig<'a> {
    deliver_subject: &'a str,
    deliver_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    opt_start_seq: Option<u64>,
    ack_policy: &'static str,
    max_deliver: i64,
    replay_policy: &'static str,
    filter_subject: &'a str,
    flow_control: bool,
    idle_heartbeat: u64,
    headers_only: bool,
    mem_storage: bool,
    num_replicas: usize,
}

/// The body that creates an ordered consumer of `stream` delivering to `deliver_subject` the
/// messages on `filter_subject` from `start`; with `headers_only`, without their payloads.
pub(crate) fn create_request(
    stream: &str,
    deliver_subject: &str,
    filter_subject: &str,
    start: Start,
    headers_only: bool,
) -> Vec<u8> {
    let (deliver_policy, opt_start_seq) = match start {
        Start::LastPerSubject => ("last_per_subject", None),
        Start::At(seq) => ("by_start_sequence", Some(seq)),
    };
    let request = CreateRequest {
        stream_name: stream,
        config: ConsumerConfig {
            deliver_subject,
            deliver_policy,
            opt_start_seq,
            ack_policy: "none",
            max_deliver: 1,
            replay_policy: "instant",
            filter_subject,
            flow_control: true,
            idle_heartbeat: IDLE_HEARTBEAT.as_nanos() as u64,
            headers_only,
            mem_storage: true,
            num_replicas: 1,
        },
    };
    // A struct of strings, numbers and booleans always serializes.
    serde_json::to_vec(&request).unwrap_or_default()
}

/// The part of the created consumer's info a watch reads.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsumerCreated {
    /// The name the server gave it (to delete it).
    pub(crate) name: String,
    /// Messages it has to deliver: 0 means a watch starts caught up.
    #[serde(default)]
    pub(crate) num_pending: u64,
}

/// What to do with a message that came to the watch's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next message of the stream: hand it out.
    Deliver(AckInfo),
    /// Flow control or a heartbeat: publish an empty message to each of `answer`; make a new
    /// consumer if `reset` (the heartbeat names a delivery that never came).
    Control { answer: Vec<String>, reset: bool },
    /// Deliveries were lost, or the server ended the consumer: make a new one. Says why.
    Reset(String),
    /// Nothing to do.
    Ignore,
}

/// The ordered consumer's position.
#[derive(Debug, Clone)]
pub(crate) struct Ordered {
    /// Where the first consumer started.
    first: Start,
    /// The last delivery handed out by the current consumer.
    consumer_seq: u64,
    /// The stream sequence of the last message handed out by any consumer.
    stream_seq: u64,
    caught_up: bool,
}

impl Ordered {
    pub(crate) fn new(first: Start) -> Ordered {
        Ordered {
            first,
            consumer_seq: 0,
            stream_seq: 0,
            caught_up: false,
        }
    }

    /// Where the next consumer starts: where the first did if nothing was handed out yet, else
    /// right after the last message handed out.
    pub(crate) fn start(&self) -> Start {
        match self.stream_seq {
            0 => self.first,
            seq => Start::At(seq + 1),
        }
    }

    /// A new consumer was made, with `num_pending` messages to deliver.
    pub(crate) fn created(&mut self, num_pending: u64) {
        self.consumer_seq = 0;
        if num_pending == 0 {
            self.caught_up = true;
        }
    }

    /// Whether every message that was there when the watch started has been handed out.
    pub(crate) fn caught_up(&self) -> bool {
        self.caught_up
    }

    pub(crate) fn on_message(&mut self, msg: &Msg) -> Step {
        match msg.status {
            Some(StatusCode::IDLE_HEARTBEAT) => {
                let headers = msg.headers.as_ref();
                // Flow control asks on its reply subject; a stalled one in a heartbeat's header.
                let answer = msg
                    .reply_to
                    .iter()
                    .cloned()
                    .chain(
                        headers
                            .and_then(|h| h.get(CONSUMER_STALLED))
                            .map(str::to_owned),
                    )
                    .collect();
                let last = headers
                    .and_then(|h| h.get(LAST_CONSUMER))
                    .and_then(|seq| seq.trim().parse::<u64>().ok());
                Step::Control {
                    answer,
                    reset: last.is_some_and(|last| last != self.consumer_seq),
                }
            }
            Some(StatusCode::CONFLICT) => Step::Reset(format!(
                "the server ended the consumer ({})",
                msg.description.as_deref().unwrap_or("409")
            )),
            Some(_) => Step::Ignore,
            None => {
                // Anything without an ack subject is not from the consumer.
                let Some(ack) = msg.reply_to.as_deref().and_then(parse_ack_subject) else {
                    return Step::Ignore;
                };
                if ack.consumer_seq != self.consumer_seq + 1 {
                    return Step::Reset(format!(
                        "delivery {} came after {}",
                        ack.consumer_seq, self.consumer_seq
                    ));
                }
                self.consumer_seq = ack.consumer_seq;
                self.stream_seq = ack.stream_seq;
                if ack.pending == 0 {
                    self.caught_up = true;
                }
                Step::Deliver(ack)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::codec::Headers;

    #[test]
    fn reads_both_ack_subject_forms() {
        let v1 = "$JS.ACK.KV_b.c1.1.42.7.1700000000000000000.3";
        assert_eq!(
            parse_ack_subject(v1),
            Some(AckInfo {
                delivered: 1,
                stream_seq: 42,
                consumer_seq: 7,
                pending: 3
            })
        );
        let v2 = "$JS.ACK._.acchash.KV_b.c1.1.42.7.1700000000000000000.0";
        assert_eq!(
            parse_ack_subject(v2).map(|a| (a.stream_seq, a.consumer_seq, a.pending)),
            Some((42, 7, 0))
        );
        let v2_more = format!("{v2}.randomtoken");
        assert_eq!(parse_ack_subject(&v2_more).map(|a| a.stream_seq), Some(42));
        for bad in [
            "_INBOX.x",
            "$JS.ACK.KV_b.c1.1.42.7",
            "$JS.ACK.KV_b.c1.1.x.7.1.3",
            "$JS.FC.KV_b.c1.1.42.7.1.3",
            "$JS.ACK._.h.KV_b.c1.1.42.7.1",
        ] {
            assert_eq!(parse_ack_subject(bad), None, "{bad}");
        }
    }

    fn delivery(stream_seq: u64, consumer_seq: u64, pending: u64) -> Msg {
        Msg {
            subject: "$KV.b.k".into(),
            sid: 1,
            reply_to: Some(format!(
                "$JS.ACK.KV_b.c.1.{stream_seq}.{consumer_seq}.1700000000000000000.{pending}"
            )),
            headers: None,
            status: None,
            description: None,
            payload: b"v".to_vec(),
        }
    }

    fn status(code: u16, description: &str, reply: Option<&str>, hdrs: &[(&str, &str)]) -> Msg {
        let mut headers = Headers::new();
        for (n, v) in hdrs {
            headers.append(*n, *v).unwrap();
        }
        Msg {
            subject: "_INBOX.w".into(),
            sid: 1,
            reply_to: reply.map(str::to_owned),
            headers: Some(headers),
            status: Some(StatusCode(code)),
            description: Some(description.into()),
            payload: Vec::new(),
        }
    }

    #[test]
    fn hands_out_deliveries_in_order_and_catches_up() {
        let mut ordered = Ordered::new(Start::LastPerSubject);
        ordered.created(2);
        assert!(!ordered.caught_up());
        assert!(matches!(
            ordered.on_message(&delivery(4, 1, 1)),
            Step::Deliver(_)
        ));
        assert!(!ordered.caught_up());
        assert!(matches!(
            ordered.on_message(&delivery(9, 2, 0)),
            Step::Deliver(_)
        ));
        assert!(ordered.caught_up());
        assert_eq!(ordered.start(), Start::At(10));
        // An empty bucket: caught up at once.
        let mut empty = Ordered::new(Start::LastPerSubject);
        empty.created(0);
        assert!(empty.caught_up());
        assert_eq!(empty.start(), Start::LastPerSubject);
    }

    #[test]
    fn a_gap_resets_after_the_last_message_handed_out() {
        let mut ordered = Ordered::new(Start::LastPerSubject);
        ordered.created(5);
        ordered.on_message(&delivery(3, 1, 4));
        let step = ordered.on_message(&delivery(8, 3, 2));
        assert_eq!(step, Step::Reset("delivery 3 came after 1".into()));
        assert_eq!(ordered.start(), Start::At(4));
        // The new consumer numbers its deliveries from 1 again.
        ordered.created(3);
        assert!(matches!(
            ordered.on_message(&delivery(4, 1, 2)),
            Step::Deliver(_)
        ));
    }

    #[test]
    fn heartbeats_and_flow_control() {
        let mut ordered = Ordered::new(Start::LastPerSubject);
        ordered.created(1);
        ordered.on_message(&delivery(3, 1, 0));
        let fc = status(100, "FlowControl Request", Some("$JS.FC.KV_b.c.1"), &[]);
        assert_eq!(
            ordered.on_message(&fc),
            Step::Control {
                answer: vec!["$JS.FC.KV_b.c.1".into()],
                reset: false
            }
        );
        let fine = status(100, "Idle Heartbeat", None, &[("Nats-Last-Consumer", "1")]);
        assert_eq!(
            ordered.on_message(&fine),
            Step::Control {
                answer: vec![],
                reset: false
            }
        );
        // The server delivered 2, which never came: start again after stream sequence 3.
        let behind = status(
            100,
            "Idle Heartbeat",
            None,
            &[
                ("Nats-Last-Consumer", "2"),
                ("Nats-Consumer-Stalled", "$JS.FC.x"),
            ],
        );
        assert_eq!(
            ordered.on_message(&behind),
            Step::Control {
                answer: vec!["$JS.FC.x".into()],
                reset: true
            }
        );
        assert_eq!(ordered.start(), Start::At(4));
        assert!(matches!(
            ordered.on_message(&status(409, "Consumer Deleted", None, &[])),
            Step::Reset(_)
        ));
        let stranger = Msg {
            reply_to: None,
            ..delivery(1, 1, 0)
        };
        assert_eq!(ordered.on_message(&stranger), Step::Ignore);
    }

    #[test]
    fn the_consumer_is_an_ordered_push_consumer() {
        let body = create_request("KV_b", "_INBOX.w", "$KV.b.>", Start::At(12), true);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["stream_name"], "KV_b");
        let config = &json["config"];
        assert_eq!(config["deliver_subject"], "_INBOX.w");
        assert_eq!(config["deliver_policy"], "by_start_sequence");
        assert_eq!(config["opt_start_seq"], 12);
        assert_eq!(config["ack_policy"], "none");
        assert_eq!(config["max_deliver"], 1);
        assert_eq!(config["flow_control"], true);
        assert_eq!(config["idle_heartbeat"], 1_000_000_000u64);
        assert_eq!(config["headers_only"], true);
        assert_eq!(config["mem_storage"], true);
        assert_eq!(config["num_replicas"], 1);
        assert_eq!(config["filter_subject"], "$KV.b.>");
        let first = create_request("KV_b", "_INBOX.w", "$KV.b.>", Start::LastPerSubject, false);
        let json: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(json["config"]["deliver_policy"], "last_per_subject");
        assert!(json["config"].get("opt_start_seq").is_none());
    }
}

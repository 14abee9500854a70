//! The answering half of the NATS front door (see `agents.rs`): what a reply looks like, and the
//! responder process that turns agents' answers into NATS replies.
//!
//! A worker does not wait for the agent it calls. It hands the agent the request with this
//! responder as the reply address, tells the responder what to expect (the reply subject, the
//! agent, a deadline), and goes on with the next request; so a worker keeps many requests in
//! flight, on many agents, instead of one. The responder answers each request once: with the
//! agent's answer, with the agent's failure, with `TimedOut` when the deadline passes, or with
//! `Stopped` when the agent's process ends without answering (it checks every [`SWEEP`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::NatsClient;
use crate::error::{CallError, CallFailure, CallTarget, RemoteFailure};
use crate::runtime::agent::Agent;
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{decode_envelope, take_queued, Envelope, ENVELOPE_HANDLER_ID};

/// How often the responder checks deadlines and the agents of the requests in flight.
const SWEEP: Duration = Duration::from_millis(100);

/// Error messages carry text from outside (keys, subjects) and from handlers (panic messages):
/// cut them to this many bytes so an error reply always fits.
const MAX_ERROR_MESSAGE: usize = 1024;

/// Whether a call took effect, as a caller outside Rust needs to know before retrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The handler ran and its state change (if any) is saved.
    Yes,
    /// It did not run, or its change was not saved.
    No,
    /// It cannot be known (no answer in time, or the agent stopped before answering).
    Unknown,
}

impl Applied {
    fn json(self) -> serde_json::Value {
        match self {
            Applied::Yes => serde_json::Value::Bool(true),
            Applied::No => serde_json::Value::Bool(false),
            Applied::Unknown => serde_json::Value::Null,
        }
    }

    fn after(failure: &CallFailure) -> Self {
        match failure {
            CallFailure::NotRunning | CallFailure::Panicked(_) | CallFailure::Unsendable(_) => {
                Applied::No
            }
            CallFailure::Unencodable(_) => Applied::Yes,
            // A store can take a write and still fail (a directory sync after the rename, a
            // commit that outlives the store's timeout): not known.
            CallFailure::TimedOut(_) | CallFailure::Stopped | CallFailure::PersistFailed(_) => {
                Applied::Unknown
            }
        }
    }
}

/// The JSON answer to one request, and whether the call was applied.
pub(crate) struct Reply {
    json: Vec<u8>,
    applied: Applied,
}

impl Reply {
    /// `{"ok": <answer>}`; `answer` is JSON already.
    pub(crate) fn ok(answer: &[u8]) -> Self {
        Reply {
            json: [&b"{\"ok\":"[..], answer, b"}"].concat(),
            applied: Applied::Yes,
        }
    }

    /// `{"error": {"kind": .., "message": ..}}` for a call that was not applied.
    pub(crate) fn error(kind: &str, message: String) -> Self {
        Self::error_with(kind, message, None)
    }

    /// A `call_failed` error, saying whether the call was applied.
    pub(crate) fn call_failed(err: &CallError) -> Self {
        let applied = Applied::after(&err.reason);
        Self::error_with("call_failed", err.to_string(), Some(applied))
    }

    fn error_with(kind: &str, mut message: String, applied: Option<Applied>) -> Self {
        if message.len() > MAX_ERROR_MESSAGE {
            let mut cut = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        let mut error = serde_json::json!({ "kind": kind, "message": message });
        if let Some(applied) = applied {
            error["applied"] = applied.json();
        }
        Reply {
            json: serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default(),
            applied: applied.unwrap_or(Applied::No),
        }
    }

    /// The bytes to send: the answer itself, or a `reply_too_large` error if it is larger than
    /// the server takes.
    pub(crate) fn fitted(self, max_payload: usize) -> Vec<u8> {
        if self.json.len() <= max_payload {
            return self.json;
        }
        let applied = match self.applied {
            Applied::Yes => "the call was applied",
            Applied::No => "the call was not applied",
            Applied::Unknown => "whether the call was applied is not known",
        };
        let message = format!(
            "the answer is {} bytes, more than the server's max_payload of {max_payload} bytes; {applied}",
            self.json.len()
        );
        let error = Self::error_with("reply_too_large", message, Some(self.applied));
        let mut value: serde_json::Value = serde_json::from_slice(&error.json).unwrap_or_default();
        value["error"]["size"] = self.json.len().into();
        value["error"]["max_payload"] = max_payload.into();
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// Sends replies to NATS callers, logging (sparingly) those that cannot be sent.
pub(crate) struct Replier {
    client: NatsClient,
    subject: String,
    max_payload: usize,
    undeliverable: u64,
}

impl Replier {
    pub(crate) fn new(client: NatsClient, subject: String) -> Self {
        let max_payload = usize::try_from(client.max_payload()).unwrap_or(usize::MAX);
        Replier {
            client,
            subject,
            max_payload,
            undeliverable: 0,
        }
    }

    /// Publishes `reply` on `reply_subject`.
    pub(crate) fn send(&mut self, reply_subject: &str, reply: Reply) {
        let payload = reply.fitted(self.max_payload);
        if let Err(err) = self.client.publish(reply_subject, &payload) {
            // Nowhere to send an error either (an invalid reply subject, a closed client): say
            // so in the log, the first time and then every 1,000th, so a flood cannot fill it.
            self.undeliverable += 1;
            if self.undeliverable % 1000 == 1 {
                eprintln!(
                    "swarm: agents on {}: could not reply on {reply_subject:?} ({} so far): {err}",
                    self.subject, self.undeliverable
                );
            }
        }
    }
}

/// A request in flight, as a worker announces it to its responder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Expect {
    /// The tag the agent's answer carries.
    pub(crate) tag: i64,
    /// Where the caller waits.
    pub(crate) reply_subject: String,
    /// The agent's process.
    pub(crate) agent: u64,
    /// The agent's key and the handler's index in `A::HANDLERS`, for error messages.
    pub(crate) key: String,
    pub(crate) handler: usize,
    /// How long the agent has to answer.
    pub(crate) timeout: Duration,
}

struct Waiting {
    expect: Expect,
    deadline: Instant,
}

/// The responder process of a worker serving agents of kind `A`: answers requests in flight
/// until its worker ends (they are linked).
pub(crate) fn run_responder<A: Agent>((client, subject): (NatsClient, String)) {
    let mut replier = Replier::new(client, subject);
    let mut waiting: HashMap<i64, Waiting> = HashMap::new();
    // Answers that arrived before their announcement, kept until it comes, or for two sweeps:
    // an answer after its deadline (already answered `TimedOut`) never gets one.
    let mut early: HashMap<i64, (Result<Vec<u8>, RemoteFailure>, Instant)> = HashMap::new();
    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        match host::receive(&[], Some(wait)) {
            Received::Data if host::tag() >> 56 == ENVELOPE_HANDLER_ID => {
                let Ok(Envelope {
                    message: expect, ..
                }) = decode_envelope::<Expect>(host::tag())
                else {
                    continue;
                };
                let tag = expect.tag;
                let deadline = Instant::now() + expect.timeout;
                let entry = Waiting { expect, deadline };
                match early.remove(&tag) {
                    Some((answer, _)) => answer_one::<A>(&mut replier, entry, answer),
                    None => {
                        waiting.insert(tag, entry);
                    }
                }
            }
            Received::Data => {
                let tag = host::tag();
                let Ok(answer) = host::decode::<Result<Vec<u8>, RemoteFailure>>() else {
                    continue;
                };
                match waiting.remove(&tag) {
                    Some(entry) => answer_one::<A>(&mut replier, entry, answer),
                    None => {
                        early.insert(tag, (answer, Instant::now()));
                    }
                }
            }
            _ => {}
        }
        if Instant::now() >= next_sweep {
            sweep::<A>(&mut replier, &mut waiting);
            early.retain(|_, (_, arrived)| arrived.elapsed() < SWEEP * 2);
            next_sweep = Instant::now() + SWEEP;
        }
    }
}

/// Answers the requests whose deadline passed or whose agent is gone.
fn sweep<A: Agent>(replier: &mut Replier, waiting: &mut HashMap<i64, Waiting>) {
    let now = Instant::now();
    let over: Vec<i64> = waiting
        .iter()
        .filter(|(_, entry)| now >= entry.deadline || !host::exists(entry.expect.agent))
        .map(|(&tag, _)| tag)
        .collect();
    for tag in over {
        let Some(entry) = waiting.remove(&tag) else {
            continue;
        };
        // The agent may have answered just before it ended: that answer is still in the mailbox.
        if let Some(Ok(answer)) = take_queued::<Result<Vec<u8>, RemoteFailure>>(&[tag]) {
            answer_one::<A>(replier, entry, answer);
            continue;
        }
        let failure = if now >= entry.deadline {
            CallFailure::TimedOut(entry.expect.timeout)
        } else {
            CallFailure::Stopped
        };
        fail::<A>(replier, entry, failure);
    }
}

fn answer_one<A: Agent>(
    replier: &mut Replier,
    entry: Waiting,
    answer: Result<Vec<u8>, RemoteFailure>,
) {
    match answer {
        Ok(json) => replier.send(&entry.expect.reply_subject, Reply::ok(&json)),
        Err(failure) => fail::<A>(replier, entry, failure.into()),
    }
}

fn fail<A: Agent>(replier: &mut Replier, entry: Waiting, reason: CallFailure) {
    let Expect {
        reply_subject,
        key,
        handler,
        ..
    } = entry.expect;
    let err = CallError {
        target: CallTarget {
            kind: A::KIND,
            key,
            handler: A::HANDLERS.get(handler).map_or("?", |info| info.name),
        },
        reason,
    };
    replier.send(&reply_subject, Reply::call_failed(&err));
}

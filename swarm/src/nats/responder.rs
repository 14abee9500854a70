//! The answering half of the NATS front door (see `agents.rs`): what a reply looks like, and the
//! responder process that turns agents' answers into NATS replies.
//!
//! A worker does not wait for the agent it calls. It hands the agent the request with this
//! responder as the reply address, tells the responder what to expect (the reply subject, the
//! agent, a deadline), and goes on with the next request; so a worker keeps many requests in
//! flight, on many agents, instead of one. The responder answers each request once: with the
//! agent's answer, with the agent's failure, with `TimedOut` when the deadline passes, or with
//! `Stopped` when the agent's process ends without answering (it checks every [`SWEEP`]).
//!
//! Error replies also carry ADR-32's `Nats-Service-Error` and `Nats-Service-Error-Code` headers
//! (see `service_api.rs`); successful ones have no headers. Every [`Replier`] (one per worker,
//! one per responder) counts its answers per handler for `$SRV.STATS` and hands its counts to the
//! discovery process when that asks (`discovery.rs`): counting adds no message to a request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::NatsClient;
use super::discovery::{StatsAnswer, StatsPull, STATS_PULL_TAG};
use super::service_api::{Counter, ServiceError};
use crate::error::{CallError, CallFailure, CallTarget, RemoteFailure};
use crate::runtime::agent::{Agent, HandlerInfo};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{decode_envelope, take_queued, Envelope, ENVELOPE_HANDLER_ID};

/// How often the responder checks deadlines and the agents of the requests in flight.
const SWEEP: Duration = Duration::from_millis(100);

/// Error messages carry text from outside (keys, subjects) and from handlers (panic messages):
/// cut them to this many bytes so an error reply always fits.
const MAX_ERROR_MESSAGE: usize = 1024;
/// A `call_failed`'s `"detail"` repeats the failure's own text (which the message holds too): cut
/// shorter, so that an error reply stays under 2 KB.
const MAX_ERROR_DETAIL: usize = 512;

/// How often a worker looks for the discovery process' requests for its counts (a worker waits
/// on its subscription, so it looks between requests and when none came for this long).
pub(crate) const PULL_CHECK: Duration = Duration::from_millis(100);

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
        match failure.applied() {
            Some(true) => Applied::Yes,
            Some(false) => Applied::No,
            None => Applied::Unknown,
        }
    }
}

/// The JSON answer to one request, whether the call was applied, and for an error what its
/// headers say.
pub(crate) struct Reply {
    json: Vec<u8>,
    applied: Applied,
    error: Option<ServiceError>,
}

impl Reply {
    /// `{"ok": <answer>}`; `answer` is JSON already.
    pub(crate) fn ok(answer: &[u8]) -> Self {
        Reply {
            json: [&b"{\"ok\":"[..], answer, b"}"].concat(),
            applied: Applied::Yes,
            error: None,
        }
    }

    /// `{"error": {"kind": .., "message": ..}}` for a call that was not applied.
    pub(crate) fn error(kind: &str, message: String) -> Self {
        Self::error_with(kind, message, None, false)
    }

    /// A `call_failed` error, saying whether the call was applied.
    pub(crate) fn call_failed(err: &CallError) -> Self {
        let applied = Applied::after(&err.reason);
        let timed_out = matches!(err.reason, CallFailure::TimedOut(_));
        // A stale copy in a cluster: the caller should call again, and reach the new owner.
        let kind = match err.reason {
            CallFailure::Moved(_) => "moved",
            // A full mailbox: the same answer as a node at its limits (503, call again later).
            CallFailure::Overloaded(_) => "overloaded",
            _ => "call_failed",
        };
        let mut reply = Self::error_with(kind, err.to_string(), Some(applied), timed_out);
        // What failed, as a Rust caller in another node rebuilds it (`CallFailure::from_wire`).
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&reply.json) {
            value["error"]["reason"] = err.reason.wire_name().into();
            if let Some(detail) = err.reason.detail() {
                value["error"]["detail"] = cut_to(detail.to_owned(), MAX_ERROR_DETAIL).into();
            }
            reply.json = serde_json::to_vec(&value).unwrap_or(reply.json);
        }
        reply
    }

    fn error_with(kind: &str, message: String, applied: Option<Applied>, timed_out: bool) -> Self {
        let message = cut_to(message, MAX_ERROR_MESSAGE);
        let service_error = ServiceError::for_reply(kind, &message, timed_out);
        let mut error = serde_json::json!({ "kind": kind, "message": message });
        if let Some(applied) = applied {
            error["applied"] = applied.json();
        }
        Reply {
            json: serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default(),
            applied: applied.unwrap_or(Applied::No),
            error: Some(service_error),
        }
    }

    /// The error this reply reports, if it is one.
    pub(crate) fn service_error(&self) -> Option<&ServiceError> {
        self.error.as_ref()
    }

    /// The bytes to send and, for an error, its headers' content: the answer itself, or a
    /// `reply_too_large` error if it is larger than the server takes.
    pub(crate) fn fitted(self, max_payload: usize) -> (Vec<u8>, Option<ServiceError>) {
        if self.json.len() <= max_payload {
            return (self.json, self.error);
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
        let error = Self::error_with("reply_too_large", message, Some(self.applied), false);
        let mut value: serde_json::Value = serde_json::from_slice(&error.json).unwrap_or_default();
        value["error"]["size"] = self.json.len().into();
        value["error"]["max_payload"] = max_payload.into();
        (serde_json::to_vec(&value).unwrap_or_default(), error.error)
    }
}

/// `message`, cut to `max` bytes.
fn cut_to(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// A request as a worker took it: the handler it is counted under (`None` for a subject that
/// names no handler of the kind: no endpoint has it) and when it was taken.
pub(crate) struct Taken {
    handler: Option<usize>,
    at: Instant,
}

impl Taken {
    /// How long ago the request was taken.
    pub(crate) fn elapsed(&self) -> Duration {
        self.at.elapsed()
    }
}

/// Sends replies to NATS callers, logging (sparingly) those that cannot be sent, and counts
/// them per handler (for `$SRV.STATS`).
pub(crate) struct Replier {
    client: NatsClient,
    subject: String,
    max_payload: usize,
    undeliverable: u64,
    handlers: &'static [HandlerInfo],
    /// One per handler, in the order of `handlers`.
    counters: Vec<Counter>,
    /// When a worker last looked for requests for its counts (see [`Replier::answer_pulls`]).
    pulls_checked: Instant,
}

impl Replier {
    pub(crate) fn new(
        client: NatsClient,
        subject: String,
        handlers: &'static [HandlerInfo],
    ) -> Self {
        let max_payload = usize::try_from(client.max_payload()).unwrap_or(usize::MAX);
        Replier {
            client,
            subject,
            max_payload,
            undeliverable: 0,
            handlers,
            counters: vec![Counter::default(); handlers.len()],
            pulls_checked: Instant::now(),
        }
    }

    /// Notes that a request on `subject` (`<namespace>.<kind>.<key>.<handler>`) was taken now.
    pub(crate) fn take(&self, subject: &str) -> Taken {
        let handler = subject.rsplit('.').next().and_then(|name| {
            self.handlers
                .iter()
                .position(|handler| handler.name == name)
        });
        Taken {
            handler,
            at: Instant::now(),
        }
    }

    /// Publishes `reply` on `reply_subject` (with the service-error headers if it is an error)
    /// and counts it for the request `taken`.
    pub(crate) fn send(&mut self, reply_subject: &str, reply: Reply, taken: &Taken) {
        let (payload, error) = reply.fitted(self.max_payload);
        let published = match &error {
            None => self.client.publish(reply_subject, &payload),
            Some(error) => {
                self.client
                    .publish_with_headers(reply_subject, &error.headers(), &payload)
            }
        };
        self.count(taken, error.as_ref());
        if let Err(err) = published {
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

    /// Counts the answer to the request `taken` (sent, or with nowhere to go), an error if
    /// `error` is given.
    pub(crate) fn count(&mut self, taken: &Taken, error: Option<&ServiceError>) {
        if let Some(counter) = taken
            .handler
            .and_then(|handler| self.counters.get_mut(handler))
        {
            counter.record(taken.at.elapsed(), error);
        }
    }

    /// For a worker, between requests: answers the discovery process' requests for the counts
    /// that are queued, looking at most every [`PULL_CHECK`] (a look costs two host calls).
    pub(crate) fn answer_pulls(&mut self) {
        if self.pulls_checked.elapsed() < PULL_CHECK {
            return;
        }
        self.pulls_checked = Instant::now();
        while let Some(pull) = take_queued::<StatsPull>(&[STATS_PULL_TAG]) {
            if let Ok(pull) = pull {
                self.answer_pull(pull);
            }
        }
    }

    /// Sends the counts to whoever asked.
    pub(crate) fn answer_pull(&self, pull: StatsPull) {
        pull.answer(&StatsAnswer {
            process: host::this().id,
            counters: self.counters.clone(),
        });
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
    /// How long ago the worker took the request (for the processing time in `$SRV.STATS`; the
    /// two processes' clocks cannot be compared, the hop of this message is not counted).
    pub(crate) spent: Duration,
}

struct Waiting {
    expect: Expect,
    deadline: Instant,
    taken: Taken,
}

/// The responder process of a worker serving agents of kind `A`: answers requests in flight
/// until its worker ends (they are linked).
pub(crate) fn run_responder<A: Agent>((client, subject): (NatsClient, String)) {
    let mut replier = Replier::new(client, subject, A::HANDLERS);
    let mut waiting: HashMap<i64, Waiting> = HashMap::new();
    // Answers that arrived before their announcement, kept until it comes, or for two sweeps:
    // an answer after its deadline (already answered `TimedOut`) never gets one.
    let mut early: HashMap<i64, (Result<Vec<u8>, RemoteFailure>, Instant)> = HashMap::new();
    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        match host::receive(&[], Some(wait)) {
            Received::Data if host::tag() == STATS_PULL_TAG => {
                if let Ok(pull) = host::decode::<StatsPull>() {
                    replier.answer_pull(pull);
                }
            }
            Received::Data if host::tag() >> 56 == ENVELOPE_HANDLER_ID => {
                let Ok(Envelope {
                    message: expect, ..
                }) = decode_envelope::<Expect>(host::tag())
                else {
                    continue;
                };
                let tag = expect.tag;
                let now = Instant::now();
                let deadline = now + expect.timeout;
                let taken = Taken {
                    handler: Some(expect.handler),
                    at: now.checked_sub(expect.spent).unwrap_or(now),
                };
                let entry = Waiting {
                    expect,
                    deadline,
                    taken,
                };
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
        Ok(json) => replier.send(&entry.expect.reply_subject, Reply::ok(&json), &entry.taken),
        Err(failure) => fail::<A>(replier, entry, failure.into()),
    }
}

fn fail<A: Agent>(replier: &mut Replier, entry: Waiting, reason: CallFailure) {
    let Waiting { expect, taken, .. } = entry;
    let Expect {
        reply_subject,
        key,
        handler,
        ..
    } = expect;
    let err = CallError {
        target: CallTarget {
            kind: A::KIND,
            key,
            handler: A::HANDLERS.get(handler).map_or("?", |info| info.name),
        },
        reason,
    };
    replier.send(&reply_subject, Reply::call_failed(&err), &taken);
}

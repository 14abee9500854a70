//! Agents on NATS subjects: handlers bound with `#[handler(subject = "shop.orders.{key}.placed")]`
//! get the messages published on their subject, the agent picked by the `{key}` token.
//!
//! [`serve_subjects`] starts one subscriber process per bound handler of a kind. Each
//! queue-subscribes to the handler's subject in the queue group `swarm.<kind>.<handler>` (so
//! several nodes serving the kind share the messages: each message reaches one agent once, not
//! one per node), and for every message:
//!
//! - takes the key from its token and checks it as a key (`A-Z a-z 0-9 _ -`, 1-128 bytes);
//! - decodes the payload as the handler's one argument, in JSON;
//! - finds the agent of that key on this node, starting it (with its persisted state) if none
//!   runs, and puts the message in its mailbox, as a fire-and-forget message.
//!
//! Messages are handed over in the order they arrive, so one key's messages run in the order the
//! server delivered them. A message with a key that is not a key, or a payload that is not the
//! argument (not JSON, the wrong shape, a missing field), is **never delivered**: it is counted
//! (`swarm_subject_messages_total{kind, handler, outcome}`, outcome `invalid_key` or `malformed`,
//! when the node serves metrics) and logged (`subject.malformed`, `subject.invalid_key`, at
//! `warn`, with the subject and why), and the subscriber goes on. So is a message whose agent
//! could not start (`start_failed`). Nothing from the subject can crash an agent or the
//! subscriber. Core NATS delivers at most once: a message published while no node subscribes, or
//! in flight when a node dies, is lost; for messages that must not be lost, consume a JetStream
//! stream instead.
//!
//! Agents publish events from their handlers with [`publish`] (see `events.rs`).

use serde::{Deserialize, Serialize};

use super::client::{NatsClient, Subscription};
use super::NatsError;
use crate::error::StartError;
use crate::key::parse_key_text;
use crate::log;
use crate::metrics::model::SubjectsDelta;
use crate::runtime::agent::{Agent, SubjectBinding};
use crate::runtime::handle::{AgentHandle, Launcher};
use crate::runtime::host;
use crate::runtime::mailbox::{reply_slot, take_queued, wait_for, ReplyTo};
use crate::runtime::process::spawn;

/// The subscriber processes of one agent kind's subject-bound handlers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectService {
    subjects: Vec<String>,
    workers: Vec<u64>,
}

impl SubjectService {
    /// The subjects subscribed to, one per bound handler (`{key}` written `*`).
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// Stops the subscribers: each unsubscribes, hands over what it was already given, and
    /// ends; waits for that at most 2 s, then kills what is left.
    pub fn stop(&self) {
        stop_workers(&self.workers, STOP_TAG, std::time::Duration::from_secs(2));
    }
}

/// Subscribes every `#[handler(subject = "..")]` of kind `A` on this node; returns once every
/// subscription is confirmed by the server. A kind without such handlers gets an empty service.
pub fn serve_subjects<A: Agent>(client: &NatsClient) -> Result<SubjectService, NatsError> {
    let mut service = SubjectService {
        subjects: Vec::new(),
        workers: Vec::new(),
    };
    // Handlers on a stream are `serve_streams`'s.
    for binding in A::SUBJECTS
        .iter()
        .filter(|binding| binding.stream.is_none())
    {
        let ready = reply_slot();
        let started = spawn(
            (client.clone(), binding.handler, ready),
            run_subscriber::<A>,
        )
        .map_err(|err| err.to_string())
        .and_then(|worker| await_ready(worker, ready));
        match started {
            Ok(worker) => {
                service.subjects.push(binding.subject.to_owned());
                service.workers.push(worker);
            }
            Err(reason) => {
                service.stop();
                return Err(NatsError::Server(format!(
                    "the subscriber of {}.{} on {:?} did not start: {reason}",
                    A::KIND,
                    A::HANDLERS[binding.handler].name,
                    binding.subject
                )));
            }
        }
    }
    Ok(service)
}

/// The tag that asks a subscriber to stop (top byte 0x79: no handler number).
const STOP_TAG: i64 = (0x79 << 56) | 0x5355_4253;
/// How often a subscriber looks for a stop request and sends its counts.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest a subscriber keeps counts before sending them to the metrics process.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What became of one message on a subject or a stream (the `outcome` label of
/// `swarm_subject_messages_total`). The stream consumer uses all six; a subject subscriber, the
/// first four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Handed to its agent (for a stream: applied, or found applied already, and acked).
    Delivered,
    Malformed,
    InvalidKey,
    StartFailed,
    /// Stream only: the handler panicked or its save failed; delivered again later.
    Failed,
    /// Stream only: failed `max_deliver` times, terminated on purpose.
    GaveUp,
}

impl Outcome {
    pub(super) const ALL: [Outcome; 6] = [
        Outcome::Delivered,
        Outcome::Malformed,
        Outcome::InvalidKey,
        Outcome::StartFailed,
        Outcome::Failed,
        Outcome::GaveUp,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Malformed => "malformed",
            Outcome::InvalidKey => "invalid_key",
            Outcome::StartFailed => "start_failed",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave_up",
        }
    }
}

/// A subscriber: one bound handler's subscription, for ever (until asked to stop).
fn run_subscriber<A: Agent>((client, handler, ready): (NatsClient, usize, ReplyTo)) {
    let Some(binding) = A::SUBJECTS.iter().find(|b| b.handler == handler).copied() else {
        return ready.send::<Result<(), String>>(Err("no such subject binding".into()));
    };
    let name = A::HANDLERS[handler].name;
    let queue = format!("swarm.{}.{name}", A::KIND);
    let subscription: Subscription = match client.queue_subscribe(binding.subject, &queue) {
        Ok(subscription) => subscription,
        Err(err) => return ready.send::<Result<(), String>>(Err(err.to_string())),
    };
    ready.send::<Result<(), String>>(Ok(()));
    let mut counts = [0u64; Outcome::ALL.len()];
    let mut flushed = std::time::Instant::now();
    let mut subscription = Some(subscription);
    let mut drained = std::collections::VecDeque::new();
    let mut stop_checked = std::time::Instant::now();
    loop {
        if flushed.elapsed() >= FLUSH_EVERY {
            flush_counts::<A>(name, &mut counts);
            flushed = std::time::Instant::now();
        }
        // A look for a stop request costs two host calls: every TICK, not every message.
        if subscription.is_some() && stop_checked.elapsed() >= TICK {
            stop_checked = std::time::Instant::now();
            if take_queued::<()>(&[STOP_TAG]).is_some() {
                // Stop taking messages, then hand over every one already given to us.
                drained.extend(
                    subscription
                        .take()
                        .map(Subscription::drain)
                        .unwrap_or_default(),
                );
            }
        }
        let message = match &subscription {
            Some(live) => match live.next_timeout(TICK) {
                Ok(message) => message,
                Err(NatsError::TimedOut { .. }) => continue,
                Err(_closed) => break,
            },
            None => match drained.pop_front() {
                Some(message) => message,
                None => break,
            },
        };
        let outcome = deliver::<A>(&binding, name, &message.subject, &message.payload);
        counts[outcome as usize] += 1;
    }
    flush_counts::<A>(name, &mut counts);
}

/// Sends what was counted since the last flush to the node's metrics process, if it serves
/// metrics (for subject subscribers and stream consumers alike).
pub(super) fn flush_counts<A: Agent>(handler: &str, counts: &mut [u64; Outcome::ALL.len()]) {
    if counts.iter().all(|&n| n == 0) {
        return;
    }
    let delta = SubjectsDelta {
        counts: Outcome::ALL
            .iter()
            .filter(|outcome| counts[**outcome as usize] > 0)
            .map(|outcome| {
                (
                    A::KIND.to_owned(),
                    handler.to_owned(),
                    outcome.as_str().to_owned(),
                    counts[*outcome as usize],
                )
            })
            .collect(),
    };
    crate::metrics::collector::subjects_delta(delta);
    *counts = [0; Outcome::ALL.len()];
}

/// Checks one message and hands it to its agent.
fn deliver<A: Agent>(
    binding: &SubjectBinding,
    handler: &'static str,
    subject: &str,
    payload: &[u8],
) -> Outcome {
    let refused = |event: &str, why: &str| {
        log::warn(
            event,
            &[
                ("kind", A::KIND),
                ("handler", handler),
                ("subject", subject),
            ],
            &format!("not delivered: {why}"),
        );
    };
    let Checked { key, message, .. } = match check::<A>(binding, subject, payload) {
        Ok(checked) => checked,
        Err((outcome, why)) => {
            refused(&format!("subject.{}", outcome.as_str()), &why);
            return outcome;
        }
    };
    let agent = match Launcher::<A>::default().get_or_start(key) {
        Ok(agent) => agent,
        Err(err) => {
            let event = match err {
                StartError::Overloaded { .. } => "subject.overloaded",
                _ => "subject.start_failed",
            };
            refused(event, &err.to_string());
            return Outcome::StartFailed;
        }
    };
    match agent.raw().send(handler, message) {
        Ok(()) => Outcome::Delivered,
        Err(err) => {
            refused("subject.start_failed", &err.to_string());
            Outcome::StartFailed
        }
    }
}

/// A message on a bound subject (or stream), checked: what a subscriber and a stream consumer both
/// need before it may reach an agent.
pub(super) struct Checked<'s, A: Agent> {
    /// The subject's key token, as it came.
    pub(super) token: &'s str,
    /// The agent's key, from that token.
    pub(super) key: A::Key,
    /// The handler's message, from the payload.
    pub(super) message: A::Msg,
}

/// Checks a message published on `subject` for `binding`'s handler: its key token must be a key
/// and its payload the handler's one argument as JSON. `Err`: it is never to be delivered, with
/// the outcome to count (`InvalidKey`, `Malformed`; also the suffix of the event to log) and why.
pub(super) fn check<'s, A: Agent>(
    binding: &SubjectBinding,
    subject: &'s str,
    payload: &[u8],
) -> Result<Checked<'s, A>, (Outcome, String)> {
    let token = subject.split('.').nth(binding.key_token).unwrap_or("");
    let key =
        parse_key_text(A::KIND, token).map_err(|err| (Outcome::InvalidKey, err.to_string()))?;
    let message = decode::<A>(binding, payload).map_err(|why| {
        let reason = format!(
            "the payload is not `{}` of {}.{} as JSON: {why}",
            binding.argument,
            A::KIND,
            A::HANDLERS[binding.handler].name
        );
        (Outcome::Malformed, reason)
    })?;
    Ok(Checked {
        token,
        key,
        message,
    })
}

/// Waits for the report of a subscriber or consumer just spawned that it is ready (subscribed,
/// its durable made or found): its process, or why not (it is killed if it does not report
/// within 30 s).
pub(super) fn await_ready(worker: u64, ready: ReplyTo) -> Result<u64, String> {
    wait_for::<Result<(), String>>(ready, worker, Some(std::time::Duration::from_secs(30)))
        .map_err(|err| {
            host::kill(worker);
            format!("{err:?}")
        })
        .and_then(|made| made.map(|()| worker))
}

/// Asks `workers` to stop (a message tagged `tag`), waits at most `wait` for them to end, then
/// kills what is left ([`kill_workers`]).
pub(super) fn stop_workers(workers: &[u64], tag: i64, wait: std::time::Duration) {
    for &worker in workers {
        let _gone_already = host::send(worker, tag, &());
    }
    let deadline = std::time::Instant::now() + wait;
    while workers.iter().any(|&worker| host::exists(worker)) && std::time::Instant::now() < deadline
    {
        host::sleep(std::time::Duration::from_millis(5));
    }
    kill_workers(workers);
}

/// Kills `workers` at once, as a crash would, and returns once they are gone (at most a second),
/// so that the kind can be served again at once.
pub(super) fn kill_workers(workers: &[u64]) {
    for &worker in workers {
        host::kill(worker);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while workers.iter().any(|&worker| host::exists(worker)) && std::time::Instant::now() < deadline
    {
        host::sleep(std::time::Duration::from_millis(1));
    }
}

/// The message for the bound handler from a payload: the handler's one argument as JSON, put in
/// the message enum's own JSON form, `{"<Variant>": {"<argument>": <payload>}}`. The payload is
/// checked to be one JSON value first, so that no payload can add members of its own.
fn decode<A: Agent>(binding: &SubjectBinding, payload: &[u8]) -> Result<A::Msg, String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|err| err.to_string())?;
    let info = &A::HANDLERS[binding.handler];
    let tagged = [
        b"{\"",
        info.variant.as_bytes(),
        b"\":{\"",
        binding.argument.as_bytes(),
        b"\":",
        payload,
        b"}}",
    ]
    .concat();
    serde_json::from_slice(&tagged).map_err(|err| err.to_string())
}

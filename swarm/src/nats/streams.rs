//! Agents on JetStream streams: handlers bound with
//! `#[handler(stream = "ORDERS", subject = "shop.orders.{key}.placed")]` consume the stream's
//! messages on that subject through a durable consumer, at least once, and apply each at most once.
//!
//! [`serve_streams`] starts one consumer process per bound handler of a kind. Each uses the durable
//! pull consumer `swarm-<kind>-<handler>` of the stream (made if it does not exist, filtered to the
//! handler's subject, explicit acks, `max_ack_pending: 1`) and takes its messages one at a time,
//! in stream order:
//!
//! - checks the key token and decodes the payload as the handler's one argument (JSON); a message
//!   that fails either is counted, logged (`stream.malformed`, `stream.invalid_key`) and
//!   terminated (`+TERM`: never delivered again), never delivered to an agent;
//! - hands it to the agent of its key (started with its state if need be) with its stream
//!   sequence, and waits for the agent's answer: the agent runs the handler only if it has not
//!   applied a message at or past that sequence for this handler (its mark), and saves its state
//!   together with the new mark **before** answering, whatever its persistence strategy;
//! - acks the message once that answer came (without waiting for the server to confirm the ack:
//!   a lost ack only brings a redelivery, which the mark skips).
//!
//! So a message is acked only after its change is saved (at least once), and a redelivery (the
//! consumer or its node died before the ack, or the ack was late past `ack_wait`) finds the mark
//! and is acked without running again (at most once per agent).
//!
//! Order: the server holds back every later message until the one delivered is acked (or
//! terminated): `max_ack_pending: 1`. The agent's mark is a high-water mark, so a later message
//! of a key applied before an earlier one would make the earlier one's redelivery look applied,
//! and it would be lost; with one message out at a time, an unacked one (its consumer killed, its
//! handler failed) is always delivered again before anything after it.
//!
//! Failures: a message whose agent does not start, whose handler panics, or whose save (or
//! stream events) fails is `-NAK`ed, to come again after a back-off that doubles from 1 s up to 60 s,
//! and nothing after it comes meanwhile. After `max_deliver` deliveries (20 by default, about 14
//! minutes of failing) the consumer gives up on it on purpose: logged as an error
//! (`stream.gave_up`, naming stream, sequence, key and the last reason), counted (`gave_up`) and
//! terminated, so the stream goes on. (The server's own `max_deliver` is unlimited: it never
//! drops a message silently.)
//!
//! Replay: [`Replay::FromSequence`] and [`Replay::FromTime`] delete the durable consumer (its
//! position is lost) and make it again, starting there; agents still skip what their marks say
//! they applied, so a replay fills in agents that lack messages (a wiped store, a kind consuming
//! the stream for the first time) without applying anything twice. [`Replay::Resume`] goes on
//! from the durable's position; if its settings (filter subject, `ack_wait`, `max_ack_pending`)
//! are not the handler's, they are updated, or the start fails naming both.
//!
//! A durable or stream that disappears while consumed (a pull nobody ends, or ended with an
//! error) is found or made again as `Resume` would, once a second, until it works.

use std::time::Duration;

use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::client::NatsClient;
use super::jetstream::{DeliverFrom, DurableConfig, JetStream, JsMessage, PullConsumer};
use super::subjects::{
    await_ready, check, flush_counts, kill_workers, stop_workers, Checked, Outcome,
};
use super::NatsError;
use crate::log;
use crate::runtime::agent::{Agent, SubjectBinding};
use crate::runtime::handle::{AgentHandle, Launcher};
use crate::runtime::host;
use crate::runtime::mailbox::{reply_slot, take_queued, wait_for, ReplyTo};
use crate::runtime::process::{spawn_named, Named, SpawnError};

/// Where the durable consumers of [`serve_streams`] start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replay {
    /// Go on where the durable consumer is (a new one starts at the stream's first message).
    Resume,
    /// Make the consumer again, from this stream sequence.
    FromSequence(u64),
    /// Make the consumer again, from the first message stored at or after this time (RFC 3339,
    /// such as `2026-12-01T22:00:00Z`).
    FromTime(String),
}

/// How [`serve_streams`] consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Where the consumers start (default: [`Replay::Resume`]).
    pub replay: Replay,
    /// How long the server waits for an ack before delivering a message again (default 30 s;
    /// used when a consumer is made).
    pub ack_wait: Duration,
    /// After this many failed deliveries of one message (default 20; the back-off between them
    /// grows from 1 s to 60 s), it is given up on: logged as an error, counted and terminated.
    /// 0: never (the consumer then waits on that message for ever).
    pub max_deliver: i64,
    /// Messages asked for per pull (default 64); they come one at a time all the same.
    pub batch: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            replay: Replay::Resume,
            ack_wait: Duration::from_secs(30),
            max_deliver: 20,
            batch: 64,
        }
    }
}

/// The consumer processes of one agent kind's stream-bound handlers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamService {
    consumers: Vec<String>,
    workers: Vec<u64>,
}

impl StreamService {
    /// The durable consumers' names, one per bound handler (`swarm-<kind>-<handler>`).
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// Stops the consumer processes after the message each is handling (an unacked one is
    /// delivered again later; its agent skips it if it applied it). Waits at most 5 s, then
    /// kills what is left.
    pub fn stop(&self) {
        stop_workers(&self.workers, STOP_TAG, Duration::from_secs(5));
    }

    /// Kills the consumer processes at once, as a crash would: a message being handled is not
    /// acked, and comes again. Returns once they are gone (at most a second), so that the kind
    /// can be served again at once.
    pub fn kill(&self) {
        kill_workers(&self.workers);
    }
}

/// The durable consumer of `A`'s handler `handler`.
pub fn durable_name<A: Agent>(handler: &str) -> String {
    format!("swarm-{}-{handler}", A::KIND)
}

/// Consumes, for every `#[handler(stream = .., subject = ..)]` of kind `A`, its stream through a
/// durable consumer; returns once every consumer is made (or found). A kind without such
/// handlers gets an empty service.
pub fn serve_streams<A: Agent>(
    client: &NatsClient,
    options: StreamOptions,
) -> Result<StreamService, NatsError> {
    let mut service = StreamService {
        consumers: Vec::new(),
        workers: Vec::new(),
    };
    for binding in A::SUBJECTS
        .iter()
        .filter(|binding| binding.stream.is_some())
    {
        let name = A::HANDLERS[binding.handler].name;
        let ready = reply_slot();
        let started = match spawn_consumer::<A>(
            &durable_name::<A>(name),
            (client.clone(), binding.handler, options.clone(), ready),
        ) {
            Ok(Claim::Spawned(worker)) => Ok(worker),
            Ok(Claim::Taken(other)) => {
                service.kill();
                return Err(NatsError::Server(format!(
                    "{}.{name} is consumed on this node already (process {other}): stop that \
                     service first",
                    A::KIND,
                )));
            }
            Err(err) => Err(err.to_string()),
        }
        .and_then(|worker| await_ready(worker, ready));
        match started {
            Ok(worker) => {
                service.consumers.push(durable_name::<A>(name));
                service.workers.push(worker);
            }
            Err(reason) => {
                service.kill();
                return Err(NatsError::Server(format!(
                    "the consumer of {}.{name} on stream {:?} did not start: {reason}",
                    A::KIND,
                    binding.stream.unwrap_or_default()
                )));
            }
        }
    }
    Ok(service)
}

/// What [`spawn_consumer`] did.
enum Claim {
    /// Spawned the consumer, registered as the durable's.
    Spawned(u64),
    /// A live consumer of that durable runs on this node already (this process).
    Taken(u64),
}

/// Spawns the consumer of `durable` on this node unless a live one runs: the lookup and the
/// registration are one step (Lunatic's get-or-spawn), so of two calls at the same instant exactly
/// one spawns; two consumers would share the durable's messages, each applying some, out of
/// order. Lunatic's registry never forgets a name, and a dead consumer keeps its own: names carry
/// a generation (`swarm/streams/<durable>/<n>`), a dead holder's is passed over, and the first
/// free one is claimed (as the registrar's own name is).
fn spawn_consumer<A: Agent>(
    durable: &str,
    capture: (NatsClient, usize, StreamOptions, ReplyTo),
) -> Result<Claim, SpawnError> {
    let mut generation = 0u64;
    loop {
        let name = format!("swarm/streams/{durable}/{generation}");
        match spawn_named(&name, capture.clone(), run_consumer::<A>)? {
            Named::Started(worker) => return Ok(Claim::Spawned(worker)),
            Named::Found(other) if host::exists(other) => return Ok(Claim::Taken(other)),
            Named::Found(_dead) => generation += 1,
        }
    }
}

/// The tag that asks a consumer to stop (top byte 0x79: no handler number).
const STOP_TAG: i64 = (0x79 << 56) | 0x5354_524D;
/// How long a pull waits for messages when the stream has none.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How long a consumer waits for an agent to apply one message before leaving it to a
/// redelivery.
const APPLY_WAIT: Duration = Duration::from_secs(30);
/// When a message whose handler failed the first time is delivered again (doubling after).
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest back-off between two deliveries of a message that fails.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How long a consumer waits before pulling again after a pull failed.
const PULL_RETRY: Duration = Duration::from_secs(1);
/// The longest a consumer keeps counts before sending them to the metrics process.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The durable consumer for `binding`, as `options` say.
fn consumer<A: Agent>(
    client: &NatsClient,
    binding: &SubjectBinding,
    options: &StreamOptions,
) -> Result<PullConsumer, String> {
    let stream = binding.stream.unwrap_or_default();
    let js = JetStream::new(client.clone());
    let mut config = DurableConfig::new(durable_name::<A>(A::HANDLERS[binding.handler].name));
    config.filter_subject = binding.subject.to_owned();
    config.ack_wait = options.ack_wait;
    // Giving up is the consumer's decision (logged, counted), never the server's (silent).
    config.max_deliver = -1;
    // One message out at a time: the next only once this one is acked, so a key's messages are
    // applied in stream order even when one fails or its consumer dies (see the module doc).
    config.max_ack_pending = 1;
    let made = match &options.replay {
        Replay::Resume => js.durable_consumer(stream, &config),
        Replay::FromSequence(seq) => {
            config.deliver_from = DeliverFrom::Sequence(*seq);
            js.recreate_durable_consumer(stream, &config)
        }
        Replay::FromTime(time) => {
            config.deliver_from = DeliverFrom::Time(time.clone());
            js.recreate_durable_consumer(stream, &config)
        }
    };
    made.map_err(|err| format!("stream {stream:?}: {err}"))
}

/// A consumer: one bound handler's durable consumer, for ever (until asked to stop).
fn run_consumer<A: Agent>(
    (client, handler, options, ready): (NatsClient, usize, StreamOptions, ReplyTo),
) {
    let Some(binding) = A::SUBJECTS.iter().find(|b| b.handler == handler).copied() else {
        return ready.send::<Result<(), String>>(Err("no such stream binding".into()));
    };
    let mut consumer = match consumer::<A>(&client, &binding, &options) {
        Ok(consumer) => consumer,
        Err(why) => return ready.send::<Result<(), String>>(Err(why)),
    };
    ready.send::<Result<(), String>>(Ok(()));
    let name = A::HANDLERS[handler].name;
    let mut counts = [0u64; Outcome::ALL.len()];
    let mut flushed = std::time::Instant::now();
    loop {
        if flushed.elapsed() >= FLUSH_EVERY {
            flush_counts::<A>(name, &mut counts);
            flushed = std::time::Instant::now();
        }
        if take_queued::<()>(&[STOP_TAG]).is_some() {
            break;
        }
        let message = match consumer.next(options.batch.max(1), PULL_WAIT) {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(err) => {
                // The server restarting, the durable consumer deleted (409), the stream gone for
                // a while (503: nobody answers the pull): find or make the consumer again, as a
                // start with `Replay::Resume` does (a new one starts at the stream's first
                // message, which the agents' marks skip), and go on; or try again shortly.
                log::warn(
                    "stream.fetch_failed",
                    &[("kind", A::KIND), ("handler", name)],
                    &err.to_string(),
                );
                host::sleep(PULL_RETRY);
                let resume = StreamOptions {
                    replay: Replay::Resume,
                    ..options.clone()
                };
                match self::consumer::<A>(&client, &binding, &resume) {
                    Ok(again) => consumer = again,
                    Err(why) => log::warn(
                        "stream.consumer_lost",
                        &[("kind", A::KIND), ("handler", name)],
                        &format!("not found nor made again, trying again in {PULL_RETRY:?}: {why}"),
                    ),
                }
                continue;
            }
        };
        let outcome = apply::<A>(&consumer, &binding, name, &message, options.max_deliver);
        counts[outcome as usize] += 1;
    }
    flush_counts::<A>(name, &mut counts);
}

/// Checks one message, has its agent apply it, and acks it (or leaves it to a redelivery).
fn apply<A: Agent>(
    consumer: &PullConsumer,
    binding: &SubjectBinding,
    handler: &'static str,
    message: &JsMessage,
    max_deliver: i64,
) -> Outcome {
    let seq = message.stream_sequence.to_string();
    let delivered = message.delivered.to_string();
    let log_at = |level: log::Level, event: &str, why: &str| {
        log::event(
            level,
            event,
            &[
                ("kind", A::KIND),
                ("handler", handler),
                ("subject", &message.subject),
                ("stream_seq", &seq),
                ("delivered", &delivered),
            ],
            why,
        );
    };
    // Refused for good: such a message is never applied, however often it comes.
    let refuse = |event: &str, why: &str| {
        log_at(log::Level::Warn, event, &format!("not delivered: {why}"));
        if let Err(err) = consumer.term(message) {
            log_at(log::Level::Warn, "stream.ack_failed", &err.to_string());
        }
    };
    let Checked {
        token,
        key,
        message: decoded,
    } = match check::<A>(binding, &message.subject, &message.payload) {
        Ok(checked) => checked,
        Err((outcome, why)) => {
            refuse(&format!("stream.{}", outcome.as_str()), &why);
            return outcome;
        }
    };
    // Failed this time: delivered again after a back-off (nothing after it comes meanwhile), or,
    // after `max_deliver` deliveries, given up on.
    let retry = |outcome: Outcome, event: &str, why: &str| -> Outcome {
        if max_deliver > 0 && message.delivered >= max_deliver as u64 {
            log::event(
                log::Level::Error,
                "stream.gave_up",
                &[
                    ("kind", A::KIND),
                    ("handler", handler),
                    ("stream", binding.stream.unwrap_or_default()),
                    ("stream_seq", &seq),
                    ("key", token),
                    ("delivered", &delivered),
                ],
                &format!("not applied after {delivered} deliveries, terminated: {why}"),
            );
            if let Err(err) = consumer.term(message) {
                log_at(log::Level::Warn, "stream.ack_failed", &err.to_string());
            }
            return Outcome::GaveUp;
        }
        let delay = retry_delay(message.delivered);
        log_at(
            log::Level::Warn,
            event,
            &format!("not applied, delivered again in {delay:?}: {why}"),
        );
        if let Err(err) = consumer.nak(message, delay) {
            log_at(log::Level::Warn, "stream.ack_failed", &err.to_string());
        }
        outcome
    };
    let agent = match Launcher::<A>::default().get_or_start(key) {
        Ok(agent) => agent,
        Err(err) => {
            return retry(
                Outcome::StartFailed,
                "stream.start_failed",
                &err.to_string(),
            )
        }
    };
    let Some(pid) = agent.raw().pid() else {
        return retry(
            Outcome::StartFailed,
            "stream.start_failed",
            "the agent runs on another node",
        );
    };
    let slot = ReplyTo::json_to(host::Pid::local(host::this().id), Tag::new())
        .with_stream_seq(message.stream_sequence);
    if let Err(err) = agent.raw().send_request(handler, decoded, slot) {
        return retry(Outcome::Failed, "stream.failed", &err.to_string());
    }
    match wait_for::<Vec<u8>>(slot, pid.id, Some(APPLY_WAIT)) {
        Ok(_answer) => {
            // Applied and saved (or found applied): the ack, not waiting for the server's
            // confirmation (a round trip per message): one that is lost makes the server deliver
            // the message again, which the agent's mark skips.
            if let Err(err) = consumer.ack_unconfirmed(message) {
                log_at(log::Level::Warn, "stream.ack_failed", &err.to_string());
            }
            Outcome::Delivered
        }
        Err(err) => retry(Outcome::Failed, "stream.failed", &format!("{err:?}")),
    }
}

/// The back-off before delivery `delivered + 1` of a message that failed: 1 s, doubling, at most
/// 60 s.
fn retry_delay(delivered: u64) -> Duration {
    let doublings = delivered.saturating_sub(1).min(16) as u32;
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
}

//! Agents reachable through NATS: one subject per agent and handler,
//! `<namespace>.<kind>.<key>.<handler>`, JSON in and out.
//!
//! [`serve_agents`] starts worker processes that queue-subscribe to `<namespace>.<kind>.*.*` in the
//! queue group `<namespace>.<kind>`, so one kind has one subscription per worker (not one per agent)
//! and several workers (or nodes) share the load. For each request a worker finds the agent of that
//! key on its node (starting it, with its persisted state, if none runs), calls the handler, and
//! replies:
//!
//! - the request's payload is a JSON object of the handler's arguments (`{"author": "ada", "text":
//!   "hi"}`; empty or `{}` for a handler without arguments);
//! - the reply is `{"ok": <the handler's answer as JSON>}` (`null` for a fire-and-forget handler,
//!   which is only delivered), or `{"error": {"kind": "...", "message": "..."}}`, with kind one of
//!   `invalid_key`, `unknown_handler`, `bad_arguments` (not a JSON object, a missing or mistyped
//!   argument, or an argument the handler does not have), `overloaded` (the node is at one of its
//!   `NodeLimits` and refused to start the agent), `start_failed`, `call_failed`, or
//!   `reply_too_large`;
//! - a request may carry an id in the header `Swarm-Request-Id` (1 to 128 visible ASCII bytes;
//!   another is refused as `bad_request_id`): an agent that applied a call of that handler with
//!   that id already answers it with the first call's answer and does not run it again (see
//!   `request_id`), so a caller can retry a call that timed out without applying it twice;
//! - `call_failed` and `reply_too_large` also say whether the call was applied: `"applied"` is
//!   `true` (the handler ran and its state change is saved), `false` (it was not), or `null` (it
//!   cannot be known: the agent did not answer in time, or stopped before answering); a
//!   `call_failed` (or `moved`) from the agent also names the failure, `"reason"` (`panicked`,
//!   `timed_out`, `stopped`, `persist_failed`, `unencodable`, `expired`, ... as
//!   `CallFailure::wire_name`) with its text in `"detail"`, from which a handle on another node of
//!   a cluster rebuilds the same `CallFailure`;
//! - an answer larger than the server's `max_payload` is replaced by a `reply_too_large` error
//!   that gives both sizes (`"size"`, `"max_payload"`), so a caller never waits out its timeout
//!   for an answer that cannot be sent.
//!
//! Bytes from outside are decoded and validated here, before anything reaches an agent's mailbox:
//! a malformed request gets an error reply and never crashes an agent or a worker.
//!
//! Error replies also carry the NATS services API's `Nats-Service-Error` (the message) and
//! `Nats-Service-Error-Code` headers: 400 for `bad_arguments`, `invalid_key` and
//! `unknown_handler`, 503 for `overloaded`, 504 for a `call_failed` that timed out, 500 for the
//! rest. Successful replies have no headers.
//!
//! Discovery: the node answers the NATS services API (ADR-32) for the namespace, as the service
//! `swarm-<namespace>` with one endpoint per kind and handler, `<kind>-<handler>` on
//! `<namespace>.<kind>.*.<handler>`, so `nats micro ls`/`info`/`stats` (or any client's service
//! discovery) list the nodes and their handlers, with per-handler counts of requests, errors and
//! processing time (see `discovery.rs`). The namespace must therefore be a valid service name
//! once each `.` is written `_` (`A-Z a-z 0-9 _ -`); another character is refused here.
//!
//! `serve_agents` uses the node's own registry: with several nodes serving one kind, a key is
//! unique per node. For one agent per key across nodes, serve the kind through a cluster
//! (`crate::cluster::Cluster::serve`): the same workers, which then find owners in the cluster's
//! directory and forward requests for agents that live elsewhere (`Role`).

use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::client::{NatsClient, Subscription};
use super::codec::validate_publish_subject;
use super::codec::Headers;
use super::discovery;
use super::responder::{run_responder, Expect, Replier, Reply, PULL_CHECK};
use super::NatsError;
use crate::cluster::directory::{Directory, Located};
use crate::error::StartError;
use crate::key::parse_key_text;
use crate::request_id::{self, RequestDigest};
use crate::runtime::agent::{Agent, AgentBehavior, HandlerInfo};
use crate::runtime::handle::{AgentHandle, Control, Launcher, DEFAULT_TIMEOUT};
use crate::runtime::host;
use crate::runtime::mailbox::{cast, reply_slot, take_queued, wait_for, ReplyTo};
use crate::runtime::process::{spawn, spawn_linked};
use crate::trace::{self, TraceParent};

/// The worker processes serving one agent kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentService {
    subject: String,
    workers: Vec<u64>,
}

impl AgentService {
    /// The subject the workers subscribe to, such as `swarm.chat-room.*.*`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Stops the workers (their subscriptions go with them).
    pub fn stop(&self) {
        for &worker in &self.workers {
            crate::runtime::host::kill(worker);
        }
    }

    /// Stops the workers in order: each unsubscribes (the server sends it nothing more), answers
    /// every request it was already given, and ends. Waits for that, at most `timeout`, then
    /// stops the rest as [`AgentService::stop`] does.
    pub fn stop_gracefully(&self, timeout: std::time::Duration) {
        for &worker in &self.workers {
            let _gone_already = host::send(worker, STOP_TAG, &());
        }
        let deadline = std::time::Instant::now() + timeout;
        while self.workers.iter().any(|&worker| host::exists(worker))
            && std::time::Instant::now() < deadline
        {
            host::sleep(std::time::Duration::from_millis(5));
        }
        self.stop();
    }
}

/// Serves agents of kind `A` on `<namespace>.<kind>.<key>.<handler>` with `workers` worker
/// processes; returns once every worker's subscription is confirmed by the server.
pub fn serve_agents<A: Agent>(
    client: &NatsClient,
    namespace: &str,
    workers: usize,
) -> Result<AgentService, NatsError> {
    validate_publish_subject(&format!("{namespace}.{}", A::KIND))
        .map_err(|err| NatsError::Encode(err.into()))?;
    discovery::check_namespace(namespace)?;
    start_workers::<A>(
        client,
        format!("{namespace}.{}.*.*", A::KIND),
        format!("{namespace}.{}", A::KIND),
        format!("{namespace}.{}.", A::KIND),
        workers,
        None,
        Some(namespace),
    )
}

/// Starts `workers` workers for `A` on `subject` in `queue`, taking `<prefix><key>.<handler>`;
/// with `discovery`, they are endpoints of the services API of that namespace.
pub(crate) fn start_workers<A: Agent>(
    client: &NatsClient,
    subject: String,
    queue: String,
    prefix: String,
    workers: usize,
    role: Option<Role>,
    discovery: Option<&str>,
) -> Result<AgentService, NatsError> {
    let mut started = Vec::new();
    // Workers and their responders: they count the answers for `$SRV.STATS`.
    let mut counted = Vec::new();
    for _ in 0..workers.max(1) {
        let ready = reply_slot();
        let capture = (
            client.clone(),
            subject.clone(),
            queue.clone(),
            prefix.clone(),
            ready,
            role.clone(),
        );
        let outcome = spawn(capture, run_worker::<A>)
            .map_err(|err| err.to_string())
            .and_then(|worker| {
                wait_for::<Result<u64, String>>(
                    ready,
                    worker,
                    Some(std::time::Duration::from_secs(30)),
                )
                .map(|started| started.map(|responder| (worker, responder)))
                .map_err(|err| {
                    // Not serving a service that gave up on it.
                    host::kill(worker);
                    format!("{err:?}")
                })
            });
        match outcome {
            Ok(Ok((worker, responder))) => {
                started.push(worker);
                counted.extend([worker, responder]);
            }
            outcome => {
                let service = AgentService {
                    subject: subject.clone(),
                    workers: started,
                };
                service.stop();
                let reason = match outcome {
                    Ok(Err(reason)) | Err(reason) => reason,
                    Ok(Ok(_)) => unreachable!("a started worker is kept above"),
                };
                return Err(NatsError::Server(format!(
                    "a worker for {subject} did not start: {reason}"
                )));
            }
        }
    }
    let service = AgentService {
        subject,
        workers: started,
    };
    if let Some(namespace) = discovery {
        if let Err(err) = discovery::add_kind::<A>(client, namespace, &service.workers, &counted) {
            service.stop();
            return Err(err);
        }
    }
    Ok(service)
}

/// A worker's client, subject, queue group, subject prefix before `<key>.<handler>`, readiness
/// slot, and its place in a cluster (none for a node on its own).
pub(crate) type WorkerArgs = (NatsClient, String, String, String, ReplyTo, Option<Role>);

/// What a worker of a cluster does with keys it does not hold (see `cluster::directory`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Role {
    pub route: crate::cluster::directory::ClusterRoute,
    /// The worker takes requests forwarded to this node as the owner: it forwards none again.
    pub owner: bool,
}

/// A worker: takes requests from its subscription, validates them, and hands each to its agent
/// with the worker's responder as the reply address (see `responder.rs`), without waiting for the
/// answer; so one worker keeps many requests in flight.
pub(crate) fn run_worker<A: Agent>((client, subject, queue, prefix, ready, role): WorkerArgs) {
    // The responder ends with its worker: linked (for an abnormal end) and killed below (for a
    // normal one, which links do not report).
    let responder = match spawn_linked(
        (client.clone(), subject.clone()),
        run_responder::<A>,
        Tag::new(),
    ) {
        Ok(responder) => responder,
        Err(err) => return ready.send::<Result<u64, String>>(Err(err.to_string())),
    };
    let _responder_goes_too = KillOnDrop(responder);
    let subscription: Subscription = match client.queue_subscribe(&subject, &queue) {
        Ok(subscription) => subscription,
        Err(err) => return ready.send::<Result<u64, String>>(Err(err.to_string())),
    };
    ready.send::<Result<u64, String>>(Ok(responder));
    let mut replier = Replier::new(client.clone(), subject.clone(), A::HANDLERS);
    let owner = role.as_ref().is_some_and(|role| role.owner);
    let mut directory = role.map(|role| Directory::new(role.route));
    let mut subscription = Some(subscription);
    let mut drained = std::collections::VecDeque::new();
    let mut stop_checked = std::time::Instant::now();
    loop {
        // Between requests, and at least every PULL_CHECK: the counts for `$SRV.STATS`, and
        // whether the worker is asked to stop.
        replier.answer_pulls();
        let message = match &subscription {
            Some(_) if stop_checked.elapsed() >= PULL_CHECK && stop_asked(&mut stop_checked) => {
                // Stop taking requests, then answer every one already given to this worker.
                drained.extend(
                    subscription
                        .take()
                        .map(Subscription::drain)
                        .unwrap_or_default(),
                );
                continue;
            }
            Some(subscription) => match subscription.next_timeout(PULL_CHECK) {
                Ok(message) => message,
                Err(NatsError::TimedOut { .. }) => continue,
                Err(_closed) => break,
            },
            None => match drained.pop_front() {
                Some(message) => message,
                None => {
                    // The answers of the last requests are the responder's to send.
                    host::sleep(STOP_GRACE);
                    break;
                }
            },
        };
        let taken = replier.take(&message.subject);
        let reply_subject = message.reply_to.as_deref();
        let place = match directory.as_mut() {
            Some(directory) => Place::Cluster { directory, owner },
            None => Place::Node,
        };
        match dispatch::<A>(&prefix, &message.subject, &message.payload, place) {
            Dispatch::Forward(subject) => {
                // One hop: the owner answers the caller directly.
                // With the caller's headers: its request id (and trace) go along.
                let forwarded = client.forward(
                    &subject,
                    reply_subject,
                    message.headers.as_ref(),
                    &message.payload,
                );
                match (forwarded, reply_subject) {
                    (Err(err), Some(reply_subject)) => replier.send(
                        reply_subject,
                        Reply::error("unavailable", format!("forwarding to {subject}: {err}")),
                        &taken,
                    ),
                    _ => replier.count(&taken, None),
                }
            }
            Dispatch::Answered(reply) => match reply_subject {
                Some(reply_subject) => replier.send(reply_subject, reply, &taken),
                None => replier.count(&taken, reply.service_error()),
            },
            Dispatch::Request {
                agent,
                handler,
                message: request,
            } => {
                let name = A::HANDLERS[handler].name;
                let Some(reply_subject) = reply_subject else {
                    // Nobody waits for the answer: the handler runs, the answer goes nowhere.
                    let _published_without_reply = agent.raw().send(name, request);
                    replier.count(&taken, None);
                    continue;
                };
                let tag = Tag::new();
                // The agent drops the request unrun if it only gets to it after DEFAULT_TIMEOUT
                // (answering `Expired`, applied: false); the responder waits a grace period more
                // for that answer, so that `applied: null` is left for a handler still running.
                let mut reply_to = ReplyTo::json_to(host::Pid::local(responder), tag)
                    .expiring_after(DEFAULT_TIMEOUT);
                // The caller's trace continues in the agent (an invalid one is ignored, as W3C
                // says).
                if let Some(trace) = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get_ignore_ascii_case(trace::HEADER))
                    .and_then(TraceParent::parse)
                {
                    reply_to = reply_to.with_trace(trace);
                }
                match request_digest(message.headers.as_ref(), name) {
                    Ok(None) => {}
                    Ok(Some(digest)) => reply_to = reply_to.with_request(digest),
                    Err(why) => {
                        replier.send(reply_subject, Reply::error("bad_request_id", why), &taken);
                        continue;
                    }
                }
                match agent.raw().send_request(name, request, reply_to) {
                    // Announced once delivered; an answer that comes first waits for it.
                    Ok(()) => cast(
                        responder,
                        Expect {
                            tag: tag.id(),
                            reply_subject: reply_subject.to_owned(),
                            agent: agent.raw().pid().map_or(0, |pid| pid.id),
                            key: agent.key().to_owned(),
                            handler,
                            timeout: DEFAULT_TIMEOUT + RUNNING_GRACE,
                            spent: taken.elapsed(),
                        },
                    ),
                    Err(err) => replier.send(reply_subject, Reply::call_failed(&err), &taken),
                }
            }
        }
    }
}

/// The digest of a request's id (its `Swarm-Request-Id` header) for `handler`, if it has one.
fn request_digest(
    headers: Option<&Headers>,
    handler: &str,
) -> Result<Option<RequestDigest>, String> {
    match headers.and_then(|headers| headers.get_ignore_ascii_case(request_id::HEADER)) {
        None => Ok(None),
        Some(id) => RequestDigest::of(handler, id).map(Some),
    }
}

/// How long past a request's deadline the front door still waits for its agent's answer: a
/// handler that started in time may still be running (saving, for example).
const RUNNING_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The tag of the request that a worker stop taking requests (top byte 0x79: no handler number).
const STOP_TAG: i64 = (0x79 << 56) | 0x5354_4f50;
/// How long a stopping worker leaves its responder for the answers still to come.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether a stop request is queued (looked at every `PULL_CHECK`: a look costs two host calls).
fn stop_asked(checked: &mut std::time::Instant) -> bool {
    *checked = std::time::Instant::now();
    take_queued::<()>(&[STOP_TAG]).is_some()
}

/// Kills a process when dropped.
struct KillOnDrop(u64);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        host::kill(self.0);
    }
}

/// What a worker does with one request.
enum Dispatch<A: Agent> {
    /// It is answered already (an error, or a fire-and-forget handler that was delivered).
    Answered(Reply),
    /// Another node of the cluster owns the agent: the request goes to this subject, as it is.
    Forward(String),
    /// It goes to `agent`'s handler number `handler`, whose answer comes to the responder.
    Request {
        agent: A::Handle,
        handler: usize,
        message: A::Msg,
    },
}

/// Where a worker finds agents.
enum Place<'a> {
    /// In this node's registry, starting them if need be.
    Node,
    /// Through the cluster's directory.
    Cluster {
        directory: &'a mut Directory,
        owner: bool,
    },
}

/// Validates one request and finds (or starts) its agent.
fn dispatch<A: Agent>(prefix: &str, subject: &str, payload: &[u8], place: Place) -> Dispatch<A> {
    let answered = |reply| Dispatch::Answered(reply);
    let Some((key, handler)) = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_once('.'))
    else {
        return answered(Reply::error(
            "unknown_handler",
            format!("{subject:?} is not <namespace>.<kind>.<key>.<handler>"),
        ));
    };
    let key_text = key;
    let key: A::Key = match parse_key_text(A::KIND, key) {
        Ok(key) => key,
        Err(err) => return answered(Reply::error("invalid_key", err.to_string())),
    };
    if let (Some(control), Place::Cluster { owner: true, .. }) =
        (Control::from_token(handler), &place)
    {
        return answered(control_here::<A>(key, control));
    }
    let Some(index) = A::HANDLERS.iter().position(|info| info.name == handler) else {
        let known: Vec<&str> = A::HANDLERS.iter().map(|info| info.name).collect();
        return answered(Reply::error(
            "unknown_handler",
            format!(
                "agent kind `{}` has no handler `{handler}`; its handlers: {}",
                A::KIND,
                known.join(", ")
            ),
        ));
    };
    let info = &A::HANDLERS[index];
    let message = match decode_message::<A>(info, payload) {
        Ok(message) => message,
        Err(reason) => {
            return answered(Reply::error(
                "bad_arguments",
                format!("{}.{handler}: {reason}", A::KIND),
            ))
        }
    };
    let agent = match place {
        Place::Node => match Launcher::<A>::default().get_or_start(key) {
            Ok(agent) => agent,
            Err(err @ StartError::Overloaded { .. }) => {
                return answered(Reply::error("overloaded", err.to_string()))
            }
            Err(err) => return answered(Reply::error("start_failed", err.to_string())),
        },
        Place::Cluster { directory, owner } => match directory.locate::<A>(key, key_text, owner) {
            Located::Here(agent) => agent,
            Located::Forward(node) => {
                return Dispatch::Forward(format!("{node}.{}.{key_text}.{handler}", A::KIND))
            }
            Located::Refused(kind, message) => return answered(Reply::error(kind, message)),
        },
    };
    if info.request {
        return Dispatch::Request {
            agent,
            handler: index,
            message,
        };
    }
    answered(match agent.raw().send(info.name, message) {
        Ok(()) => Reply::ok(b"null"),
        Err(err) => Reply::call_failed(&err),
    })
}

/// What a handle on another node asked of `A`'s agent `key` here (see `cluster::remote`):
/// `true` if done, `false` if the agent does not run here.
fn control_here<A: Agent>(key: A::Key, control: Control) -> Reply {
    let Some(agent) = Launcher::<A>::default().lookup(key) else {
        return Reply::ok(b"false");
    };
    match control {
        Control::Alive => Reply::ok(b"true"),
        Control::Shutdown => match agent.shutdown() {
            Ok(()) => Reply::ok(b"true"),
            Err(err) => Reply::call_failed(&err),
        },
        Control::Kill => {
            agent.kill();
            Reply::ok(b"true")
        }
    }
}

/// The message for `info` from a JSON object of its arguments: `{"<Variant>": <arguments>}`,
/// the message enum's own JSON form.
fn decode_message<A: AgentBehavior>(info: &HandlerInfo, payload: &[u8]) -> Result<A::Msg, String> {
    let arguments = if payload.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        payload
    };
    if !arguments.trim_ascii_start().starts_with(b"{") {
        return Err(
            "the arguments are a JSON object of the handler's parameters, such as {\"n\": 2}"
                .into(),
        );
    }
    let tagged = [b"{\"", info.variant.as_bytes(), b"\":", arguments, b"}"].concat();
    serde_json::from_slice(&tagged).map_err(|err| err.to_string())
}

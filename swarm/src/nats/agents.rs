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
//!   `invalid_key`, `unknown_handler`, `bad_arguments`, `start_failed`, `call_failed`.
//!
//! Bytes from outside are decoded and validated here, before anything reaches an agent's mailbox:
//! a malformed request gets an error reply and never crashes an agent or a worker.
//!
//! Each node keeps its own registry: with several nodes serving one kind, a key is unique per
//! node, not across the cluster (a shared registry is future work).

use lunatic::{Mailbox, Process};
use serde::{Deserialize, Serialize};

use super::client::{NatsClient, Subscription};
use super::codec::validate_publish_subject;
use super::NatsError;
use crate::key::parse_key_text;
use crate::runtime::agent::{Agent, AgentBehavior, HandlerInfo};
use crate::runtime::handle::{AgentHandle, Launcher};
use crate::runtime::mailbox::{reply_slot, wait_for, ReplyTo};
use crate::runtime::wire::Wire;

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
            // SAFETY: a plain signal to a process of this node.
            unsafe { lunatic::host::api::process::kill(worker) };
        }
    }
}

/// Serves agents of kind `A` on `<namespace>.<kind>.<key>.<handler>` with `workers` worker
/// processes; returns once every worker's subscription is confirmed by the server.
pub fn serve_agents<A: Agent>(
    client: &NatsClient,
    namespace: &str,
    workers: usize,
) -> Result<AgentService, NatsError> {
    let subject = format!("{namespace}.{}.*.*", A::KIND);
    validate_publish_subject(&format!("{namespace}.{}", A::KIND))
        .map_err(|err| NatsError::Encode(err.into()))?;
    let queue = format!("{namespace}.{}", A::KIND);
    let mut started = Vec::new();
    for _ in 0..workers.max(1) {
        let ready = reply_slot();
        let worker = Process::<(), Wire>::spawn(
            (
                client.clone(),
                subject.clone(),
                queue.clone(),
                namespace.to_owned(),
                ready,
            ),
            run_worker::<A>,
        );
        match wait_for::<Result<(), String>>(
            ready,
            worker.id(),
            Some(std::time::Duration::from_secs(30)),
        ) {
            Ok(Ok(())) => started.push(worker.id()),
            outcome => {
                let service = AgentService {
                    subject: subject.clone(),
                    workers: started,
                };
                service.stop();
                let reason = match outcome {
                    Ok(Err(reason)) => reason,
                    Err(err) => format!("{err:?}"),
                    Ok(Ok(())) => unreachable!(),
                };
                return Err(NatsError::Server(format!(
                    "a worker for {subject} did not start: {reason}"
                )));
            }
        }
    }
    Ok(AgentService {
        subject,
        workers: started,
    })
}

type WorkerArgs = (NatsClient, String, String, String, ReplyTo);

fn run_worker<A: Agent>(
    (client, subject, queue, namespace, ready): WorkerArgs,
    _: Mailbox<(), Wire>,
) {
    let subscription: Subscription = match client.queue_subscribe(&subject, &queue) {
        Ok(subscription) => subscription,
        Err(err) => return ready.send::<Result<(), String>>(Err(err.to_string())),
    };
    ready.send::<Result<(), String>>(Ok(()));
    let prefix = format!("{namespace}.{}.", A::KIND);
    while let Some(message) = subscription.next() {
        let reply = answer::<A>(&prefix, &message.subject, &message.payload);
        if let (Some(_), Some(reply)) = (&message.reply_to, reply) {
            if let Err(err) = client.respond(&message, reply) {
                eprintln!(
                    "swarm: agents on {subject}: could not reply to {:?}: {err}",
                    message.subject
                );
            }
        }
    }
}

/// The JSON reply to one request (`None` for a fire-and-forget handler nobody waits on... which
/// still gets `{"ok":null}` when the publisher asked for a reply).
fn answer<A: Agent>(prefix: &str, subject: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let error = |kind: &str, message: String| {
        Some(
            serde_json::to_vec(
                &serde_json::json!({ "error": { "kind": kind, "message": message } }),
            )
            .unwrap_or_default(),
        )
    };
    let Some((key, handler)) = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_once('.'))
    else {
        return error(
            "unknown_handler",
            format!("{subject:?} is not <namespace>.<kind>.<key>.<handler>"),
        );
    };
    let key: A::Key = match parse_key_text(A::KIND, key) {
        Ok(key) => key,
        Err(err) => return error("invalid_key", err.to_string()),
    };
    let Some(info) = A::HANDLERS.iter().find(|info| info.name == handler) else {
        let known: Vec<&str> = A::HANDLERS.iter().map(|info| info.name).collect();
        return error(
            "unknown_handler",
            format!(
                "agent kind `{}` has no handler `{handler}`; its handlers: {}",
                A::KIND,
                known.join(", ")
            ),
        );
    };
    let message = match decode_message::<A>(info, payload) {
        Ok(message) => message,
        Err(reason) => return error("bad_arguments", format!("{}.{handler}: {reason}", A::KIND)),
    };
    let agent = match Launcher::<A>::default().get_or_start(key) {
        Ok(agent) => agent,
        Err(err) => return error("start_failed", err.to_string()),
    };
    let raw = agent.raw();
    if info.request {
        match raw.request_json(info.name, message) {
            Ok(json) => Some([&b"{\"ok\":"[..], &json, b"}"].concat()),
            Err(err) => error("call_failed", err.to_string()),
        }
    } else {
        match raw.send(info.name, message) {
            Ok(()) => Some(b"{\"ok\":null}".to_vec()),
            Err(err) => error("call_failed", err.to_string()),
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

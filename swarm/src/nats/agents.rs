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
//! - `call_failed` and `reply_too_large` also say whether the call was applied: `"applied"` is
//!   `true` (the handler ran and its state change is saved), `false` (it was not), or `null` (it
//!   cannot be known: the agent did not answer in time, or stopped before answering);
//! - an answer larger than the server's `max_payload` is replaced by a `reply_too_large` error
//!   that gives both sizes (`"size"`, `"max_payload"`), so a caller never waits out its timeout
//!   for an answer that cannot be sent.
//!
//! Bytes from outside are decoded and validated here, before anything reaches an agent's mailbox:
//! a malformed request gets an error reply and never crashes an agent or a worker.
//!
//! Each node keeps its own registry: with several nodes serving one kind, a key is unique per
//! node, not across the cluster (a shared registry is future work).

use serde::{Deserialize, Serialize};

use super::client::{NatsClient, Subscription};
use super::codec::validate_publish_subject;
use super::NatsError;
use crate::error::{CallFailure, StartError};
use crate::key::parse_key_text;
use crate::runtime::agent::{Agent, AgentBehavior, HandlerInfo};
use crate::runtime::handle::{AgentHandle, Launcher};
use crate::runtime::mailbox::{reply_slot, wait_for, ReplyTo};
use crate::runtime::process::spawn;

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
        let capture = (
            client.clone(),
            subject.clone(),
            queue.clone(),
            namespace.to_owned(),
            ready,
        );
        let outcome = spawn(capture, run_worker::<A>)
            .map_err(|err| err.to_string())
            .and_then(|worker| {
                wait_for::<Result<(), String>>(
                    ready,
                    worker,
                    Some(std::time::Duration::from_secs(30)),
                )
                .map(|started| started.map(|()| worker))
                .map_err(|err| format!("{err:?}"))
            });
        match outcome {
            Ok(Ok(worker)) => started.push(worker),
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
    Ok(AgentService {
        subject,
        workers: started,
    })
}

type WorkerArgs = (NatsClient, String, String, String, ReplyTo);

fn run_worker<A: Agent>((client, subject, queue, namespace, ready): WorkerArgs) {
    let subscription: Subscription = match client.queue_subscribe(&subject, &queue) {
        Ok(subscription) => subscription,
        Err(err) => return ready.send::<Result<(), String>>(Err(err.to_string())),
    };
    ready.send::<Result<(), String>>(Ok(()));
    let prefix = format!("{namespace}.{}.", A::KIND);
    let max_payload = usize::try_from(client.max_payload()).unwrap_or(usize::MAX);
    let mut undeliverable = 0u64;
    while let Some(message) = subscription.next() {
        let reply = answer::<A>(&prefix, &message.subject, &message.payload);
        if message.reply_to.is_none() {
            continue;
        }
        let payload = reply.fitted(max_payload);
        if let Err(err) = client.respond(&message, &payload) {
            // Nowhere to send an error either (an invalid reply subject, a closed client): say
            // so in the log, the first time and then every 1,000th, so a flood cannot fill it.
            undeliverable += 1;
            if undeliverable % 1000 == 1 {
                eprintln!(
                    "swarm: agents on {subject}: could not reply to {:?} ({undeliverable} so far): {err}",
                    message.subject
                );
            }
        }
    }
}

/// Whether a call took effect, as a caller outside Rust needs to know before retrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
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
            CallFailure::NotRunning | CallFailure::Panicked(_) | CallFailure::PersistFailed(_) => {
                Applied::No
            }
            CallFailure::Unencodable(_) => Applied::Yes,
            CallFailure::TimedOut(_) | CallFailure::Stopped => Applied::Unknown,
        }
    }
}

/// The JSON answer to one request, and whether the call was applied.
struct Reply {
    json: Vec<u8>,
    applied: Applied,
}

/// Error messages carry text from outside (keys, subjects) and from handlers (panic messages):
/// cut them to this many bytes so an error reply always fits.
const MAX_ERROR_MESSAGE: usize = 1024;

impl Reply {
    fn ok(answer: &[u8]) -> Self {
        Reply {
            json: [&b"{\"ok\":"[..], answer, b"}"].concat(),
            applied: Applied::Yes,
        }
    }

    fn error(kind: &str, message: String) -> Self {
        Self::error_with(kind, message, None)
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
    fn fitted(self, max_payload: usize) -> Vec<u8> {
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
        let mut error = Self::error_with("reply_too_large", message, Some(self.applied));
        let mut value: serde_json::Value = serde_json::from_slice(&error.json).unwrap_or_default();
        value["error"]["size"] = self.json.len().into();
        value["error"]["max_payload"] = max_payload.into();
        error.json = serde_json::to_vec(&value).unwrap_or_default();
        error.json
    }
}

/// The JSON reply to one request (fire-and-forget handlers are delivered and answered with
/// `{"ok":null}`, which only a publisher that asked for a reply gets).
fn answer<A: Agent>(prefix: &str, subject: &str, payload: &[u8]) -> Reply {
    let Some((key, handler)) = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_once('.'))
    else {
        return Reply::error(
            "unknown_handler",
            format!("{subject:?} is not <namespace>.<kind>.<key>.<handler>"),
        );
    };
    let key: A::Key = match parse_key_text(A::KIND, key) {
        Ok(key) => key,
        Err(err) => return Reply::error("invalid_key", err.to_string()),
    };
    let Some(info) = A::HANDLERS.iter().find(|info| info.name == handler) else {
        let known: Vec<&str> = A::HANDLERS.iter().map(|info| info.name).collect();
        return Reply::error(
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
        Err(reason) => {
            return Reply::error("bad_arguments", format!("{}.{handler}: {reason}", A::KIND))
        }
    };
    let agent = match Launcher::<A>::default().get_or_start(key) {
        Ok(agent) => agent,
        Err(err @ StartError::Overloaded { .. }) => {
            return Reply::error("overloaded", err.to_string())
        }
        Err(err) => return Reply::error("start_failed", err.to_string()),
    };
    let raw = agent.raw();
    let outcome = if info.request {
        raw.request_json(info.name, message)
    } else {
        raw.send(info.name, message).map(|()| b"null".to_vec())
    };
    match outcome {
        Ok(json) => Reply::ok(&json),
        Err(err) => {
            let applied = Applied::after(&err.reason);
            Reply::error_with("call_failed", err.to_string(), Some(applied))
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

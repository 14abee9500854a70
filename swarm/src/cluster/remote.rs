//! Calls from a handle on this node to an agent that another node of the cluster owns.
//!
//! They travel the way forwarded requests do: to the owner's node subject
//! `_SWARM.<ns>.node.<id>.<kind>.<key>.<handler>`, with the handler's arguments as JSON and the
//! front door's JSON answer (see `nats::agents`), so the owner serves them with the same workers
//! and the same checks. The answer is rebuilt into what a local call returns: the handler's
//! answer, or the same [`CallFailure`] (the front door's `call_failed` errors say which in their
//! `reason`). A node that left while the call waited is told apart from a slow agent by reading
//! its lease.
//!
//! Besides handlers, a handle can ask the owner whether the agent runs there, to stop it in
//! order, or to kill it ([`Control`]): "handlers" whose names start with `!`, which no handler
//! has, served by the owner's workers only.

use std::time::Duration;

use serde_json::Value;

use crate::error::CallFailure;
use crate::front_door::decode_reply;
use crate::nats::{NatsClient, NatsError};
use crate::runtime::agent::Agent;
use crate::runtime::handle::Control;

/// Calls `handler` of `A`'s agent `key` on the node with subject prefix `node`: the handler's
/// answer as JSON.
pub(crate) fn call<A: Agent>(
    node: &str,
    key: &str,
    handler: &str,
    message: &A::Msg,
    timeout: Duration,
) -> Result<Value, CallFailure> {
    let arguments = arguments(message)?;
    let subject = format!("{node}.{}.{key}.{handler}", A::KIND);
    let reply = request::<A>(&subject, &arguments, timeout, node)?;
    decode_reply(&reply, timeout)
}

/// Asks the node `node` to act on `A`'s agent `key` there: `Ok(false)` if it does not run there.
pub(crate) fn control<A: Agent>(
    node: &str,
    key: &str,
    control: Control,
    timeout: Duration,
) -> Result<bool, CallFailure> {
    let subject = format!("{node}.{}.{key}.{}", A::KIND, control.token());
    let reply = request::<A>(&subject, b"{}", timeout, node)?;
    match decode_reply(&reply, timeout) {
        Ok(Value::Bool(done)) => Ok(done),
        Ok(other) => Err(CallFailure::Unencodable(format!(
            "undecodable reply to {}: {other}",
            control.token()
        ))),
        Err(CallFailure::NotRunning) => Ok(false),
        Err(failure) => Err(failure),
    }
}

/// The JSON object of a handler's arguments: the message enum's JSON form is
/// `{"<Variant>": {<arguments>}}`, which the owner rebuilds from the subject's handler name.
fn arguments<M: serde::Serialize>(message: &M) -> Result<Vec<u8>, CallFailure> {
    let unsendable = |why: String| CallFailure::Unsendable(format!("as JSON for NATS: {why}"));
    match serde_json::to_value(message).map_err(|err| unsendable(err.to_string()))? {
        Value::Object(variant) if variant.len() == 1 => {
            let (_, arguments) = variant.into_iter().next().expect("one entry");
            serde_json::to_vec(&arguments).map_err(|err| unsendable(err.to_string()))
        }
        other => Err(unsendable(format!("not one handler's message: {other}"))),
    }
}

fn client() -> Result<NatsClient, CallFailure> {
    crate::runtime::node::nats_client().ok_or_else(|| {
        CallFailure::Unavailable("this node has no NATS connection (it left its cluster)".into())
    })
}

fn request<A: Agent>(
    subject: &str,
    payload: &[u8],
    timeout: Duration,
    node: &str,
) -> Result<Vec<u8>, CallFailure> {
    // The calling handler's trace goes on to the owner (see `trace`).
    let sent = match crate::trace::current() {
        Some(trace) => {
            let mut headers = crate::nats::Headers::new();
            headers
                .insert(crate::trace::HEADER, trace.to_string())
                .map_err(|err| CallFailure::Unsendable(err.to_string()))?;
            client()?.request_with_headers(subject, &headers, payload, timeout)
        }
        None => client()?.request(subject, payload, timeout),
    };
    match sent {
        Ok(reply) => Ok(reply.payload),
        Err(NatsError::NoResponders { .. }) => Err(CallFailure::NoResponders(format!(
            "nobody serves {subject}: its node has stopped serving"
        ))),
        Err(NatsError::TimedOut { .. }) => Err(match node_left::<A>(node) {
            Some(why) => CallFailure::NodeLost(why),
            None => CallFailure::TimedOut(timeout),
        }),
        Err(NatsError::Disconnected) => Err(CallFailure::NodeLost(
            "this node's connection to NATS was lost while the call waited".into(),
        )),
        Err(err @ (NatsError::Encode(_) | NatsError::PayloadTooLarge(_))) => {
            Err(CallFailure::Unsendable(err.to_string()))
        }
        Err(err) => Err(CallFailure::Unavailable(format!(
            "calling through NATS ({subject}): {err}"
        ))),
    }
}

/// Why the node with subject prefix `node` is known to have left the cluster (its lease entry
/// is gone); `None` if it is there or that cannot be read.
fn node_left<A: Agent>(node: &str) -> Option<String> {
    let node_id = node.rsplit('.').next()?;
    match super::route_for::<A>().ok()?.nodes.get_from_leader(node_id) {
        Ok(None) => Some(format!(
            "node {node_id} left the cluster (its lease ended) while the call waited"
        )),
        _ => None,
    }
}

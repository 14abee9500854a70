//! Events agents publish from their handlers: [`publish`].
//!
//! Inside a handler, `publish(subject, &event)` checks the subject and encodes the event (as JSON)
//! at once, returning those errors to the handler, and keeps the message. The messages a handler
//! published are sent when it returns, through the node's shared NATS connection
//! ([`crate::set_node_nats`]), and the connection is flushed (the server has them) **before** the
//! agent saves its state and answers its caller. So:
//!
//! - a handler that panics (or whose agent ends before its change is kept: over its
//!   `max_memory`) publishes nothing;
//! - a change that was saved had its events reach the server first; a crash between the two
//!   repeats the events of a change that is then made again (at least once: a subscriber that
//!   must not apply one twice keeps what it applied, such as the id of the order);
//! - events that cannot be sent (no connection, the server unreachable) fail the call as a save
//!   would (`CallFailure::PersistFailed`, saying so): the change is not acknowledged, and the
//!   agent restarts from its last save.
//!
//! Outside a handler (the program's own code), `publish` sends at once and flushes.
//!
//! [`publish_to_stream`] is the same for an event that must not be lost: its subject is one a
//! JetStream stream stores, and it is sent as a JetStream publish that waits for the stream's
//! acknowledgement (before the state is saved), with the id given as `Nats-Msg-Id`: a handler run
//! again after a crash publishes the same event with the same id, which the stream drops as a
//! duplicate (within its duplicate window, 2 minutes by default). So a chain of agents on one
//! stream passes each event on once, across crashes.

use std::cell::{Cell, RefCell};

use serde::Serialize;

use super::client::NatsClient;
use super::codec::validate_publish_subject;

/// Why an event was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The node has no NATS connection for events.
    #[error(
        "no NATS connection to publish events through: give the node one with \
         swarm::set_node_nats(client)"
    )]
    NoConnection,
    /// The subject cannot be published to (empty, a wildcard, a space...).
    #[error("cannot publish an event on {subject:?}: {reason}")]
    Subject {
        /// The subject given.
        subject: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The event does not encode as JSON.
    #[error("the event for {subject:?} does not encode as JSON: {reason}")]
    Unencodable {
        /// The subject given.
        subject: String,
        /// serde_json's error.
        reason: String,
    },
    /// The event is larger than the server's `max_payload`.
    #[error("the event for {subject:?} is {size} bytes, over the server's max_payload of {max}")]
    TooLarge {
        /// The subject given.
        subject: String,
        /// The event's size.
        size: usize,
        /// The server's limit.
        max: u64,
    },
    /// Sending it failed (outside a handler; inside one, the failure fails the call).
    #[error("publishing an event failed: {0}")]
    Send(String),
}

thread_local! {
    /// Whether this process is running a handler now (set by the agent runtime).
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
    /// The events the running handler published, in order: subject, payload, and for an event
    /// for a stream its message id.
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// The node's connection, once looked up (a process asks the node's settings once).
    static CLIENT: RefCell<Option<NatsClient>> = const { RefCell::new(None) };
}

/// An event waiting for its handler's end.
struct Pending {
    subject: String,
    payload: Vec<u8>,
    /// `Some(id)`: a JetStream publish with `Nats-Msg-Id: id`, acknowledged by the stream.
    stream_id: Option<String>,
}

/// Publishes `event` as JSON on `subject`. Inside a handler: sent when the handler returns,
/// before its state is saved (see the module's docs); elsewhere: sent now.
pub fn publish<T: Serialize + ?Sized>(subject: &str, event: &T) -> Result<(), EventError> {
    publish_inner(subject, None, event)
}

/// Publishes `event` as JSON on `subject`, which a JetStream stream stores, as a JetStream publish
/// with the message id `id` (the stream drops a second message with the same id: give each event
/// an id of its own that a repeat of the same handler run gives again, such as
/// `"reserve-<order id>"`). Inside a handler: sent when the handler returns, and acknowledged by
/// the stream before its state is saved; elsewhere: sent now, returning once the stream stored it.
pub fn publish_to_stream<T: Serialize + ?Sized>(
    subject: &str,
    id: &str,
    event: &T,
) -> Result<(), EventError> {
    if id.is_empty() || id.chars().any(|c| c.is_control()) {
        return Err(EventError::Subject {
            subject: subject.to_owned(),
            reason: format!("{id:?} is not a message id (1 or more visible characters)"),
        });
    }
    publish_inner(subject, Some(id), event)
}

fn publish_inner<T: Serialize + ?Sized>(
    subject: &str,
    stream_id: Option<&str>,
    event: &T,
) -> Result<(), EventError> {
    validate_publish_subject(subject).map_err(|err| EventError::Subject {
        subject: subject.to_owned(),
        reason: err.to_string(),
    })?;
    let payload = serde_json::to_vec(event).map_err(|err| EventError::Unencodable {
        subject: subject.to_owned(),
        reason: err.to_string(),
    })?;
    let client = client().ok_or(EventError::NoConnection)?;
    if payload.len() as u64 > client.max_payload() {
        return Err(EventError::TooLarge {
            subject: subject.to_owned(),
            size: payload.len(),
            max: client.max_payload(),
        });
    }
    let pending = Pending {
        subject: subject.to_owned(),
        payload,
        stream_id: stream_id.map(str::to_owned),
    };
    if IN_HANDLER.with(Cell::get) {
        PENDING.with(|queue| queue.borrow_mut().push(pending));
        return Ok(());
    }
    send(&client, &[pending]).map_err(EventError::Send)
}

/// Sends `events` in order: core publishes, flushed, and JetStream publishes, each acknowledged.
fn send(client: &NatsClient, events: &[Pending]) -> Result<(), String> {
    let js = events
        .iter()
        .any(|event| event.stream_id.is_some())
        .then(|| super::JetStream::new(client.clone()));
    let mut core = false;
    for event in events {
        match (&event.stream_id, &js) {
            (Some(id), Some(js)) => {
                let mut headers = super::Headers::new();
                headers
                    .insert("Nats-Msg-Id", id.clone())
                    .map_err(|err| format!("message id {id:?}: {err}"))?;
                js.publish(&event.subject, Some(&headers), &event.payload, None)
                    .map_err(|err| format!("to the stream on {:?}: {err}", event.subject))?;
            }
            _ => {
                client
                    .publish(&event.subject, &event.payload)
                    .map_err(|err| format!("on {:?}: {err}", event.subject))?;
                core = true;
            }
        }
    }
    if core {
        client.flush().map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// The node's connection for events, looked up once per process.
fn client() -> Option<NatsClient> {
    CLIENT.with(|cached| {
        let mut cached = cached.borrow_mut();
        if !cached.as_ref().is_some_and(|client| !client.is_closed()) {
            *cached = crate::runtime::node::nats_client();
        }
        cached.clone()
    })
}

/// The runtime starts a handler: what it publishes waits for its end.
pub(crate) fn handler_started() {
    IN_HANDLER.with(|flag| flag.set(true));
    PENDING.with(|pending| pending.borrow_mut().clear());
}

/// The runtime is done with a handler (its events sent, or dropped with its change).
pub(crate) fn handler_ended() {
    IN_HANDLER.with(|flag| flag.set(false));
    PENDING.with(|pending| pending.borrow_mut().clear());
}

/// Sends the events the handler published and waits until the server has them; `Err` says why
/// they could not be (the handler's change must then not be acknowledged).
pub(crate) fn send_pending() -> Result<(), String> {
    let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    if pending.is_empty() {
        return Ok(());
    }
    let client = client().ok_or_else(|| EventError::NoConnection.to_string())?;
    send(&client, &pending).map_err(|err| {
        format!(
            "its {} event(s) could not be published: {err}",
            pending.len()
        )
    })
}

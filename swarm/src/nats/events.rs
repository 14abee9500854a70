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

use std::cell::{Cell, RefCell};

use serde::Serialize;

use super::client::NatsClient;
use super::codec::validate_publish_subject;
use super::NatsError;

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
    /// The events the running handler published, in order.
    static PENDING: RefCell<Vec<(String, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    /// The node's connection, once looked up (a process asks the node's settings once).
    static CLIENT: RefCell<Option<NatsClient>> = const { RefCell::new(None) };
}

/// Publishes `event` as JSON on `subject`. Inside a handler: sent when the handler returns,
/// before its state is saved (see the module's docs); elsewhere: sent now.
pub fn publish<T: Serialize + ?Sized>(subject: &str, event: &T) -> Result<(), EventError> {
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
    if IN_HANDLER.with(Cell::get) {
        PENDING.with(|pending| pending.borrow_mut().push((subject.to_owned(), payload)));
        return Ok(());
    }
    client
        .publish(subject, &payload)
        .and_then(|()| client.flush())
        .map_err(|err| EventError::Send(err.to_string()))
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
    let sent: Result<(), NatsError> = pending
        .iter()
        .try_for_each(|(subject, payload)| client.publish(subject, payload))
        .and_then(|()| client.flush());
    sent.map_err(|err| {
        format!(
            "its {} event(s) could not be published: {err}",
            pending.len()
        )
    })
}

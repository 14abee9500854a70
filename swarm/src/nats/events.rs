//! Events agents publish from their handlers: [`publish`] and [`publish_to_stream`].
//!
//! Inside a handler, both check the subject and encode the event (as JSON) at once, returning
//! those errors to the handler, and keep the message; nothing leaves while the handler runs, so a
//! handler that panics (or whose agent ends before its change is kept: over its `max_memory`)
//! publishes nothing. What happens when it returns depends on the kind of event:
//!
//! - [`publish`] (core NATS): **sent only once the handler's change is saved**, through the
//!   node's shared NATS connection ([`crate::set_node_nats`]), and flushed (the server has them)
//!   before the caller is answered. Under write-through that is right after the handler's save;
//!   under write-behind, with the save that keeps its change (by the deadline, on an orderly
//!   stop, on passivation), so a change a crash loses has sent nothing either; a handler that
//!   changed nothing (and follows no unsaved change) sends at once. If the save fails or is
//!   refused (another node fenced the record: the call fails `Moved`; the store failed:
//!   `PersistFailed`), the events are dropped with the change: logged (`agent.events_dropped`,
//!   with their number) and counted with the call's outcome (`moved`, `persist_failed`). Events
//!   that cannot be sent after a save (the connection lost) are lost and logged
//!   (`agent.events_not_published`); the change stands and the call is answered as applied, and a
//!   crash between the save and the send loses them too: at most once, never for a change that
//!   was not kept (as core NATS delivers at most once in any case). For events that must not be
//!   lost, use a stream.
//! - [`publish_to_stream`] (JetStream): **stored and acknowledged by the stream before the save**,
//!   so that no crash after the save can lose it (a redelivered message whose mark was saved is
//!   not run again, and would not publish it again). If the stream does not acknowledge it, the
//!   call fails as a failed save does (`PersistFailed`: the change is not saved, not
//!   acknowledged, and the agent restarts from its last save). The price: an event whose save
//!   then fails (the store's error, a record fenced by a new owner, a crash between the two) is in
//!   the stream although its change was not kept. A retry of the same call or message (the stream
//!   redelivers an unacked message; a caller retries a failed call) runs the handler again, which
//!   publishes the event again **with the same id**: the stream drops that copy as a duplicate
//!   (`Nats-Msg-Id`, within the stream's duplicate window, 2 minutes by default). So an event is
//!   in the stream at least once for every change that was kept, and once for a change that was
//!   not kept if the handler, run again, publishes it again under the same id; a run that decides
//!   otherwise (a new owner whose state differs) cannot take back the event already stored. Give
//!   each event an id derived from what caused it (`"reserve-<order id>"`), never from a counter
//!   or the clock, and make its consumers tolerate an event whose cause was retried.
//!
//! Within one handler, its stream events are thus sent before its core events. Outside a handler
//! (the program's own code), both send at once.

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
    /// The core events of the handlers whose changes are not saved yet (write-behind: over
    /// several messages), in order: sent once a save keeps those changes, dropped if it fails.
    static UNSAVED: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
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

/// Publishes `event` as JSON on `subject` (core NATS, at most once). Inside a handler: sent once
/// the handler's change is saved, never if that save fails (see the module's docs); elsewhere:
/// sent now.
pub fn publish<T: Serialize + ?Sized>(subject: &str, event: &T) -> Result<(), EventError> {
    publish_inner(subject, None, event)
}

/// Publishes `event` as JSON on `subject`, which a JetStream stream stores, as a JetStream publish
/// with the message id `id` (the stream drops a second message with the same id: give each event
/// an id of its own that a repeat of the same handler run gives again, such as
/// `"reserve-<order id>"`). Inside a handler: sent when the handler returns, and acknowledged by
/// the stream **before** its state is saved, so that no crash after the save loses it; if that
/// save then fails, the event stays in the stream, and a retry's copy (same id) is dropped as a
/// duplicate (see the module's docs). Elsewhere: sent now, returning once the stream stored it.
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

/// The runtime is done with a handler (its stream events sent, its core events waiting for its
/// save; or all dropped with its change).
pub(crate) fn handler_ended() {
    IN_HANDLER.with(|flag| flag.set(false));
    PENDING.with(|pending| pending.borrow_mut().clear());
}

/// Sends the stream events the handler published, each acknowledged by its stream, and keeps its
/// core events for [`send_saved`] or [`drop_unsaved`]. `Err` says why a stream event was not
/// stored (the handler's change must then not be saved nor acknowledged).
pub(crate) fn send_stream_events() -> Result<(), String> {
    let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    let (stream, core): (Vec<Pending>, Vec<Pending>) = pending
        .into_iter()
        .partition(|event| event.stream_id.is_some());
    UNSAVED.with(|unsaved| unsaved.borrow_mut().extend(core));
    if stream.is_empty() {
        return Ok(());
    }
    let client = client().ok_or_else(|| EventError::NoConnection.to_string())?;
    send(&client, &stream).map_err(|err| {
        format!(
            "its {} stream event(s) could not be published: {err}",
            stream.len()
        )
    })
}

/// The changes of the handlers whose core events wait are saved: sends those events and waits
/// until the server has them. `Err`: they could not be sent (how many, and why).
pub(crate) fn send_saved() -> Result<(), String> {
    let unsaved = UNSAVED.with(|unsaved| std::mem::take(&mut *unsaved.borrow_mut()));
    if unsaved.is_empty() {
        return Ok(());
    }
    let client = client().ok_or_else(|| EventError::NoConnection.to_string())?;
    send(&client, &unsaved)
        .map_err(|err| format!("{} event(s) could not be published: {err}", unsaved.len()))
}

/// The changes of the handlers whose core events wait will not be saved: drops those events;
/// how many there were.
pub(crate) fn drop_unsaved() -> usize {
    UNSAVED.with(|unsaved| std::mem::take(&mut *unsaved.borrow_mut()).len())
}

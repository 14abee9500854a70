//! Request/reply over Lunatic mailboxes, with timeouts and crash detection.
//!
//! Lunatic's own `ProcessRef::request` waits forever if the server dies before it answers (and
//! with a timeout, cannot tell a slow server from a dead one). Here the caller sends an
//! [`Envelope`] naming where to reply, then waits for a message carrying its own fresh tag. It waits
//! in slices: a reply that arrives within the first slice (the normal case) costs nothing extra;
//! after each empty slice the caller checks that the server still exists, so a crashed or killed
//! server is noticed within [`MAX_SLICE`], and the caller gets an error instead of a hang.
//!
//! Replies are `Result<R, RemoteFailure>` encoded with bincode. A server that fails mid-call (a
//! panicking handler) answers with `Err(..)` without knowing `R`: bincode encodes an `Err` as the
//! variant index followed by the error, whatever the `Ok` type is.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use lunatic::host::api::{message, process};
use lunatic::serializer::CanSerialize;
use lunatic::{Process, Tag};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::wire::Wire;
use crate::error::RemoteFailure;

/// What `message::receive` returns when a data message arrived (otherwise: timed out, 9027).
pub(crate) const DATA_MESSAGE: u32 = 0;

/// Every swarm server process speaks the protocol of a Lunatic `AbstractProcess` with exactly one
/// handler, `Message<Envelope<M>>`, which Lunatic numbers 1: the number travels in the top byte
/// of a message's tag.
pub(crate) const ENVELOPE_HANDLER_ID: i64 = 1;
const ENVELOPE_HANDLER: i64 = ENVELOPE_HANDLER_ID << 56;
/// Lunatic's number for the shutdown "handler" of an `AbstractProcess`.
pub(crate) const SHUTDOWN_HANDLER_ID: i64 = 32;

/// The first wait slice; doubled after each empty slice up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(10);
/// The longest a caller waits before checking again that the server is alive.
pub const MAX_SLICE: Duration = Duration::from_millis(100);

thread_local! {
    /// This process' `(node, id)`: asked of the host once, not on every request.
    static THIS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    /// Requests this process stopped waiting for (timed out), as `(tag, server)`: their replies
    /// may still come, and would stay in the mailbox for good; the next requests take them out.
    static ABANDONED: RefCell<Vec<(i64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// At most this many abandoned requests are remembered; past it the oldest is forgotten (its late
/// reply, if it ever comes, stays in the mailbox).
const MAX_ABANDONED: usize = 1024;

fn abandon(tag: Tag, server: u64) {
    ABANDONED.with(|abandoned| {
        let mut abandoned = abandoned.borrow_mut();
        if abandoned.len() == MAX_ABANDONED {
            abandoned.remove(0);
        }
        abandoned.push((tag.id(), server));
    });
}

/// Takes the late replies of abandoned requests out of the mailbox, and forgets requests whose
/// server is gone without replying. Costs nothing while no request was abandoned.
fn sweep_abandoned() {
    ABANDONED.with(|abandoned| {
        let mut abandoned = abandoned.borrow_mut();
        if abandoned.is_empty() {
            return;
        }
        abandoned.retain(|&(tag, server)| {
            let tags = [tag];
            // SAFETY: `tags` outlives the call; a zero timeout only looks.
            let arrived = unsafe { message::receive(tags.as_ptr(), tags.len(), 0) } == DATA_MESSAGE;
            // A reply that arrived is dropped with the next receive; a server that is gone
            // will not reply any more (it was looked for just above).
            !arrived && process_exists(server)
        });
    });
}

/// The id of the node this process runs on.
pub fn this_node() -> u64 {
    this().0
}

fn this() -> (u64, u64) {
    THIS.with(|this| {
        this.get().unwrap_or_else(|| {
            // SAFETY: `this()` only reads the current process' ids.
            let me = unsafe { Process::<(), Wire>::this() };
            let ids = (me.node_id(), me.id());
            this.set(Some(ids));
            ids
        })
    })
}

/// Where a server sends the reply to one request: the caller's process and a tag unique to this
/// request inside it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReplyTo {
    node: u64,
    process: u64,
    tag: Tag,
    /// The caller wants the answer as JSON bytes (the NATS router), not as the answer's own type.
    json: bool,
}

impl ReplyTo {
    /// Sends an answer in its own type.
    pub fn send<R: Serialize + DeserializeOwned>(self, answer: R) {
        self.send_result::<R>(Ok(answer));
    }

    /// Sends a handler's answer in the form the caller asked for: its own type, or JSON.
    pub fn answer<R: Serialize + DeserializeOwned>(self, answer: R) {
        if !self.json {
            return self.send(answer);
        }
        match serde_json::to_vec(&answer) {
            Ok(bytes) => self.send(bytes),
            Err(err) => self.send_failure(RemoteFailure::Unencodable(err.to_string())),
        }
    }

    pub(crate) fn send_failure(self, failure: RemoteFailure) {
        self.send_result::<()>(Err(failure));
    }

    fn send_result<R: Serialize + DeserializeOwned>(self, result: Result<R, RemoteFailure>) {
        // An answer that does not encode (a `Serialize` impl that fails) becomes an `Unencodable`
        // failure for the caller: the caller always gets an answer, and the server goes on.
        if let Err(err) = self.try_send(&result) {
            let failure: Result<(), RemoteFailure> = Err(RemoteFailure::Unencodable(format!(
                "the answer does not encode: {err}"
            )));
            let _always_encodes = self.try_send(&failure);
        }
    }

    fn try_send<R: Serialize + DeserializeOwned>(
        self,
        result: &Result<R, RemoteFailure>,
    ) -> Result<(), lunatic::serializer::EncodeError> {
        // SAFETY: `create_data` starts the outgoing message that `encode` fills (a new
        // `create_data` drops a half-written one); `send` hands it to the caller's process on this
        // node (if it has ended, the runtime drops the message).
        unsafe {
            message::create_data(self.tag.id(), 0);
            <Wire as CanSerialize<Result<R, RemoteFailure>>>::encode(result)?;
            message::send(self.process);
        }
        Ok(())
    }
}

/// A message to a server process: the payload and, for a request, where to reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// The message itself.
    pub message: M,
    /// `Some` when the sender waits for an answer.
    pub reply_to: Option<ReplyTo>,
}

/// Why a reply did not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut(Duration),
    /// The server's process no longer exists.
    ServerGone,
    /// The server answered with a failure instead of a value.
    Failed(RemoteFailure),
    /// The reply did not decode as the expected type (a bug: both sides are the same program).
    Undecodable(String),
}

/// Sends `message` to the swarm process `server` (on this node) and waits for its answer.
///
/// One host call sends the request and waits for the first slice, as Lunatic's own request does;
/// only a slow or dead server costs more.
pub fn call<M, R>(server: u64, message: M, timeout: Option<Duration>) -> Result<R, WaitError>
where
    M: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    call_as(server, message, timeout, false)
}

/// As [`call`], with the answer encoded as JSON by the server (agents do; see `ReplyTo::answer`).
pub fn call_json<M>(
    server: u64,
    message: M,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, WaitError>
where
    M: Serialize + DeserializeOwned,
{
    call_as(server, message, timeout, true)
}

fn call_as<M, R>(
    server: u64,
    message: M,
    timeout: Option<Duration>,
    json: bool,
) -> Result<R, WaitError>
where
    M: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let started = Instant::now();
    sweep_abandoned();
    let (node, process) = this();
    let tag = Tag::new();
    let envelope = Envelope {
        message,
        reply_to: Some(ReplyTo {
            node,
            process,
            tag,
            json,
        }),
    };
    let first = slice_within(FIRST_SLICE, timeout, started).unwrap_or(Duration::ZERO);
    // SAFETY: `create_data` starts the outgoing message that `encode` fills; the send and the
    // wait are one host call, so the reply cannot slip past.
    let kind = unsafe {
        message::create_data(ENVELOPE_HANDLER | tag.id(), 0);
        if <Wire as CanSerialize<Envelope<M>>>::encode(&envelope).is_err() {
            return Err(WaitError::Undecodable("the request does not encode".into()));
        }
        message::send_receive_skip_search(server, tag.id(), millis(first))
    };
    if kind == DATA_MESSAGE {
        return decode_reply();
    }
    wait_reply(tag, server, timeout, started)
}

/// Sends `message` to the swarm process `server` (on this node) without waiting: a fire-and-forget
/// [`Envelope`]. If the server has ended, the runtime drops the message.
pub fn cast<M>(server: u64, message: M)
where
    M: Serialize + DeserializeOwned,
{
    let envelope = Envelope {
        message,
        reply_to: None,
    };
    // SAFETY: `create_data` starts the outgoing message that `encode` fills; `send` hands it over.
    unsafe {
        message::create_data(ENVELOPE_HANDLER | Tag::new().id(), 0);
        if <Wire as CanSerialize<Envelope<M>>>::encode(&envelope).is_ok() {
            message::send(server);
        }
    }
}

/// A reply address in this process with a fresh tag, for a reply that comes some other way than
/// through [`call`] (for example from a process this one spawns).
pub fn reply_slot() -> ReplyTo {
    let (node, process) = this();
    ReplyTo {
        node,
        process,
        tag: Tag::new(),
        json: false,
    }
}

/// Waits for the reply to `slot` from the process `server`.
pub fn wait_for<R: Serialize + DeserializeOwned>(
    slot: ReplyTo,
    server: u64,
    timeout: Option<Duration>,
) -> Result<R, WaitError> {
    let started = Instant::now();
    let tags = [slot.tag.id()];
    let first = slice_within(FIRST_SLICE, timeout, started).unwrap_or(Duration::ZERO);
    // SAFETY: `tags` outlives the call.
    if unsafe { message::receive(tags.as_ptr(), tags.len(), millis(first)) } == DATA_MESSAGE {
        return decode_reply();
    }
    wait_reply(slot.tag, server, timeout, started)
}

/// Asks the Lunatic `AbstractProcess` `server` to shut down (its `terminate` runs) and waits for
/// it to confirm, at most `timeout`.
pub fn shutdown_abstract_process(server: u64, timeout: Duration) -> Result<(), WaitError> {
    let started = Instant::now();
    let (node, process) = this();
    let tag = Tag::new();
    // SAFETY: as in `call`: one outgoing message, sent and waited for in one host call.
    let kind = unsafe {
        message::create_data((SHUTDOWN_HANDLER_ID << 56) | tag.id(), 0);
        if <Wire as CanSerialize<ShutdownRequest>>::encode(&ShutdownRequest { node, process })
            .is_err()
        {
            return Err(WaitError::Undecodable(
                "the shutdown message does not encode".into(),
            ));
        }
        let first = slice_within(FIRST_SLICE, Some(timeout), started).unwrap_or(Duration::ZERO);
        message::send_receive_skip_search(server, tag.id(), millis(first))
    };
    // Lunatic confirms with a bare `()` (not a `Result`), so the reply is not decoded.
    if kind == DATA_MESSAGE {
        return Ok(());
    }
    let tags = [tag.id()];
    loop {
        if !process_exists(server) {
            return Ok(());
        }
        let Some(wait) = slice_within(MAX_SLICE, Some(timeout), started) else {
            return Err(WaitError::TimedOut(timeout));
        };
        // SAFETY: `tags` outlives the call.
        if unsafe { message::receive(tags.as_ptr(), tags.len(), millis(wait)) } == DATA_MESSAGE {
            return Ok(());
        }
    }
}

/// Lunatic's shutdown message: the address to confirm to, encoded as its `Process` is.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ShutdownRequest {
    node: u64,
    process: u64,
}

impl ShutdownRequest {
    /// Tells the process that asked that the shutdown is over (Lunatic confirms with a bare `()`
    /// tagged with the request's tag, its handler byte cleared).
    pub(crate) fn confirm(&self, tag: i64) {
        // SAFETY: one outgoing message to a process of this node (dropped if it has ended).
        unsafe {
            message::create_data(tag, 0);
            if <Wire as CanSerialize<()>>::encode(&()).is_ok() {
                message::send(self.process);
            }
        }
    }
}

/// Waits for the reply tagged `tag` from the process `server`, after a first slice passed.
fn wait_reply<R: Serialize + DeserializeOwned>(
    tag: Tag,
    server: u64,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<R, WaitError> {
    let tags = [tag.id()];
    let mut slice = FIRST_SLICE;
    loop {
        // SAFETY: a plain query of the process table.
        if unsafe { process::exists(server) } == 0 {
            // It may have answered just before it ended: look once more without waiting.
            // SAFETY: `tags` outlives the call.
            let last = unsafe { message::receive(tags.as_ptr(), tags.len(), 0) };
            return if last == DATA_MESSAGE {
                decode_reply()
            } else {
                Err(WaitError::ServerGone)
            };
        }
        slice = (slice * 2).min(MAX_SLICE);
        let Some(wait) = slice_within(slice, timeout, started) else {
            abandon(tag, server);
            return Err(WaitError::TimedOut(timeout.unwrap_or_default()));
        };
        // SAFETY: `tags` outlives the call; the runtime copies it.
        match unsafe { message::receive(tags.as_ptr(), tags.len(), millis(wait)) } {
            DATA_MESSAGE => return decode_reply(),
            // Timed out: check the server again. Link and monitor signals carry other tags.
            _ => continue,
        }
    }
}

/// The next wait: `slice`, cut to what is left of `timeout`; `None` once it has passed.
fn slice_within(slice: Duration, timeout: Option<Duration>, started: Instant) -> Option<Duration> {
    match timeout {
        None => Some(slice),
        Some(limit) => {
            let left = limit.saturating_sub(started.elapsed());
            (!left.is_zero()).then(|| left.min(slice))
        }
    }
}

fn millis(wait: Duration) -> u64 {
    (wait.as_millis() as u64).max(1)
}

fn decode_reply<R: Serialize + DeserializeOwned>() -> Result<R, WaitError> {
    match <Wire as CanSerialize<Result<R, RemoteFailure>>>::decode() {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(failure)) => Err(WaitError::Failed(failure)),
        Err(err) => Err(WaitError::Undecodable(err.to_string())),
    }
}

/// Whether the process `id` on this node is running.
pub fn process_exists(id: u64) -> bool {
    // SAFETY: a plain query of the process table.
    unsafe { process::exists(id) != 0 }
}

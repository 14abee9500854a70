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

use std::cell::RefCell;
use std::time::{Duration, Instant};

use lunatic::serializer::{DecodeError, EncodeError};
use lunatic::Tag;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::host::{self, Received};
use crate::error::RemoteFailure;

/// Every swarm server process speaks the protocol of a Lunatic `AbstractProcess` with exactly one
/// handler, `Message<Envelope<M>>`, which Lunatic numbers 1: the number travels in the top byte
/// of a message's tag.
pub(crate) const ENVELOPE_HANDLER_ID: i64 = 1;
const ENVELOPE_HANDLER: i64 = ENVELOPE_HANDLER_ID << 56;
/// Lunatic's number for the shutdown "handler" of an `AbstractProcess`.
pub(crate) const SHUTDOWN_HANDLER_ID: i64 = 32;

/// A fire-and-forget envelope whose encoding is this short (a message without arguments is
/// four bytes of variant index, plus one for "no reply") travels inside its tag, with no data:
/// the sender saves the host call that writes the data and the receiver the one that reads it,
/// which is most of what such a message costs. Marked by this bit of the tag; the length is in
/// the bits from [`INLINE_LEN_SHIFT`], the bytes in the bits below. Tags made by `Tag::new()`
/// are per-process counters that never reach this bit (it is masked off anyway).
const INLINE: i64 = 1 << 55;
const INLINE_LEN_SHIFT: u32 = 48;
const INLINE_MAX: usize = 6;

/// The first wait slice; doubled after each empty slice up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(10);
/// The longest a caller waits before checking again that the server is alive.
pub const MAX_SLICE: Duration = Duration::from_millis(100);

thread_local! {
    /// Requests this process stopped waiting for (timed out), as `(tag, server, when)`: their
    /// replies may still come, and would stay in the mailbox for good; later requests take them
    /// out.
    static ABANDONED: RefCell<Vec<(i64, u64, Instant)>> = const { RefCell::new(Vec::new()) };
    /// When the abandoned requests were last looked for.
    static LAST_SWEEP: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// At most this many abandoned requests are remembered; past it the oldest is forgotten (its late
/// reply, if it ever comes, stays in the mailbox).
const MAX_ABANDONED: usize = 1024;
/// An abandoned request is forgotten after this long (its server is alive but never answered,
/// or a loop of this process took the reply as a message of its own).
const ABANDONED_FOR: Duration = Duration::from_secs(600);
/// Late replies are looked for at most this often (each look is two host calls).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

fn abandon(tag: i64, server: u64) {
    ABANDONED.with(|abandoned| {
        let mut abandoned = abandoned.borrow_mut();
        if abandoned.len() == MAX_ABANDONED {
            abandoned.remove(0);
        }
        abandoned.push((tag, server, Instant::now()));
    });
}

/// Takes the late replies of abandoned requests out of the mailbox (one probe for all of them),
/// and forgets requests whose server is gone or that are too old. Costs nothing while no request
/// was abandoned.
fn sweep_abandoned() {
    ABANDONED.with(|abandoned| {
        let mut abandoned = abandoned.borrow_mut();
        if abandoned.is_empty() {
            return;
        }
        let due = LAST_SWEEP.with(|last| {
            let due = last.get().map_or(true, |at| at.elapsed() >= SWEEP_EVERY);
            if due {
                last.set(Some(Instant::now()));
            }
            due
        });
        if !due {
            return;
        }
        let tags: Vec<i64> = abandoned.iter().map(|&(tag, _, _)| tag).collect();
        let arrived = take_all_queued(&tags);
        abandoned.retain(|&(tag, server, when)| {
            // A server that is gone will not reply any more (its reply was looked for above).
            !arrived.contains(&tag) && host::exists(server) && when.elapsed() < ABANDONED_FOR
        });
    });
}

/// The id of the node this process runs on.
pub fn this_node() -> u64 {
    host::this().node
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
    /// When the caller stops waiting (wall clock, ms since the Unix epoch), for requests that
    /// carry a deadline: an agent that gets to the request later drops it unrun and answers
    /// [`RemoteFailure::Expired`], so a call its caller gave up on is never applied behind its back.
    expires_at_ms: Option<u64>,
    /// The call's request id (see `request_id`), when its caller named it: an agent that
    /// applied a call with this id already answers that call's answer instead of running it.
    request: Option<crate::request_id::RequestDigest>,
    /// The caller's trace context (see `trace`): the handler's span continues its trace.
    trace: Option<crate::trace::TraceParent>,
    /// For a message of a JetStream stream: its stream sequence. The agent applies it only if it
    /// has not applied one at or past it (its mark is saved with its state), and saves before
    /// answering whatever its persistence strategy, so that the answer can be the message's ack.
    #[serde(default)]
    stream_seq: Option<u64>,
}

impl ReplyTo {
    /// The address `tag` in the process `to`, for an answer as JSON (see [`ReplyTo::answer`]):
    /// a reply that goes to another process than the caller's (the NATS front door's responder).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS front door's
    pub(crate) fn json_to(to: super::host::Pid, tag: Tag) -> ReplyTo {
        ReplyTo {
            node: to.node,
            process: to.id,
            tag,
            json: true,
            expires_at_ms: None,
            request: None,
            trace: None,
            stream_seq: None,
        }
    }

    /// The same address, for a call named by the request id `digest`.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS front door's
    pub(crate) fn with_request(mut self, digest: crate::request_id::RequestDigest) -> ReplyTo {
        self.request = Some(digest);
        self
    }

    /// The same address, for a call in the trace `trace`.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS front door's
    pub(crate) fn with_trace(mut self, trace: crate::trace::TraceParent) -> ReplyTo {
        self.trace = Some(trace);
        self
    }

    /// The same address, for the message of a stream at `seq` (see `stream_seq`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the stream consumers'
    pub(crate) fn with_stream_seq(mut self, seq: u64) -> ReplyTo {
        self.stream_seq = Some(seq);
        self
    }

    /// The stream sequence of the message, for a message of a stream.
    pub(crate) fn stream_seq(&self) -> Option<u64> {
        self.stream_seq
    }

    /// The caller's trace context, if it sent one.
    pub(crate) fn trace(&self) -> Option<crate::trace::TraceParent> {
        self.trace
    }

    /// The call's request id, if its caller named one.
    pub(crate) fn request(&self) -> Option<crate::request_id::RequestDigest> {
        self.request
    }

    /// The same address, for a request that expires `after` from now (see `expires_at_ms`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS front door's
    pub(crate) fn expiring_after(mut self, after: Duration) -> ReplyTo {
        self.expires_at_ms = Some(wall_ms().saturating_add(after.as_millis() as u64));
        self
    }

    /// Whether the request's caller has stopped waiting for it.
    pub(crate) fn expired(&self) -> bool {
        self.expires_at_ms.is_some_and(|at| wall_ms() >= at)
    }

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

    /// Whether the caller wants the answer as JSON (the NATS front door).
    pub(crate) fn wants_json(&self) -> bool {
        self.json
    }

    pub(crate) fn send_failure(self, failure: RemoteFailure) {
        self.send_result::<()>(Err(failure));
    }

    fn send_result<R: Serialize + DeserializeOwned>(self, result: Result<R, RemoteFailure>) {
        // An answer that does not encode (a `Serialize` impl that fails) becomes an `Unencodable`
        // failure for the caller: the caller always gets an answer, and the server goes on.
        if let Err(err) = host::send(self.process, self.tag.id(), &result) {
            let failure: Result<(), RemoteFailure> = Err(RemoteFailure::Unencodable(format!(
                "the answer does not encode: {err}"
            )));
            let _always_encodes = host::send(self.process, self.tag.id(), &failure);
        }
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
    /// The request did not encode; nothing was sent.
    Unsendable(String),
}

/// Sends `message` to the swarm process `server` (on this node) and waits for its answer.
///
/// One host call sends the request and waits for the first slice, as Lunatic's own request does;
/// only a slow or dead server costs more.
pub fn call<M, R>(server: u64, message: M, timeout: Option<Duration>) -> Result<R, WaitError>
where
    M: Serialize,
    R: Serialize + DeserializeOwned,
{
    let started = Instant::now();
    sweep_abandoned();
    let this = host::this();
    let tag = Tag::new();
    let envelope = Envelope {
        message,
        reply_to: Some(ReplyTo {
            node: this.node,
            process: this.id,
            tag,
            json: false,
            expires_at_ms: None,
            request: None,
            // A call made while a handler runs continues the handler's trace.
            trace: crate::trace::current(),
            stream_seq: None,
        }),
    };
    let first = slice_within(FIRST_SLICE, timeout, started).unwrap_or(Duration::ZERO);
    let received = host::send_receive(
        server,
        ENVELOPE_HANDLER | (tag.id() & !INLINE),
        &envelope,
        tag.id(),
        Some(first),
    )
    .map_err(|err| WaitError::Unsendable(err.to_string()))?;
    reply(wait::<Result<R, RemoteFailure>>(
        tag.id(),
        server,
        timeout,
        started,
        received,
    )?)
}

/// Sends `message` to the swarm process `server` (on this node) without waiting: a fire-and-forget
/// [`Envelope`]. If the server has ended, the runtime drops the message.
pub fn cast<M>(server: u64, message: M)
where
    M: Serialize + DeserializeOwned,
{
    if let Err(err) = send_envelope(server, message) {
        eprintln!("swarm: a message was not sent, it does not encode: {err}");
    }
}

/// Sends a fire-and-forget [`Envelope`] to `server`, inside its tag when it is short enough (see
/// [`INLINE`]). Servers read it with [`decode_envelope`].
pub(crate) fn send_envelope<M>(server: u64, message: M) -> Result<(), EncodeError>
where
    M: Serialize,
{
    let envelope = Envelope {
        message,
        reply_to: None,
    };
    if let Ok(size) = bincode::serialized_size(&envelope) {
        if size as usize <= INLINE_MAX {
            let mut bytes = [0u8; 8];
            bincode::serialize_into(&mut bytes[..], &envelope)?;
            let inline = ENVELOPE_HANDLER
                | INLINE
                | ((size as i64) << INLINE_LEN_SHIFT)
                | (i64::from_le_bytes(bytes) & ((1 << INLINE_LEN_SHIFT) - 1));
            host::send_tag(server, inline);
            return Ok(());
        }
    }
    host::send(server, envelope_tag(), &envelope)
}

/// A fresh tag for an envelope sent with data (the handler's number on top, never [`INLINE`]).
pub(crate) fn envelope_tag() -> i64 {
    ENVELOPE_HANDLER | (Tag::new().id() & !INLINE)
}

/// Reads the envelope just received with `tag` (see [`send_envelope`]).
pub(crate) fn decode_envelope<M>(tag: i64) -> Result<Envelope<M>, DecodeError>
where
    M: Serialize + DeserializeOwned,
{
    if tag & INLINE == 0 {
        return host::decode::<Envelope<M>>();
    }
    let len = ((tag >> INLINE_LEN_SHIFT) & 0x7) as usize;
    let bytes = (tag & ((1 << INLINE_LEN_SHIFT) - 1)).to_le_bytes();
    Ok(bincode::deserialize(&bytes[..len.min(INLINE_MAX)])?)
}

/// A reply address in this process with a fresh tag, for a reply that comes some other way than
/// through [`call`] (for example from a process this one spawns).
pub fn reply_slot() -> ReplyTo {
    let this = host::this();
    ReplyTo {
        node: this.node,
        process: this.id,
        tag: Tag::new(),
        json: false,
        expires_at_ms: None,
        request: None,
        trace: None,
        stream_seq: None,
    }
}

/// The wall clock in ms since the Unix epoch: deadlines that cross processes (every process of a
/// node reads the same host clock; monotonic `Instant`s do not travel).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Waits for the reply to `slot` from the process `server`.
pub fn wait_for<R: Serialize + DeserializeOwned>(
    slot: ReplyTo,
    server: u64,
    timeout: Option<Duration>,
) -> Result<R, WaitError> {
    reply(wait_tag::<Result<R, RemoteFailure>>(
        slot.tag.id(),
        server,
        timeout,
    )?)
}

/// Waits for a message tagged `tag` (a bare `T`, not a reply `Result`) sent by, or on behalf of,
/// the process `server`; as [`wait_for`] otherwise, except that a wait that times out leaves the
/// tag to the caller: values may keep coming on it (a stream, such as a NATS subscription's), so
/// it is not swept as an abandoned request's late reply would be.
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS client's
pub fn wait_value<T: Serialize + DeserializeOwned>(
    tag: i64,
    server: u64,
    timeout: Option<Duration>,
) -> Result<T, WaitError> {
    let (started, received) = first_slice(tag, timeout);
    wait_loop::<T>(tag, server, timeout, started, received)
}

/// Sends `message` with `tag` to the process `to` and waits for a bare value tagged `reply_tag`
/// sent by, or on behalf of, the process `watch`; as [`wait_value`] otherwise (a late value is
/// the caller's to deal with). One host call sends and waits for the first slice, as [`call`]
/// does.
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS client's
pub fn send_wait_value<M, T>(
    to: u64,
    tag: i64,
    message: &M,
    reply_tag: i64,
    watch: u64,
    timeout: Option<Duration>,
) -> Result<T, WaitError>
where
    M: Serialize + DeserializeOwned,
    T: Serialize + DeserializeOwned,
{
    let started = Instant::now();
    let first = slice_within(FIRST_SLICE, timeout, started).unwrap_or(Duration::ZERO);
    let received = host::send_receive(to, tag, message, reply_tag, Some(first))
        .map_err(|err| WaitError::Unsendable(err.to_string()))?;
    wait_loop::<T>(reply_tag, watch, timeout, started, received)
}

/// Asks the Lunatic `AbstractProcess` `server` to shut down (its `terminate` runs) and waits for
/// it to confirm, at most `timeout`. A server that ends without confirming has shut down too.
pub fn shutdown_abstract_process(server: u64, timeout: Duration) -> Result<(), WaitError> {
    let started = Instant::now();
    let this = host::this();
    let tag = Tag::new().id();
    let request = ShutdownRequest {
        node: this.node,
        process: this.id,
    };
    let first = slice_within(FIRST_SLICE, Some(timeout), started).unwrap_or(Duration::ZERO);
    let received = host::send_receive(
        server,
        (SHUTDOWN_HANDLER_ID << 56) | tag,
        &request,
        tag,
        Some(first),
    )
    .map_err(|err| WaitError::Unsendable(format!("the shutdown: {err}")))?;
    // Lunatic confirms with a bare `()` (not a `Result`).
    match wait::<()>(tag, server, Some(timeout), started, received) {
        Ok(()) | Err(WaitError::ServerGone) => {
            // It confirms just before its process ends: once this returns, `get_or_start` (or a
            // supervisor restarting its children) starts a new agent instead of finding, and
            // adopting, the one that is going away.
            wait_until_gone(server);
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// Waits (at most a second) until the process `id`, which is ending, is gone.
pub(crate) fn wait_until_gone(id: u64) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while process_exists(id) && Instant::now() < deadline {
        host::sleep(Duration::from_millis(1));
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
        let _unit_always_encodes = host::send(self.process, tag, &());
    }
}

/// [`wait`] for a message that was not sent in the same host call as the wait.
fn wait_tag<T: Serialize + DeserializeOwned>(
    tag: i64,
    server: u64,
    timeout: Option<Duration>,
) -> Result<T, WaitError> {
    let (started, received) = first_slice(tag, timeout);
    wait(tag, server, timeout, started, received)
}

/// The first wait for a message tagged `tag` that was not sent in the same host call: when it
/// started, and what it found.
fn first_slice(tag: i64, timeout: Option<Duration>) -> (Instant, Received) {
    let started = Instant::now();
    let first = slice_within(FIRST_SLICE, timeout, started).unwrap_or(Duration::ZERO);
    (started, host::receive(&[tag], Some(first)))
}

/// The one wait loop of swarm: waits until a data message tagged `tag` arrives (and decodes it
/// as a `T`), the process `server` no longer exists, or `timeout` (counted from `started`) has
/// passed. `first` is what the first wait (made by the caller, often in the same host call as
/// its send) returned.
///
/// It waits in slices (10 ms doubling to [`MAX_SLICE`]) and checks between slices that `server`
/// still exists: that is how a caller notices a crashed or killed server instead of hanging.
/// A request that timed out is remembered, and its late reply taken out of the mailbox by a
/// later [`call`].
pub fn wait<T: Serialize + DeserializeOwned>(
    tag: i64,
    server: u64,
    timeout: Option<Duration>,
    started: Instant,
    first: Received,
) -> Result<T, WaitError> {
    let waited = wait_loop::<T>(tag, server, timeout, started, first);
    if let Err(WaitError::TimedOut(_)) = waited {
        abandon(tag, server);
    }
    waited
}

/// [`wait`] without remembering a wait that timed out.
fn wait_loop<T: Serialize + DeserializeOwned>(
    tag: i64,
    server: u64,
    timeout: Option<Duration>,
    started: Instant,
    first: Received,
) -> Result<T, WaitError> {
    let decode = || host::decode::<T>().map_err(|err| WaitError::Undecodable(err.to_string()));
    if first == Received::Data {
        return decode();
    }
    let tags = [tag];
    let mut slice = FIRST_SLICE;
    loop {
        if !host::exists(server) {
            // It may have answered just before it ended: look once more without waiting.
            return match take_queued::<T>(&tags) {
                Some(value) => value.map_err(|err| WaitError::Undecodable(err.to_string())),
                None => Err(WaitError::ServerGone),
            };
        }
        slice = (slice * 2).min(MAX_SLICE);
        let Some(wait) = slice_within(slice, timeout, started) else {
            return Err(WaitError::TimedOut(timeout.unwrap_or_default()));
        };
        // Anything but the reply (a timeout of the slice) means: check the server again.
        if host::receive(&tags, Some(wait)) == Received::Data {
            return decode();
        }
    }
}

/// The tag of the probe [`take_queued`] sends its own process (its top byte is no handler number).
const PROBE: i64 = (0x7D << 56) | 0x5052_4F42;

/// Takes the first message tagged one of `tags` that is already in this process' mailbox, if
/// there is one, and decodes it as a `T`; `None` when none is there. Never waits.
///
/// Not a receive with a zero timeout: the host rounds a timer up to its next millisecond tick, so
/// "only look" would cost up to a millisecond whenever nothing is there. Instead the process
/// sends itself a probe and receives the first message tagged with one of `tags` or the probe's:
/// the probe is behind everything already queued, so getting it back means nothing else was
/// there.
pub fn take_queued<T: Serialize + DeserializeOwned>(
    tags: &[i64],
) -> Option<Result<T, DecodeError>> {
    host::send_tag(host::this().id, PROBE);
    let mut with_probe = Vec::with_capacity(tags.len() + 1);
    with_probe.extend_from_slice(tags);
    with_probe.push(PROBE);
    loop {
        if host::receive(&with_probe, None) != Received::Data {
            // A link death carrying one of the tags: not a message, look on.
            continue;
        }
        if host::tag() == PROBE {
            return None;
        }
        let value = host::decode::<T>();
        // The probe is still queued (behind what was found): take it out, which does not wait.
        let _probe = host::receive(&[PROBE], None);
        return Some(value);
    }
}

/// Takes (and drops) every message tagged one of `tags` already in the mailbox, with one probe
/// (see [`take_queued`]); returns the tags of what it took.
fn take_all_queued(tags: &[i64]) -> Vec<i64> {
    host::send_tag(host::this().id, PROBE);
    let mut with_probe = Vec::with_capacity(tags.len() + 1);
    with_probe.extend_from_slice(tags);
    with_probe.push(PROBE);
    let mut taken = Vec::new();
    loop {
        if host::receive(&with_probe, None) != Received::Data {
            continue;
        }
        match host::tag() {
            PROBE => return taken,
            tag => taken.push(tag),
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

/// A server's reply: its answer, or its failure as a [`WaitError`].
fn reply<R>(reply: Result<R, RemoteFailure>) -> Result<R, WaitError> {
    reply.map_err(WaitError::Failed)
}

/// Whether the process `id` on this node is running.
pub fn process_exists(id: u64) -> bool {
    host::exists(id)
}

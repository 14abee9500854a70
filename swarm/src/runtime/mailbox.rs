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

use std::time::{Duration, Instant};

use lunatic::host::api::{message, process};
use lunatic::serializer::{Bincode, CanSerialize};
use lunatic::{Process, Tag};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::RemoteFailure;

/// Lunatic's message kinds and timeout marker, as returned by `message::receive`.
const DATA_MESSAGE: u32 = 0;
const TIMED_OUT: u32 = 9027;

/// The first wait slice; doubled after each empty slice up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(10);
/// The longest a caller waits before checking again that the server is alive.
pub const MAX_SLICE: Duration = Duration::from_millis(100);

/// Where a server sends the reply to one request: the caller's process and a tag unique to this
/// request inside it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReplyTo {
    node: u64,
    process: u64,
    tag: Tag,
}

impl ReplyTo {
    /// A reply address in the current process with a fresh tag.
    fn fresh() -> Self {
        // SAFETY: `this()` only reads the current process' ids.
        let this = unsafe { Process::<(), Bincode>::this() };
        ReplyTo {
            node: this.node_id(),
            process: this.id(),
            tag: Tag::new(),
        }
    }

    /// Sends a handler's answer.
    pub fn send<R: Serialize + DeserializeOwned>(self, answer: R) {
        self.send_result::<R>(Ok(answer));
    }

    pub(crate) fn send_failure(self, failure: RemoteFailure) {
        self.send_result::<()>(Err(failure));
    }

    fn send_result<R: Serialize + DeserializeOwned>(self, result: Result<R, RemoteFailure>) {
        // SAFETY: the address was made by `ReplyTo::fresh` in a live (or dead, then the message is
        // dropped by the runtime) process of this node.
        let to =
            unsafe { Process::<Result<R, RemoteFailure>, Bincode>::new(self.node, self.process) };
        to.tag_send(self.tag, result);
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

/// Prepares a request: the envelope to send and the tag to wait on.
pub fn request_envelope<M>(message: M) -> (Envelope<M>, ReplyTo) {
    let reply_to = ReplyTo::fresh();
    (
        Envelope {
            message,
            reply_to: Some(reply_to),
        },
        reply_to,
    )
}

/// Waits for the reply to a request sent to the process `server` (on this node).
pub fn wait_reply<R: Serialize + DeserializeOwned>(
    reply_to: ReplyTo,
    server: u64,
    timeout: Option<Duration>,
) -> Result<R, WaitError> {
    let started = Instant::now();
    let tags = [reply_to.tag.id()];
    let mut slice = FIRST_SLICE;
    loop {
        let wait = match timeout {
            Some(limit) => {
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(WaitError::TimedOut(limit));
                }
                left.min(slice)
            }
            None => slice,
        };
        // SAFETY: `tags` outlives the call; the runtime copies it.
        let kind =
            unsafe { message::receive(tags.as_ptr(), tags.len(), wait.as_millis().max(1) as u64) };
        match kind {
            DATA_MESSAGE => return decode_reply(),
            TIMED_OUT => {
                // SAFETY: a plain query of the process table.
                if unsafe { process::exists(server) } == 0 {
                    // It may have answered just before it ended: look once more without waiting.
                    // SAFETY: as above.
                    let last = unsafe { message::receive(tags.as_ptr(), tags.len(), 0) };
                    return if last == DATA_MESSAGE {
                        decode_reply()
                    } else {
                        Err(WaitError::ServerGone)
                    };
                }
                slice = (slice * 2).min(MAX_SLICE);
            }
            // Link and monitor signals carry other tags and never match ours.
            _ => continue,
        }
    }
}

fn decode_reply<R: Serialize + DeserializeOwned>() -> Result<R, WaitError> {
    match <Bincode as CanSerialize<Result<R, RemoteFailure>>>::decode() {
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

//! How callers wait for the answers of the connection and reader processes.

use std::time::Duration;

use lunatic::Tag;
use serde::{de::DeserializeOwned, Serialize};

use super::messages::Addr;
use crate::runtime::host;
use crate::runtime::mailbox::{take_queued, wait_value, WaitError};

impl Addr {
    /// The current process with a fresh tag.
    pub(super) fn fresh() -> Addr {
        let this = host::this();
        Addr {
            node: this.node,
            process: this.id,
            tag: Tag::new().id(),
        }
    }

    /// Sends `value` there (a process that has ended drops it); the receiver waits on this
    /// tag for exactly this type.
    pub(super) fn send<T: Serialize + DeserializeOwned>(&self, value: &T) {
        if let Err(err) = host::send(self.process, self.tag, value) {
            eprintln!("swarm: nats: a message does not encode: {err}");
        }
    }
}

/// Why a wait ended without the answer.
pub(super) enum WaitFailed {
    TimedOut,
    Gone,
}

impl From<WaitError> for WaitFailed {
    fn from(err: WaitError) -> Self {
        match err {
            WaitError::TimedOut(_) => WaitFailed::TimedOut,
            // A value that does not decode cannot come (the tag is fresh and typed): treat
            // it as a connection that went away rather than wait for ever.
            _ => WaitFailed::Gone,
        }
    }
}

/// Waits for a message tagged `tag` in the current process, noticing if process `watch`
/// (the connection process) ends: `runtime::mailbox`'s wait loop, for bare values.
pub(super) fn wait_tagged<T: Serialize + DeserializeOwned>(
    tag: i64,
    watch: u64,
    timeout: Option<Duration>,
) -> Result<T, WaitFailed> {
    wait_value::<T>(tag, watch, timeout).map_err(WaitFailed::from)
}

/// Takes a message tagged `tag` that is already in the mailbox, without waiting (a look into
/// an empty mailbox costs about a millisecond: the runtime's timer has that resolution).
pub(super) fn receive_now<T: Serialize + DeserializeOwned>(tag: i64) -> Option<T> {
    // A probe, not a zero timeout: the host rounds a timer up to its next millisecond tick.
    take_queued::<T>(&[tag]).and_then(Result::ok)
}

/// Drops every message tagged `tag` already in the mailbox (late replies after a cancel).
pub(super) fn drain_tag(tag: i64) {
    for _ in 0..10_000 {
        if take_queued::<()>(&[tag]).is_none() {
            break;
        }
    }
}

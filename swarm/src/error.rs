//! The errors a caller of an agent sees.
//!
//! Two kinds of failure are kept apart on purpose: a handler's own `Err` is data and reaches the
//! caller inside `Ok(..)`; a [`CallError`] means the call itself did not produce the handler's
//! answer (the agent was not running, did not answer in time, crashed, ...).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::key::KeyError;
use crate::store::StoreError;

/// A call to an agent that did not produce the handler's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct CallError {
    /// The agent and handler that were called.
    pub target: CallTarget,
    /// What went wrong.
    pub reason: CallFailure,
}

/// Names the agent instance and the handler of a failed call, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    /// The agent kind, such as `chat-room`.
    pub kind: &'static str,
    /// The key of the instance (empty for agents without a `#[key]`).
    pub key: String,
    /// The handler that was called.
    pub handler: &'static str,
}

impl fmt::Display for CallTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}.{}", self.kind, self.handler)
        } else {
            write!(f, "{}/{}.{}", self.kind, self.key, self.handler)
        }
    }
}

/// Why a call did not produce the handler's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// No live agent was at that address when the call was made: it stopped, crashed or was
    /// never started. Nothing was delivered.
    #[error("the agent is not running")]
    NotRunning,
    /// The agent did not answer within the timeout. The request may still run later.
    #[error("no reply within {0:?}")]
    TimedOut(Duration),
    /// The handler panicked while serving this very call; the agent's process ended and its
    /// state is what it last saved.
    #[error("the handler panicked: {0}")]
    Panicked(String),
    /// The agent's process ended before it answered (it crashed on an earlier message, was
    /// killed, or was shut down).
    #[error("the agent stopped before it answered")]
    Stopped,
    /// The handler ran, but its changed `#[persist]` state could not be saved. The change was not
    /// acknowledged: the agent's process ends and restarts from its last saved state.
    #[error("the handler's state change could not be confirmed as saved, so it was not acknowledged: {0}")]
    PersistFailed(String),
    /// The handler ran but its answer could not be encoded for the caller (JSON for NATS
    /// callers: for example a map with non-string keys).
    #[error("the handler's answer could not be encoded: {0}")]
    Unencodable(String),
    /// This copy of the agent was stale: another node of the cluster took the agent over, so its
    /// write was refused and nothing was applied. The agent has stopped here; call again (through
    /// the front door or a fresh handle) to reach the new owner.
    #[error("the agent moved to another node; nothing was applied: {0}")]
    Moved(String),
    /// The request waited in the agent's mailbox past its deadline (its caller had stopped
    /// waiting) and was dropped without running: nothing was applied.
    #[error("the request expired in the agent's mailbox before it ran; nothing was applied")]
    Expired,
    /// The request itself could not be encoded for the agent's mailbox (an argument whose
    /// `Serialize` fails, or that bincode cannot write); nothing was sent.
    #[error("the request could not be encoded, nothing was sent: {0}")]
    Unsendable(String),
    /// The handler ran past its kind's time budget (`#[agent(message_budget = "..")]`): the node
    /// stopped the agent (it restarts from its last saved state, on its next call or by its
    /// supervisor). Nothing of this call was saved.
    #[error("the handler ran past its time budget and was stopped; nothing was saved: {0}")]
    OverBudget(String),
    /// The agent grew past its kind's memory cap (`#[agent(max_memory = "..")]`) while it served
    /// this call: the call's change was not saved, and the agent stopped (it restarts from its
    /// last saved state, on its next call or by its supervisor).
    #[error("the agent grew past its memory cap and was stopped; nothing was saved: {0}")]
    OverMemory(String),
    /// The agent has as many messages waiting as its kind's mailbox holds
    /// (`#[agent(mailbox = N)]`): this request was refused without running. Call again later.
    #[error("the agent's mailbox is full; nothing was applied: {0}")]
    Overloaded(String),
    /// Cluster only: nobody answered at the agent's node (it ended), and the cluster named no
    /// other owner in time. Nothing was delivered; call again once the agent has moved.
    #[error("no node answered for the agent; nothing was delivered: {0}")]
    NoResponders(String),
    /// Cluster only: the agent's node left the cluster (its lease ended), or the connection to
    /// it was lost, while the call waited. Whether the call was applied is not known.
    #[error(
        "the agent's node was lost while the call waited; it may or may not have been applied: {0}"
    )]
    NodeLost(String),
    /// Cluster only: the cluster cannot place or reach the agent now (a node draining or
    /// rejoining, every node full, the owner not answering until its lease runs out, NATS
    /// unreachable). Nothing was applied; call again later.
    #[error("the cluster cannot serve the agent now; nothing was applied: {0}")]
    Unavailable(String),
    /// The key is not valid for the agent's kind (empty, too long, a character other than
    /// `A-Z a-z 0-9 _ -`, or not parsable as the kind's key type); nothing was sent to an agent.
    #[error("invalid key; nothing was applied: {0}")]
    InvalidKey(String),
    /// The node serving the kind has no handler of that name (a caller built against another
    /// version of the agent); nothing was applied.
    #[error("no such handler; nothing was applied: {0}")]
    UnknownHandler(String),
    /// The node could not take the arguments (not a JSON object, a missing or mistyped argument,
    /// or one the handler does not have: a caller built against another version of the agent);
    /// nothing was applied.
    #[error("the arguments do not fit the handler; nothing was applied: {0}")]
    BadArguments(String),
    /// The call's request id names a call this agent applied before it last restarted: it was
    /// not applied again, but its answer was not kept across the restart (only the ids are).
    #[error("a call with this request id was applied already (its answer was not kept): {0}")]
    AlreadyApplied(String),
    /// Cluster only: the agent's node refused the request itself (`kind` is the front door's
    /// error kind, such as `bad_arguments` or `start_failed`: nodes running different versions of
    /// the agent, or an agent whose state does not load). Nothing was applied.
    #[error("the agent's node refused the request ({kind}); nothing was applied: {message}")]
    Refused {
        /// The front door's error kind.
        kind: String,
        /// Its message.
        message: String,
    },
}

impl CallFailure {
    /// Whether the call took effect: `Some(true)` if the handler ran and its state change (if
    /// any) is saved, `Some(false)` if it certainly did not (so it is safe to call again), `None`
    /// when it cannot be known.
    pub fn applied(&self) -> Option<bool> {
        match self {
            CallFailure::NotRunning
            | CallFailure::Panicked(_)
            | CallFailure::Unsendable(_)
            | CallFailure::Moved(_)
            | CallFailure::Expired
            | CallFailure::OverBudget(_)
            | CallFailure::OverMemory(_)
            | CallFailure::Overloaded(_)
            | CallFailure::NoResponders(_)
            | CallFailure::Unavailable(_)
            | CallFailure::InvalidKey(_)
            | CallFailure::UnknownHandler(_)
            | CallFailure::BadArguments(_)
            | CallFailure::Refused { .. } => Some(false),
            CallFailure::Unencodable(_) | CallFailure::AlreadyApplied(_) => Some(true),
            // A store can take a write and still fail (a directory sync after the rename, a
            // commit that outlives the store's timeout): not known.
            CallFailure::TimedOut(_)
            | CallFailure::Stopped
            | CallFailure::PersistFailed(_)
            | CallFailure::NodeLost(_) => None,
        }
    }

    /// The failure's name on the wire (the `reason` of a front-door `call_failed` error), from
    /// which a caller on another node, or a native client, rebuilds the same failure.
    pub fn wire_name(&self) -> &'static str {
        match self {
            CallFailure::NotRunning => "not_running",
            CallFailure::TimedOut(_) => "timed_out",
            CallFailure::Panicked(_) => "panicked",
            CallFailure::Stopped => "stopped",
            CallFailure::PersistFailed(_) => "persist_failed",
            CallFailure::Unencodable(_) => "unencodable",
            CallFailure::Moved(_) => "moved",
            CallFailure::Expired => "expired",
            CallFailure::Unsendable(_) => "unsendable",
            CallFailure::OverBudget(_) => "over_budget",
            CallFailure::OverMemory(_) => "over_memory",
            CallFailure::Overloaded(_) => "overloaded",
            CallFailure::NoResponders(_) => "no_responders",
            CallFailure::NodeLost(_) => "node_lost",
            CallFailure::Unavailable(_) => "unavailable",
            CallFailure::InvalidKey(_) => "invalid_key",
            CallFailure::UnknownHandler(_) => "unknown_handler",
            CallFailure::BadArguments(_) => "bad_arguments",
            CallFailure::AlreadyApplied(_) => "already_applied",
            CallFailure::Refused { .. } => "refused",
        }
    }

    /// The text a failure carries (a panic message, a store's error), if it carries one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CallFailure::Panicked(detail)
            | CallFailure::PersistFailed(detail)
            | CallFailure::Unencodable(detail)
            | CallFailure::Moved(detail)
            | CallFailure::Unsendable(detail)
            | CallFailure::OverBudget(detail)
            | CallFailure::OverMemory(detail)
            | CallFailure::Overloaded(detail)
            | CallFailure::NoResponders(detail)
            | CallFailure::NodeLost(detail)
            | CallFailure::Unavailable(detail)
            | CallFailure::InvalidKey(detail)
            | CallFailure::UnknownHandler(detail)
            | CallFailure::BadArguments(detail)
            | CallFailure::AlreadyApplied(detail) => Some(detail),
            CallFailure::Refused { message, .. } => Some(message),
            CallFailure::NotRunning
            | CallFailure::TimedOut(_)
            | CallFailure::Stopped
            | CallFailure::Expired => None,
        }
    }

    /// The failure a node reported as `reason` with `detail` (see [`CallFailure::detail`]);
    /// `timeout` is the caller's own.
    pub(crate) fn from_wire(reason: &str, detail: String, timeout: Duration) -> CallFailure {
        let message = detail;
        match reason {
            "not_running" => CallFailure::NotRunning,
            "timed_out" => CallFailure::TimedOut(timeout),
            "panicked" => CallFailure::Panicked(message),
            "stopped" => CallFailure::Stopped,
            "persist_failed" => CallFailure::PersistFailed(message),
            "unencodable" => CallFailure::Unencodable(message),
            "moved" => CallFailure::Moved(message),
            "expired" => CallFailure::Expired,
            "unsendable" => CallFailure::Unsendable(message),
            "over_budget" => CallFailure::OverBudget(message),
            "over_memory" => CallFailure::OverMemory(message),
            "overloaded" => CallFailure::Overloaded(message),
            "no_responders" => CallFailure::NoResponders(message),
            "node_lost" => CallFailure::NodeLost(message),
            "unavailable" => CallFailure::Unavailable(message),
            "invalid_key" => CallFailure::InvalidKey(message),
            "unknown_handler" => CallFailure::UnknownHandler(message),
            "bad_arguments" => CallFailure::BadArguments(message),
            "already_applied" => CallFailure::AlreadyApplied(message),
            other => CallFailure::Refused {
                kind: other.to_owned(),
                message,
            },
        }
    }
}

/// What an agent sends back instead of a handler's answer when the call failed inside it.
/// Travels in the reply slot as the `Err` of `Result<R, Failure>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[doc(hidden)]
pub enum RemoteFailure {
    Panicked(String),
    PersistFailed(String),
    Unencodable(String),
    Moved(String),
    Expired,
    OverBudget(String),
    OverMemory(String),
    Overloaded(String),
    AlreadyApplied(String),
}

impl From<RemoteFailure> for CallFailure {
    fn from(failure: RemoteFailure) -> Self {
        match failure {
            RemoteFailure::Panicked(message) => CallFailure::Panicked(message),
            RemoteFailure::PersistFailed(message) => CallFailure::PersistFailed(message),
            RemoteFailure::Unencodable(message) => CallFailure::Unencodable(message),
            RemoteFailure::Moved(message) => CallFailure::Moved(message),
            RemoteFailure::Expired => CallFailure::Expired,
            RemoteFailure::OverBudget(message) => CallFailure::OverBudget(message),
            RemoteFailure::OverMemory(message) => CallFailure::OverMemory(message),
            RemoteFailure::Overloaded(message) => CallFailure::Overloaded(message),
            RemoteFailure::AlreadyApplied(message) => CallFailure::AlreadyApplied(message),
        }
    }
}

/// An agent that could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StartError {
    /// The key is not a valid key.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// The agent's store could not be opened or read.
    #[error("agent `{kind}` key {key:?}: {source}")]
    Store {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// The store's error.
        source: StoreError,
    },
    /// The agent's stored record exists but cannot be decoded. The agent refuses to start rather
    /// than start empty and overwrite it; the record is left untouched.
    #[error(
        "agent `{kind}` key {key:?}: its stored record {storage_key:?} cannot be decoded ({reason}); \
         the agent refuses to start and the record was left as it is"
    )]
    CorruptRecord {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// Where the record is in the store.
        storage_key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The agent's stored record was written by a newer version of the agent
    /// (`#[agent(state_version = ..)]` higher than this code's). The agent refuses to start
    /// rather than drop the fields it does not know; the record is left untouched.
    #[error(
        "agent `{kind}` key {key:?}: its stored record {storage_key:?} has state version {found}, \
         newer than this code's state_version {supported}; the agent refuses to start and the \
         record was left as it is (run the newer code, or upgrade this one)"
    )]
    NewerRecord {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// Where the record is in the store.
        storage_key: String,
        /// The state version in the record.
        found: u32,
        /// The agent's `state_version` in this code.
        supported: u32,
    },
    /// The agent's stored record is of an older state version and could not be upgraded: a
    /// `#[migrate]` step failed, or what it made does not fit the next version. The agent
    /// refuses to start; the record is left as it was, unless only saving the upgrade failed.
    #[error(
        "agent `{kind}` key {key:?}: its stored record {storage_key:?} could not be upgraded \
         from state version {from} towards {to}: {reason}; the agent refuses to start"
    )]
    UpgradeFailed {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// Where the record is in the store.
        storage_key: String,
        /// The version whose step failed.
        from: u32,
        /// The agent's `state_version`.
        to: u32,
        /// Why.
        reason: String,
    },
    /// The agent's `#[on_start]` hook returned an error.
    #[error("agent `{kind}` key {key:?}: the on_start hook failed: {reason}")]
    Hook {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// The hook's error, as text.
        reason: String,
    },
    /// The agent's start (loading state or its `#[on_start]` hook) panicked.
    #[error("agent `{kind}` key {key:?}: it panicked while starting")]
    Panicked {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
    },
    /// The node could not spawn the agent's process (for example it has no memory left for one
    /// more). Nothing was started; the node and its other agents go on.
    #[error("agent `{kind}` key {key:?}: the node could not spawn its process: {reason}")]
    Spawn {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// The runtime's reason.
        reason: String,
    },
    /// The node refused the start at once because it is at a limit it was given (see
    /// `swarm::NodeLimits`); its live agents go on being served. Try again later, or elsewhere.
    #[error("agent `{kind}` key {key:?}: the node is overloaded: {limit}")]
    Overloaded {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// Which limit, and its value.
        limit: String,
    },
    /// The process that starts agents of this kind did not answer.
    #[error("agent `{kind}` key {key:?}: the registry did not start it: {reason}")]
    Registry {
        /// The agent kind.
        kind: String,
        /// The key of the instance.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every failure a node reports comes back as itself on the calling node.
    #[test]
    fn failures_survive_the_wire() {
        let timeout = Duration::from_secs(3);
        let text = || "why".to_owned();
        let all = [
            CallFailure::NotRunning,
            CallFailure::TimedOut(timeout),
            CallFailure::Panicked(text()),
            CallFailure::Stopped,
            CallFailure::PersistFailed(text()),
            CallFailure::Unencodable(text()),
            CallFailure::Moved(text()),
            CallFailure::Expired,
            CallFailure::Unsendable(text()),
            CallFailure::OverBudget(text()),
            CallFailure::OverMemory(text()),
            CallFailure::Overloaded(text()),
            CallFailure::NoResponders(text()),
            CallFailure::NodeLost(text()),
            CallFailure::Unavailable(text()),
            CallFailure::InvalidKey(text()),
            CallFailure::UnknownHandler(text()),
            CallFailure::BadArguments(text()),
            CallFailure::AlreadyApplied(text()),
            CallFailure::Refused {
                kind: "start_failed".into(),
                message: text(),
            },
        ];
        for failure in all {
            let detail = failure.detail().unwrap_or_default().to_owned();
            let back = match CallFailure::from_wire(failure.wire_name(), detail, timeout) {
                // A refusal names the front door's own kind, which it keeps.
                CallFailure::Refused { message, .. } if failure.wire_name() == "refused" => {
                    CallFailure::Refused {
                        kind: "start_failed".into(),
                        message,
                    }
                }
                back => back,
            };
            assert_eq!(back, failure);
        }
        assert_eq!(
            CallFailure::from_wire("start_failed", text(), timeout),
            CallFailure::Refused {
                kind: "start_failed".into(),
                message: text()
            }
        );
    }

    #[test]
    fn applied_is_known_only_where_it_can_be() {
        assert_eq!(CallFailure::Moved(String::new()).applied(), Some(false));
        assert_eq!(
            CallFailure::NoResponders(String::new()).applied(),
            Some(false)
        );
        assert_eq!(CallFailure::NodeLost(String::new()).applied(), None);
        assert_eq!(CallFailure::TimedOut(Duration::ZERO).applied(), None);
        assert_eq!(
            CallFailure::Unencodable(String::new()).applied(),
            Some(true)
        );
    }
}

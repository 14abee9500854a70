//! Supervision trees with Erlang/OTP semantics.
//!
//! A supervisor is a Lunatic process that starts its children in order, links to and monitors
//! each, and when one exits applies the child's restart policy and the supervisor's strategy:
//!
//! - restart policy per child: `Permanent` (always restarted), `Transient` (restarted only after
//!   an abnormal exit), `Temporary` (never restarted);
//! - strategy: `OneForOne` (restart the child alone), `OneForAll` (stop the others in reverse
//!   start order, then start them all again in order), `RestForOne` (stop the children started
//!   after it, in reverse order, then restart it and them in order);
//! - restart intensity: more than `max_restarts` restarts within `within` makes the supervisor give
//!   up: it stops every child in reverse start order and exits abnormally, so that its own
//!   supervisor sees the failure and applies its strategy (escalation);
//! - start: children start in order; one that fails to start fails the supervisor's start with its
//!   error, after the ones already started are stopped again;
//! - shutdown: in reverse start order, each agent running its `#[on_stop]` hook and saving.
//!
//! Lunatic 0.14's own `Supervisor` has the three strategies for a fixed tuple of children but no
//! intensity, restart policies or dynamic children, so this is swarm's own process. The
//! `supervisor!` macro builds a [`SupervisorSpec`] from a declaration; it can also be built by hand.

mod child;
mod directory;
mod handle;
mod process;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use child::{ChildSpec, Poolable, Supervisable, SupervisableKeyed};
pub use directory::{trees, ChildInfo, ChildKindInfo, SupervisorInfo, SupervisorState, ENDED_KEPT};
pub use handle::{PoolRef, SupervisorRef};

/// Which children a supervisor restarts when one exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (reverse order), then all start again (in order).
    OneForAll,
    /// The child and every child started after it.
    RestForOne,
}

/// When a child that exited is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (a crash or a kill), not after an orderly stop.
    Transient,
    /// Never; the child is removed when it exits.
    Temporary,
}

/// A whole supervisor: its name (for logs and errors), strategy, intensity and children.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorSpec {
    /// Shown in log lines and errors.
    pub name: String,
    /// Which children restart together.
    pub strategy: Strategy,
    /// At most this many restarts ...
    pub max_restarts: u32,
    /// ... within this period, or the supervisor gives up.
    pub within: Duration,
    /// In start order.
    pub children: Vec<ChildSpec>,
}

/// What a supervisor reports about one child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStats {
    /// The child's name in the supervisor (a pool member is `name#index`).
    pub name: String,
    /// The process it runs as now, if it runs.
    pub process: Option<u64>,
    /// Times it was started, the first start included.
    pub starts: u32,
    /// Times it was restarted after an exit.
    pub restarts: u32,
    /// Times it exited abnormally (crash, kill).
    pub crashes: u32,
}

/// Why a supervisor could not be started or asked something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SupervisorError {
    /// A child failed to start; the supervisor did not start.
    #[error("supervisor `{supervisor}`: child `{child}` failed to start: {reason}")]
    ChildFailed {
        /// The supervisor.
        supervisor: String,
        /// The child that failed.
        child: String,
        /// Its error.
        reason: String,
    },
    /// The supervisor is not running (it gave up, or was stopped).
    #[error("supervisor `{0}` is not running")]
    NotRunning(String),
    /// No child of that name.
    #[error("supervisor `{supervisor}` has no running child `{child}`")]
    NoSuchChild {
        /// The supervisor.
        supervisor: String,
        /// The name asked for.
        child: String,
    },
    /// The supervisor did not answer.
    #[error("supervisor `{supervisor}`: {reason}")]
    Unavailable {
        /// The supervisor.
        supervisor: String,
        /// What went wrong.
        reason: String,
    },
}

/// Starts a supervisor from its spec, not linked to the caller; returns once every child started.
pub fn start(spec: SupervisorSpec) -> Result<SupervisorRef, SupervisorError> {
    process::start(spec, false, None)
}

/// Starts a supervisor linked to the caller (the caller dies if it gives up, unless the caller
/// handles link deaths): the usual way for a supervisor to start a nested one.
pub fn start_link(spec: SupervisorSpec) -> Result<SupervisorRef, SupervisorError> {
    process::start(spec, true, None)
}

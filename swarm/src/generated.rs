//! What the functions `#[agent]` generates on a struct call: `get_or_start` and `lookup` for an
//! agent with a `#[key]`; `start` and its use as a supervisor's child for one without. Each goes
//! through one function with one bound, [`keyed`] or [`unkeyed`], which hands back plain function
//! pointers.
//!
//! Why: a struct whose `#[agent]` impl block is missing (forgotten, or `#[agent]` left off it)
//! is not an [`Agent`]. Called directly, every launcher method would be its own error about the
//! same missing impl block; through one bounded function, the unmet bound is the same at every
//! call (same place, same words, same bound), and rustc reports it once.

use crate::error::StartError;
use crate::runtime::agent::{Agent, AgentBehavior, AgentState};
use crate::runtime::handle::Launcher;
use crate::supervisor::{ChildSpec, SupervisorError, SupervisorRef};

/// The functions of an agent with a `#[key]`, for its key type `K` and handle `H`.
pub struct Keyed<K, H> {
    /// `Agent::get_or_start`.
    pub get_or_start: fn(K) -> Result<H, StartError>,
    /// `Agent::lookup`.
    pub lookup: fn(K) -> Option<H>,
}

/// The functions of agent `A`, which has a `#[key]`.
pub fn keyed<A: Agent>() -> Keyed<<A as AgentState>::Key, <A as AgentBehavior>::Handle> {
    Keyed {
        get_or_start: |key| Launcher::<A>::default().get_or_start(key),
        lookup: |key| Launcher::<A>::default().lookup(key),
    }
}

/// The functions of an agent without a `#[key]`, for its handle `H`.
pub struct Unkeyed<H> {
    /// `Agent::start`.
    pub start: fn() -> Result<H, StartError>,
    /// `Supervisable::child_spec`.
    pub child_spec: fn(&str) -> ChildSpec,
    /// `Supervisable::child_handle`.
    pub child_handle: fn(&SupervisorRef, &str) -> Result<H, SupervisorError>,
}

/// The functions of agent `A`, which has no `#[key]`.
pub fn unkeyed<A: Agent + AgentState<Key = ()>>() -> Unkeyed<<A as AgentBehavior>::Handle> {
    Unkeyed {
        start: || Launcher::<A>::default().start(),
        child_spec: |name| ChildSpec::unkeyed_agent::<A>(name),
        child_handle: |parent, name| parent.agent::<A>(name),
    }
}

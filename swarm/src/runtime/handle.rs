//! Handles: how callers reach an agent, and how agents are found and started.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use lunatic::ap::ProcessRef;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::agent::{Agent, AgentArg, AgentState};
use super::host::Pid;
use super::mailbox::{
    call, call_json, envelope_tag, process_exists, send_envelope, shutdown_abstract_process,
    Envelope, ReplyTo, WaitError,
};
use super::{node, registry};
use crate::error::{CallError, CallFailure, CallTarget, RemoteFailure, StartError};
use crate::key::key_text;
use crate::store::StoreConfig;

/// How long a request waits for its answer unless told otherwise (as Erlang's `gen_server:call`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An untyped-by-handler reference to one running agent; the generated `<Agent>Ref` wraps it and
/// adds one method per handler.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct AgentRef<A: Agent> {
    process: ProcessRef<A>,
    key: String,
    timeout: Option<Duration>,
}

impl<A: Agent> Clone for AgentRef<A> {
    fn clone(&self) -> Self {
        AgentRef {
            process: self.process,
            key: self.key.clone(),
            timeout: self.timeout,
        }
    }
}

impl<A: Agent> PartialEq for AgentRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.process == other.process
    }
}

impl<A: Agent> fmt::Debug for AgentRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRef")
            .field("kind", &A::KIND)
            .field("key", &self.key)
            .field("process", &self.process.id())
            .finish()
    }
}

impl<A: Agent> AgentRef<A> {
    pub(crate) fn new(process: ProcessRef<A>, key: String) -> Self {
        AgentRef {
            process,
            key,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Sends a request and waits for the handler's answer.
    pub fn request<R: Serialize + DeserializeOwned>(
        &self,
        handler: &'static str,
        message: A::Msg,
    ) -> Result<R, CallError> {
        if !process_exists(self.process.id()) {
            return Err(self.error(handler, CallFailure::NotRunning));
        }
        call::<A::Msg, R>(self.process.id(), message, self.timeout)
            .map_err(|err| self.wait_error(handler, err))
    }

    /// Sends a request and waits for the handler's answer encoded as JSON (for callers outside
    /// Rust, through NATS).
    pub fn request_json(
        &self,
        handler: &'static str,
        message: A::Msg,
    ) -> Result<Vec<u8>, CallError> {
        if !process_exists(self.process.id()) {
            return Err(self.error(handler, CallFailure::NotRunning));
        }
        call_json::<A::Msg>(self.process.id(), message, self.timeout)
            .map_err(|err| self.wait_error(handler, err))
    }

    /// Sends a request whose answer goes to `reply_to` (another process, which waits for it
    /// itself). `Ok` means it was delivered to a running agent's mailbox.
    pub(crate) fn send_request(
        &self,
        handler: &'static str,
        message: A::Msg,
        reply_to: ReplyTo,
    ) -> Result<(), CallError> {
        if !process_exists(self.process.id()) {
            return Err(self.error(handler, CallFailure::NotRunning));
        }
        let envelope = Envelope {
            message,
            reply_to: Some(reply_to),
        };
        super::host::send(self.process.id(), envelope_tag(), &envelope)
            .map_err(|err| self.error(handler, CallFailure::Unsendable(err.to_string())))
    }

    /// The agent's process.
    pub fn pid(&self) -> Pid {
        Pid {
            node: self.process.node_id(),
            id: self.process.id(),
        }
    }

    fn wait_error(&self, handler: &'static str, err: WaitError) -> CallError {
        if let WaitError::Failed(
            RemoteFailure::Panicked(_) | RemoteFailure::PersistFailed(_) | RemoteFailure::Moved(_),
        ) = &err
        {
            // The agent answers before its process ends: wait for the end, so that once the
            // caller has this error, `get_or_start` starts a new agent instead of finding the one
            // that is going away.
            wait_until_gone(self.process.id());
        }
        let reason = match err {
            WaitError::TimedOut(after) => CallFailure::TimedOut(after),
            WaitError::ServerGone => CallFailure::Stopped,
            WaitError::Failed(failure) => failure.into(),
            WaitError::Undecodable(detail) => {
                CallFailure::Unencodable(format!("undecodable reply: {detail}"))
            }
            WaitError::Unsendable(detail) => CallFailure::Unsendable(detail),
        };
        self.error(handler, reason)
    }

    /// Sends a fire-and-forget message. `Ok` means it was delivered to a running agent's mailbox.
    pub fn send(&self, handler: &'static str, message: A::Msg) -> Result<(), CallError> {
        if !process_exists(self.process.id()) {
            return Err(self.error(handler, CallFailure::NotRunning));
        }
        send_envelope(self.process.id(), message)
            .map_err(|err| self.error(handler, CallFailure::Unsendable(err.to_string())))
    }

    fn error(&self, handler: &'static str, reason: CallFailure) -> CallError {
        CallError {
            target: CallTarget {
                kind: A::KIND,
                key: self.key.clone(),
                handler,
            },
            reason,
        }
    }
}

/// What every generated `<Agent>Ref` can do besides its handlers.
pub trait AgentHandle: Sized + Clone {
    /// The agent this handle reaches.
    type Agent: Agent;

    /// The underlying reference.
    fn raw(&self) -> &AgentRef<Self::Agent>;
    /// Wraps an underlying reference.
    fn from_raw(raw: AgentRef<Self::Agent>) -> Self;

    /// The key of the agent (empty for agents without a `#[key]`).
    fn key(&self) -> &str {
        &self.raw().key
    }

    /// The Lunatic process id of the agent.
    fn process_id(&self) -> u64 {
        self.raw().process.id()
    }

    /// Whether the agent's process is running.
    fn is_alive(&self) -> bool {
        process_exists(self.raw().process.id())
    }

    /// The same handle, with requests waiting at most `timeout` for an answer.
    fn with_timeout(&self, timeout: Duration) -> Self {
        let mut raw = self.raw().clone();
        raw.timeout = Some(timeout);
        Self::from_raw(raw)
    }

    /// The same handle, with requests waiting for an answer as long as the agent is alive.
    fn without_timeout(&self) -> Self {
        let mut raw = self.raw().clone();
        raw.timeout = None;
        Self::from_raw(raw)
    }

    /// Stops the agent in order: it finishes the message it is on, runs its `#[on_stop]` hook,
    /// saves its state, and ends. Waits for that, at most the handle's timeout.
    fn shutdown(&self) -> Result<(), CallError> {
        let raw = self.raw();
        if !self.is_alive() {
            return Err(raw.error("shutdown", CallFailure::NotRunning));
        }
        let timeout = raw.timeout.unwrap_or(Duration::from_secs(u64::MAX >> 2));
        // Ours, not Lunatic's `ProcessRef::shutdown`: an agent that dies while stopping is
        // noticed, not waited for until the timeout.
        shutdown_abstract_process(raw.process.id(), timeout)
            .map_err(|_| raw.error("shutdown", CallFailure::TimedOut(timeout)))?;
        // The agent confirms just before its process ends: once this returns, `get_or_start`
        // starts a new agent instead of finding this one.
        wait_until_gone(raw.process.id());
        Ok(())
    }

    /// Kills the agent's process at once, as a crash would: no hook runs, nothing more is saved.
    /// Returns once the process is gone (the kill is a signal the runtime delivers on its own
    /// time), so that a `get_or_start` right after starts a new agent instead of finding this one.
    fn kill(&self) {
        let id = self.raw().process.id();
        super::host::kill(id);
        wait_until_gone(id);
    }
}

/// Waits (at most a second) until the process `id`, which is ending, is gone.
fn wait_until_gone(id: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while process_exists(id) && std::time::Instant::now() < deadline {
        super::host::sleep(Duration::from_millis(1));
    }
}

/// Starts and finds agents of one kind; `Agent::get_or_start(key)` is a shorthand for
/// `Agent::launcher().get_or_start(key)`.
pub struct Launcher<A> {
    store: Option<StoreConfig>,
    /// Passivation after this long idle (set by the cluster only, see `AgentArg::idle`).
    idle: Option<Duration>,
    /// Set by the cluster once it has claimed the key for this node: start it here.
    claimed: bool,
    kind: PhantomData<fn() -> A>,
}

impl<A> Default for Launcher<A> {
    fn default() -> Self {
        Launcher {
            store: None,
            idle: None,
            claimed: false,
            kind: PhantomData,
        }
    }
}

impl<A: Agent> Launcher<A> {
    /// Keeps this agent's `#[persist]` fields in `store` instead of the node's default store.
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = Some(store);
        self
    }

    /// Stops the agent after `idle` without a message (see `AgentArg::idle`).
    #[cfg(feature = "nats")]
    pub(crate) fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle = idle;
        self
    }

    /// Starts the agent on this node without asking the cluster: the cluster has claimed its key
    /// for this node.
    #[cfg(feature = "nats")]
    pub(crate) fn claimed(mut self) -> Self {
        self.claimed = true;
        self
    }

    /// The single live agent with this key: found in the registry, or started (loading its
    /// persisted state) if none is running. On a node that serves `A` in a cluster, the agent
    /// is the cluster's: found here, or claimed for this node and started with its state from the
    /// cluster's KV bucket; an agent that another node owns is an error saying so (handles that
    /// reach other nodes are not there yet).
    pub fn get_or_start(self, key: impl Into<A::Key>) -> Result<A::Handle, StartError> {
        let key_value = key.into();
        let key = key_text(A::KIND, &key_value)?;
        let name = registry_name::<A>(&key);
        if super::agent::is_starting_as(&name) {
            return Err(registry_error::<A>(
                &key,
                "an agent cannot get or start itself while it starts (from its #[on_start] hook); \
                 it is not registered until its start is over"
                    .into(),
            ));
        }
        let registered = match registry::lookup(&name) {
            Some(pid) => registry::Registered::Found(pid),
            #[cfg(feature = "nats")]
            None if !self.claimed && crate::cluster::serves::<A>() => {
                return crate::cluster::get_or_start::<A>(key_value, &key);
            }
            None => {
                let arg = AgentArg {
                    store: self.resolve_store(),
                    key: key.clone(),
                    idle: self.idle,
                };
                registry::get_or_start(registry::StartJob::new(
                    name,
                    A::KIND,
                    &key,
                    start_agent::<A>,
                    arg,
                ))?
            }
        };
        Ok(A::Handle::from_raw(AgentRef::new(
            registry::process_ref(registered.pid()),
            key,
        )))
    }

    /// The live agent with this key, if one is running.
    pub fn lookup(self, key: impl Into<A::Key>) -> Option<A::Handle> {
        let key = key_text(A::KIND, &key.into()).ok()?;
        let pid = registry::lookup(&registry_name::<A>(&key))?;
        Some(A::Handle::from_raw(AgentRef::new(
            registry::process_ref(pid),
            key,
        )))
    }

    /// Starts a new agent of a kind without a `#[key]` (not registered: every call starts one).
    pub fn start(self) -> Result<A::Handle, StartError>
    where
        A: AgentState<Key = ()>,
    {
        let arg = AgentArg {
            store: self.resolve_store(),
            key: String::new(),
            idle: None,
        };
        let process = super::agent::start::<A>(arg)?;
        Ok(A::Handle::from_raw(AgentRef::new(process, String::new())))
    }

    fn resolve_store(&self) -> Option<StoreConfig> {
        if !A::PERSISTS {
            return None;
        }
        Some(self.store.clone().unwrap_or_else(node::default_store))
    }
}

pub(crate) fn registry_name<A: AgentState>(key: &str) -> String {
    format!("swarm/agent/{}/{key}", A::KIND)
}

fn registry_error<A: AgentState>(key: &str, reason: String) -> StartError {
    StartError::Registry {
        kind: A::KIND.into(),
        key: key.into(),
        reason,
    }
}

/// Runs in a starter process (see `registry`): starts one agent process.
pub(crate) fn start_agent<A: Agent>(arg: AgentArg) -> Result<Pid, StartError> {
    let process = super::agent::start::<A>(arg)?;
    Ok(Pid::local(process.id()))
}

//! Handles: how callers reach an agent, and how agents are found and started.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::agent::{Agent, AgentArg, AgentState};
use super::host::Pid;
use super::mailbox::{
    call, envelope_tag, process_exists, send_envelope, shutdown_abstract_process, wait_until_gone,
    Envelope, ReplyTo, WaitError,
};
use super::{node, registry};
use crate::error::{CallError, CallFailure, CallTarget, RemoteFailure, StartError};
use crate::key::key_text;
use crate::store::StoreConfig;

/// How long a request waits for its answer unless told otherwise (as Erlang's `gen_server:call`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An untyped-by-handler reference to one agent; the generated `<Agent>Ref` wraps it and adds
/// one method per handler.
///
/// It names the agent by kind and key, and knows where it was last found: a process on this node,
/// or (for a kind this node serves in a cluster) another node of the cluster, reached through
/// NATS. In a cluster, and for a kind that passivates, a call that finds the agent gone from there
/// (passivated, moved, its node dead) without having applied anything looks the agent up again
/// (starting it if need be) and is sent there, until the handle's timeout: a handle names a key,
/// not a process. An agent that neither passivates nor belongs to a cluster is not started again
/// behind its caller's back: a call to it once it stopped is `NotRunning`.
///
/// The generated handles wrap it; it is their machinery, not an API of its own (its calls take
/// any message under any handler name).
#[doc(hidden)]
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct AgentRef<A> {
    at: RefCell<Location>,
    key: String,
    timeout: Option<Duration>,
    /// For an agent of a kind that passivates, on a node on its own: how to start it again.
    relaunch: Option<Box<Relaunch>>,
    /// Whether the agent is its cluster's (this node serves its kind in a cluster: the cluster's
    /// directory finds it again); asked of the node once, the first time a call needs it, so that
    /// the handles the NATS workers make per request cost no look-up.
    #[serde(default)]
    cluster: Cell<Option<bool>>,
    kind: PhantomData<fn() -> A>,
}

/// How a handle starts its passivated agent again: as the launcher that made it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Relaunch {
    store: Option<StoreConfig>,
    idle: Duration,
}

/// Where an agent was last found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Location {
    /// A process on this node.
    Local(Pid),
    /// Another node of the cluster: the agent is reached on that node's subject prefix
    /// (`_SWARM.<ns>.node.<id>`), the way other nodes forward requests to it.
    Remote(String),
}

impl<A: Agent> Clone for AgentRef<A> {
    fn clone(&self) -> Self {
        AgentRef {
            at: RefCell::new(self.at.borrow().clone()),
            key: self.key.clone(),
            timeout: self.timeout,
            relaunch: self.relaunch.clone(),
            cluster: self.cluster.clone(),
            kind: PhantomData,
        }
    }
}

impl<A: Agent> PartialEq for AgentRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && *self.at.borrow() == *other.at.borrow()
    }
}

impl<A: Agent> fmt::Debug for AgentRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("AgentRef");
        debug.field("kind", &A::KIND).field("key", &self.key);
        match &*self.at.borrow() {
            Location::Local(process) => debug.field("process", &process.id),
            Location::Remote(node) => debug.field("node", node),
        };
        debug.finish()
    }
}

/// The outcome of one attempt at a call, and whether it may be tried again elsewhere.
enum Attempt<T> {
    Done(Result<T, CallFailure>),
    /// Nothing was applied, and the agent is not where the handle last found it.
    Relocate(CallFailure),
}

impl<A: Agent> AgentRef<A> {
    pub(crate) fn new(process: Pid, key: String) -> Self {
        Self::at(Location::Local(process), key)
    }

    /// A reference to an agent of the cluster that lives on the node with subject prefix `node`.
    #[cfg(feature = "nats")]
    pub(crate) fn remote(node: String, key: String) -> Self {
        let remote = Self::at(Location::Remote(node), key);
        remote.cluster.set(Some(true));
        remote
    }

    /// Whether the agent is its cluster's (see the field).
    fn in_cluster(&self) -> bool {
        if let Some(known) = self.cluster.get() {
            return known;
        }
        #[cfg(feature = "nats")]
        let known = A::KEYED && crate::cluster::serves::<A>();
        #[cfg(not(feature = "nats"))]
        let known = false;
        self.cluster.set(Some(known));
        known
    }

    fn at(location: Location, key: String) -> Self {
        AgentRef {
            at: RefCell::new(location),
            key,
            timeout: Some(DEFAULT_TIMEOUT),
            relaunch: None,
            cluster: Cell::new(None),
            kind: PhantomData,
        }
    }

    /// The same reference, able to start its agent again after it passivated.
    fn relaunched_by(mut self, relaunch: Option<Relaunch>) -> Self {
        self.relaunch = relaunch.map(Box::new);
        self
    }

    /// Sends a request and waits for the handler's answer.
    #[doc(hidden)]
    pub fn request<R: Serialize + DeserializeOwned>(
        &self,
        handler: &'static str,
        message: A::Msg,
    ) -> Result<R, CallError> {
        self.call(handler, |at| match at {
            Location::Local(process) => {
                if !self.reachable(process.id) {
                    return Attempt::Relocate(CallFailure::NotRunning);
                }
                let outcome = call::<&A::Msg, R>(process.id, &message, self.timeout);
                if matches!(outcome, Err(WaitError::ServerGone))
                    && self.relocatable()
                    && registry::passivated(process.id)
                {
                    // It passivated before the request reached it (it answers every request it
                    // receives): nothing was applied, the next activation takes the call.
                    return Attempt::Relocate(CallFailure::NotRunning);
                }
                local_outcome(process.id, outcome)
            }
            Location::Remote(node) => self.call_remote::<R>(node, handler, &message),
        })
    }

    /// Sends a request whose answer goes to `reply_to` (another process, which waits for it
    /// itself). `Ok` means it was delivered to a running agent's mailbox on this node (the NATS
    /// workers only hand requests to agents that run here).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // the NATS front door's
    pub(crate) fn send_request(
        &self,
        handler: &'static str,
        message: A::Msg,
        reply_to: ReplyTo,
    ) -> Result<(), CallError> {
        let Some(process) = self.local_process() else {
            return Err(self.error(
                handler,
                CallFailure::Unavailable("the agent runs on another node".into()),
            ));
        };
        if !process_exists(process) {
            return Err(self.error(handler, CallFailure::NotRunning));
        }
        let envelope = Envelope {
            message,
            reply_to: Some(reply_to),
        };
        super::host::send(process, envelope_tag(), &envelope)
            .map_err(|err| self.error(handler, CallFailure::Unsendable(err.to_string())))
    }

    /// The agent's process, if the handle last found it on this node.
    pub fn pid(&self) -> Option<Pid> {
        match &*self.at.borrow() {
            Location::Local(process) => Some(*process),
            Location::Remote(_) => None,
        }
    }

    fn local_process(&self) -> Option<u64> {
        self.pid().map(|pid| pid.id)
    }

    /// Sends a fire-and-forget message. `Ok` means it was delivered to a running agent's mailbox
    /// (for an agent on another node: that node confirmed the delivery).
    #[doc(hidden)]
    pub fn send(&self, handler: &'static str, message: A::Msg) -> Result<(), CallError> {
        self.call(handler, |at| match at {
            Location::Local(process) => {
                if !self.reachable(process.id) {
                    return Attempt::Relocate(CallFailure::NotRunning);
                }
                Attempt::Done(
                    send_envelope(process.id, &message)
                        .map_err(|err| CallFailure::Unsendable(err.to_string())),
                )
            }
            Location::Remote(node) => match self.call_remote::<()>(node, handler, &message) {
                Attempt::Done(done) => Attempt::Done(done),
                Attempt::Relocate(failure) => Attempt::Relocate(failure),
            },
        })
    }

    /// Runs `attempt` where the agent was last found; in a cluster, while it fails without
    /// having applied anything because the agent is not there, finds the agent again and retries
    /// (until the handle's timeout, pausing a little longer each time: an owner that died holds
    /// its agents until its lease runs out).
    fn call<T>(
        &self,
        handler: &'static str,
        mut attempt: impl FnMut(&Location) -> Attempt<T>,
    ) -> Result<T, CallError> {
        // Read only once an attempt failed: the clock is a host call, and the local path's
        // smallest messages cost a few hundred nanoseconds.
        let mut deadline = None;
        let mut pause = Duration::from_millis(20);
        loop {
            let at = self.at.borrow().clone();
            let failure = match attempt(&at) {
                Attempt::Done(done) => return done.map_err(|reason| self.error(handler, reason)),
                Attempt::Relocate(failure) => failure,
            };
            let deadline = *deadline
                .get_or_insert_with(|| Instant::now() + self.timeout.unwrap_or(DEFAULT_TIMEOUT));
            if !self.relocatable() || Instant::now() + pause >= deadline {
                return Err(self.error(handler, failure));
            }
            match self.relocate() {
                Ok(found) if found != at => *self.at.borrow_mut() = found,
                // Still there (a node that has not noticed yet, an owner whose lease has not run
                // out): wait a little, then ask again.
                Ok(_) | Err(_) => {
                    super::host::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Whether the agent's process takes messages: it runs and, for an agent that passivates,
    /// it has not left the registry to passivate (a call then goes to its next activation, which
    /// starts once this one has saved and ended).
    fn reachable(&self, process: u64) -> bool {
        if !process_exists(process) {
            return false;
        }
        !self.relocatable()
            || super::host::registry_get(&registry_name::<A>(&self.key)).map(|pid| pid.id)
                == Some(process)
    }

    /// Whether the agent can be found again once gone: it belongs to this node's cluster, or its
    /// kind passivates (its next call starts it again).
    fn relocatable(&self) -> bool {
        A::KEYED && (self.relaunch.is_some() || self.in_cluster())
    }

    /// Where the agent is now: as the cluster says (claiming and starting it if nobody has it),
    /// or on this node, started again as the launcher that made this handle would.
    fn relocate(&self) -> Result<Location, CallFailure> {
        #[cfg(feature = "nats")]
        if self.in_cluster() {
            return crate::cluster::locate::<A>(&self.key)
                .map(|found| found.raw().at.borrow().clone());
        }
        let Some(relaunch) = &self.relaunch else {
            return Err(CallFailure::NotRunning);
        };
        let key = crate::key::parse_key_text::<A::Key>(A::KIND, &self.key)
            .map_err(|err| CallFailure::Unsendable(err.to_string()))?;
        let launcher = Launcher::<A> {
            store: relaunch.store.clone(),
            idle: Some(Some(relaunch.idle)),
            ..Launcher::default()
        };
        match launcher.get_or_start(key) {
            Ok(found) => Ok(found.raw().at.borrow().clone()),
            Err(err @ StartError::Overloaded { .. }) => {
                Err(CallFailure::Unavailable(err.to_string()))
            }
            Err(err) => Err(CallFailure::Refused {
                kind: "start_failed".into(),
                message: err.to_string(),
            }),
        }
    }

    /// One call through NATS to the node `node` that holds the agent.
    fn call_remote<R: DeserializeOwned>(
        &self,
        node: &str,
        handler: &'static str,
        message: &A::Msg,
    ) -> Attempt<R> {
        #[cfg(feature = "nats")]
        {
            let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
            match crate::cluster::remote::call::<A>(node, &self.key, handler, message, timeout) {
                Ok(answer) => {
                    Attempt::Done(serde_json::from_value(answer).map_err(|err| {
                        CallFailure::Unencodable(format!("undecodable reply: {err}"))
                    }))
                }
                Err(
                    failure @ (CallFailure::Moved(_)
                    | CallFailure::NoResponders(_)
                    | CallFailure::Unavailable(_)
                    | CallFailure::NotRunning),
                ) => Attempt::Relocate(failure),
                Err(failure) => Attempt::Done(Err(failure)),
            }
        }
        #[cfg(not(feature = "nats"))]
        {
            let _ = (node, handler, message);
            Attempt::Done(Err(CallFailure::Unavailable(
                "remote agents need swarm's `nats` feature".into(),
            )))
        }
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

/// What a call to a process on this node came to.
fn local_outcome<R>(process: u64, outcome: Result<R, WaitError>) -> Attempt<R> {
    let err = match outcome {
        Ok(answer) => return Attempt::Done(Ok(answer)),
        Err(err) => err,
    };
    if let WaitError::Failed(
        RemoteFailure::Panicked(_)
        | RemoteFailure::PersistFailed(_)
        | RemoteFailure::Moved(_)
        | RemoteFailure::OverBudget(_)
        | RemoteFailure::OverMemory(_),
    ) = &err
    {
        // The agent answers before its process ends (over budget: the registrar answers as it
        // kills it, and a process running wasm ends only at its next yield): wait for the end, so
        // that once the caller has this error, `get_or_start` or a relaunching handle starts a
        // new agent instead of finding the one that is going away.
        wait_until_gone(process);
    }
    match err {
        // A stale copy of a cluster's agent: nothing applied, the new owner is elsewhere.
        WaitError::Failed(RemoteFailure::Moved(detail)) => {
            Attempt::Relocate(CallFailure::Moved(detail))
        }
        WaitError::TimedOut(after) => Attempt::Done(Err(CallFailure::TimedOut(after))),
        WaitError::ServerGone => Attempt::Done(Err(CallFailure::Stopped)),
        WaitError::Failed(failure) => Attempt::Done(Err(failure.into())),
        WaitError::Undecodable(detail) => Attempt::Done(Err(CallFailure::Unencodable(format!(
            "undecodable reply: {detail}"
        )))),
        WaitError::Unsendable(detail) => Attempt::Done(Err(CallFailure::Unsendable(detail))),
    }
}

/// What every generated `<Agent>Ref` can do besides its handlers.
pub trait AgentHandle: Sized + Clone {
    /// The agent this handle reaches.
    type Agent: Agent;

    /// The handle's machinery, for the generated code and swarm itself: not part of the API.
    #[doc(hidden)]
    fn raw(&self) -> &AgentRef<Self::Agent>;
    /// Makes a handle from its machinery, for the generated code and swarm itself: not part of
    /// the API (it would make a handle to any process).
    #[doc(hidden)]
    fn from_raw(raw: AgentRef<Self::Agent>) -> Self;

    /// The key of the agent (empty for agents without a `#[key]`).
    fn key(&self) -> &str {
        &self.raw().key
    }

    /// The Lunatic process id of the agent, if the handle last found it on this node (`None`
    /// for an agent of the cluster that lives on another node).
    fn process_id(&self) -> Option<u64> {
        self.raw().local_process()
    }

    /// Whether the agent is running where the handle last found it and takes calls there (an
    /// agent that is passivating takes none); for an agent on another node of the cluster, its
    /// node is asked.
    fn is_alive(&self) -> bool {
        self.raw().is_alive()
    }

    /// The same handle, with requests waiting at most `timeout` for an answer.
    fn with_timeout(&self, timeout: Duration) -> Self {
        let mut raw = self.raw().clone();
        raw.timeout = Some(timeout);
        Self::from_raw(raw)
    }

    /// The same handle, with requests waiting for an answer as long as the agent is alive (for
    /// an agent on another node of the cluster: as long as that node's front door waits, see
    /// `swarm::nats`).
    fn without_timeout(&self) -> Self {
        let mut raw = self.raw().clone();
        raw.timeout = None;
        Self::from_raw(raw)
    }

    /// Stops the agent in order: it finishes the message it is on, runs its `#[on_stop]` hook,
    /// saves its state, and ends. Waits for that, at most the handle's timeout.
    fn shutdown(&self) -> Result<(), CallError> {
        self.raw().shutdown()
    }

    /// Kills the agent's process at once, as a crash would: no hook runs, nothing more is saved.
    /// Returns once the process is gone (the kill is a signal the runtime delivers on its own
    /// time), so that a `get_or_start` right after starts a new agent instead of finding this one.
    fn kill(&self) {
        self.raw().kill();
    }
}

impl<A: Agent> AgentRef<A> {
    fn is_alive(&self) -> bool {
        match &*self.at.borrow() {
            Location::Local(process) => self.reachable(process.id),
            Location::Remote(node) => self.control(node, Control::Alive) == Ok(true),
        }
    }

    fn shutdown(&self) -> Result<(), CallError> {
        let timeout = self.timeout.unwrap_or(Duration::from_secs(u64::MAX >> 2));
        let id = match &*self.at.borrow() {
            Location::Local(process) => process.id,
            Location::Remote(node) => {
                return match self.control(node, Control::Shutdown) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(self.error("shutdown", CallFailure::NotRunning)),
                    Err(failure) => Err(self.error("shutdown", failure)),
                }
            }
        };
        if !process_exists(id) {
            return Err(self.error("shutdown", CallFailure::NotRunning));
        }
        // Ours, not Lunatic's `ProcessRef::shutdown`: an agent that dies while stopping is
        // noticed, not waited for until the timeout.
        shutdown_abstract_process(id, timeout)
            .map_err(|_| self.error("shutdown", CallFailure::TimedOut(timeout)))
    }

    fn kill(&self) {
        match &*self.at.borrow() {
            Location::Local(process) => {
                super::host::kill(process.id);
                wait_until_gone(process.id);
            }
            Location::Remote(node) => {
                let _not_there_is_killed_too = self.control(node, Control::Kill);
            }
        }
    }

    /// Asks the node `node` to act on the agent there; `Ok(false)` if it does not run there.
    fn control(&self, node: &str, control: Control) -> Result<bool, CallFailure> {
        #[cfg(feature = "nats")]
        return crate::cluster::remote::control::<A>(
            node,
            &self.key,
            control,
            self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        );
        #[cfg(not(feature = "nats"))]
        {
            let _ = (node, control);
            Err(CallFailure::Unavailable(
                "remote agents need swarm's `nats` feature".into(),
            ))
        }
    }
}

/// What a handle can ask of an agent's node besides calling a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Whether it runs there.
    Alive,
    /// Stop it in order.
    Shutdown,
    /// Kill it.
    Kill,
}

#[cfg_attr(not(feature = "nats"), allow(dead_code))] // the cluster's remote handles
impl Control {
    /// The "handler" token of its subject (`!` is no handler character: no handler has it).
    pub(crate) fn token(self) -> &'static str {
        match self {
            Control::Alive => "!alive",
            Control::Shutdown => "!shutdown",
            Control::Kill => "!kill",
        }
    }

    pub(crate) fn from_token(token: &str) -> Option<Control> {
        [Control::Alive, Control::Shutdown, Control::Kill]
            .into_iter()
            .find(|control| control.token() == token)
    }
}

/// Starts and finds agents of one kind; `Agent::get_or_start(key)` is a shorthand for
/// `Agent::launcher().get_or_start(key)`.
pub struct Launcher<A> {
    store: Option<StoreConfig>,
    /// Passivation after this long idle (see `AgentArg::idle`): `None` until set, then the kind's
    /// `PASSIVATE_AFTER` applies.
    idle: Option<Option<Duration>>,
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

    /// Passivation: the agent stops (after `#[on_stop]` and a save) once it has had no message
    /// for `idle`; the next call through its handle, any other handle or the NATS front door
    /// starts it again with its state. Overrides the kind's `PASSIVATE_AFTER`. Only agents with a
    /// `#[key]` passivate (one without cannot be found again).
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.idle = Some(Some(idle));
        self
    }

    /// Passivation as the cluster serves the kind (`None`: never, whatever the kind says).
    #[cfg(feature = "nats")]
    pub(crate) fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle = Some(idle);
        self
    }

    /// How long the agent may idle before it passivates, if it does.
    fn resolve_idle(&self) -> Option<Duration> {
        if !A::KEYED {
            return None;
        }
        self.idle.unwrap_or(A::PASSIVATE_AFTER)
    }

    /// How a handle starts the agent again once it passivated (on a node on its own).
    fn relaunch(&self) -> Option<Relaunch> {
        Some(Relaunch {
            store: self.store.clone(),
            idle: self.resolve_idle()?,
        })
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
    /// is the cluster's: found here, claimed for this node and started with its state from the
    /// cluster's KV bucket, or reached on the node that owns it.
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
                    idle: self.resolve_idle(),
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
        // Started here for the cluster: the cluster finds it again, not this launcher.
        let relaunch = self.relaunch().filter(|_| !self.claimed);
        Ok(A::Handle::from_raw(
            AgentRef::new(registered.pid(), key).relaunched_by(relaunch),
        ))
    }

    /// The live agent with this key, if one is running.
    pub fn lookup(self, key: impl Into<A::Key>) -> Option<A::Handle> {
        let key = key_text(A::KIND, &key.into()).ok()?;
        let pid = registry::lookup(&registry_name::<A>(&key))?;
        Some(A::Handle::from_raw(
            AgentRef::new(pid, key).relaunched_by(self.relaunch()),
        ))
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
        let pid = Pid {
            node: process.node_id(),
            id: process.id(),
        };
        Ok(A::Handle::from_raw(AgentRef::new(pid, String::new())))
    }

    fn resolve_store(&self) -> Option<StoreConfig> {
        if !super::agent::keeps_record::<A>() {
            return None;
        }
        Some(self.store.clone().unwrap_or_else(node::default_store))
    }
}

pub(crate) fn registry_name<A: AgentState>(key: &str) -> String {
    registry_name_of(A::KIND, key)
}

/// [`registry_name`] of a kind known only by name.
pub(crate) fn registry_name_of(kind: &str, key: &str) -> String {
    format!("swarm/agent/{kind}/{key}")
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

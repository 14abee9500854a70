//! The node's registry of named processes: one live agent per `(kind, key)`, and the node's
//! admission control.
//!
//! Lunatic's registry maps a name to a process id but never forgets a dead process, and its
//! atomic "get or spawn" returns a dead entry as found. So every "get or start" goes through one
//! registrar process per node, which decides for each name, one request at a time: a live process
//! is returned; otherwise one start is launched and every request for that name waits for its
//! outcome. Lookups (`lookup`) read the registry directly and check that the process is alive,
//! without a round trip.
//!
//! The registrar never waits for a start itself: each start runs in a short-lived starter process
//! (starting an agent runs its `init`, which loads state and may itself get or start other agents;
//! a registrar blocked on it would deadlock). Starts of different names run side by side.
//!
//! The registrar serves the whole node, so nothing it does may end it: a starter it cannot spawn
//! is an error for that one caller, a starter that crashes is an error for the callers waiting on
//! that start, and a message it cannot read is dropped. Should it end anyway (killed), the next
//! `get_or_start` on the node starts a new one under the next generation of its name (a name is
//! claimed atomically, so there is never more than one), and callers that were waiting on the old
//! one get an error instead of waiting forever.
//!
//! It monitors every agent it started: that is how it knows how many live agents the node holds
//! (for [`NodeLimits`]) and how it removes a dead agent's name from Lunatic's registry, which
//! would otherwise keep every name ever used.
//!
//! Starters are function pointers: every process of a node runs the same module, so a function
//! pointer means the same function in all of them (Lunatic itself spawns processes this way).

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use lunatic::ap::{AbstractProcess, ProcessRef};
use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::agent::AgentArg;
use super::host::{self, Pid, Received};
use super::mailbox::{
    call, cast, decode_envelope, envelope_tag, Envelope, ReplyTo, WaitError, ENVELOPE_HANDLER_ID,
};
use super::node::{self, NodeLimits, NodeStats};
use super::process::{spawn_linked, spawn_named, Named};
use super::wire::Wire;
use crate::error::{RemoteFailure, StartError};

/// The registrar's name in Lunatic's registry, followed by its generation (see the module docs).
const REGISTRAR_NAME: &str = "swarm/registrar/";
/// Starting a process runs its `init`, which may load state from disk: give it time.
const REGISTRAR_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts an agent process; returns its address.
pub type Starter = fn(AgentArg) -> Result<Pid, StartError>;

/// A [`Starter`] as it travels between processes: a function pointer as a number. Every process
/// of a node runs the same module, so the number means the same function in all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarterRef(usize);

impl StarterRef {
    /// The reference to `starter`.
    pub fn new(starter: Starter) -> Self {
        StarterRef(starter as *const () as usize)
    }

    /// Runs the starter.
    pub fn start(self, arg: AgentArg) -> Result<Pid, StartError> {
        // SAFETY: a `StarterRef` is only made from a `Starter` (`new`) of this same module, and
        // travels only between processes of one node (see the type's docs).
        let starter: Starter = unsafe { std::mem::transmute::<usize, Starter>(self.0) };
        starter(arg)
    }
}

/// A process registered under a name, found or started. The difference matters to a supervisor:
/// a keyed child that was already running is adopted, not started (see `supervisor::process`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registered {
    /// It was already running.
    Found(Pid),
    /// It was started by this call.
    Started(Pid),
}

impl Registered {
    /// The address of the process.
    pub fn pid(self) -> Pid {
        match self {
            Registered::Found(pid) | Registered::Started(pid) => pid,
        }
    }
}

/// One agent to find or start: its registry name, what to call it in errors, and how to start it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartJob {
    /// The name in the registry (`swarm/agent/<kind>/<key>`).
    pub name: String,
    /// The agent kind, for errors.
    pub kind: String,
    /// The key, for errors.
    pub key: String,
    /// How to start it.
    pub starter: StarterRef,
    /// The starter's argument.
    pub arg: AgentArg,
}

impl StartJob {
    /// A job for `starter(arg)`.
    pub fn new(name: String, kind: &str, key: &str, starter: Starter, arg: AgentArg) -> Self {
        StartJob {
            name,
            kind: kind.to_owned(),
            key: key.to_owned(),
            starter: StarterRef::new(starter),
            arg,
        }
    }

    fn error(&self, reason: impl Into<String>) -> StartError {
        StartError::Registry {
            kind: self.kind.clone(),
            key: self.key.clone(),
            reason: reason.into(),
        }
    }
}

/// The live process registered as `name`, if any.
pub fn lookup(name: &str) -> Option<Pid> {
    host::registry_get(name).filter(|pid| pid.exists())
}

/// The live process registered as `job.name`, started with the job's starter if there is none.
pub fn get_or_start(job: StartJob) -> Result<Registered, StartError> {
    if let Some(pid) = lookup(&job.name) {
        return Ok(Registered::Found(pid));
    }
    let registrar = registrar().map_err(|reason| job.error(reason))?;
    let unavailable = job.error("");
    match call::<RegistrarOp, Result<Registered, StartError>>(
        registrar,
        RegistrarOp::GetOrStart(job),
        Some(REGISTRAR_TIMEOUT),
    ) {
        Ok(outcome) => outcome,
        Err(err) => {
            let reason = match err {
                WaitError::TimedOut(after) => {
                    format!("the node's registrar did not answer within {after:?}")
                }
                WaitError::ServerGone => {
                    "the node's registrar stopped before it answered (the next call starts a new one)"
                        .to_owned()
                }
                other => format!("the node's registrar failed: {other:?}"),
            };
            Err(match unavailable {
                StartError::Registry { kind, key, .. } => {
                    StartError::Registry { kind, key, reason }
                }
                other => other,
            })
        }
    }
}

/// Sets the timer that has the registrar stop this agent (of kind `kind`) if the message it is
/// about to serve (for `caller`) runs longer than `budget`; returns the timer, which the agent
/// cancels once the message is over. `None` when the registrar cannot be reached (the message
/// then runs without a budget; the node's error is logged).
pub(crate) fn arm_budget(kind: &str, budget: Duration, caller: Option<ReplyTo>) -> Option<u64> {
    let registrar = match registrar() {
        Ok(registrar) => registrar,
        Err(reason) => {
            eprintln!("swarm: agent `{kind}`: no time budget for this message: {reason}");
            return None;
        }
    };
    let overrun = Envelope {
        message: RegistrarOp::Overrun {
            agent: host::this().id,
            kind: kind.to_owned(),
            budget,
            caller,
        },
        reply_to: None,
    };
    host::send_after(registrar, envelope_tag(), &overrun, budget).ok()
}

/// Sends new limits to the node's registrar (starting it if need be).
pub(crate) fn apply_limits(limits: NodeLimits) -> Result<(), String> {
    let registrar = registrar()?;
    call::<RegistrarOp, ()>(
        registrar,
        RegistrarOp::SetLimits(limits),
        Some(REGISTRAR_TIMEOUT),
    )
    .map_err(|err| format!("the node's registrar did not take the limits: {err:?}"))
}

/// The registrar's figures, or `None` when no registrar runs on this node yet.
pub(crate) fn stats() -> Result<Option<NodeStats>, String> {
    let Some(registrar) = current_registrar() else {
        return Ok(None);
    };
    call::<RegistrarOp, NodeStats>(registrar, RegistrarOp::Stats, Some(REGISTRAR_TIMEOUT))
        .map(Some)
        .map_err(|err| format!("the node's registrar did not answer: {err:?}"))
}

/// Tells the registrar that this agent passivated: it has left the registry, served what reached
/// it, saved, and now ends. Sent last, so the registrar has it before it learns of the end.
pub(crate) fn note_passivated() {
    if let Some(registrar) = current_registrar() {
        let note = Envelope {
            message: RegistrarOp::Passivated {
                agent: host::this().id,
            },
            reply_to: None,
        };
        // No registrar, no callers to tell: they then see the agent as stopped, as before.
        let _ = host::send(registrar, envelope_tag(), &note);
    }
}

/// Whether process `agent`, which ended, ended by passivating (among the last
/// [`PASSIVATIONS_KEPT`] that did). A caller whose request found the agent gone without an answer
/// asks: a passivated agent answered every request it received, so an unanswered one was never
/// applied, and the call can go to the next activation. `false` when unknown.
pub(crate) fn passivated(agent: u64) -> bool {
    let Some(registrar) = current_registrar() else {
        return false;
    };
    call::<RegistrarOp, bool>(
        registrar,
        RegistrarOp::WasPassivated { agent },
        Some(REGISTRAR_TIMEOUT),
    )
    .unwrap_or(false)
}

/// How many passivated agents the registrar remembers for [`passivated`]: enough for the callers
/// that were sending to them as they ended; an older one counts as stopped (never a wrong retry).
const PASSIVATIONS_KEPT: usize = 4096;

/// Live agents per kind, or `None` when no registrar runs on this node yet. Counted from the
/// registry names when asked (a scrape), so that starts and ends pay nothing for it.
pub(crate) fn live_by_kind() -> Result<Option<Vec<(String, u64)>>, String> {
    let Some(registrar) = current_registrar() else {
        return Ok(None);
    };
    call::<RegistrarOp, Vec<(String, u64)>>(
        registrar,
        RegistrarOp::LiveByKind,
        Some(REGISTRAR_TIMEOUT),
    )
    .map(Some)
    .map_err(|err| format!("the node's registrar did not answer: {err:?}"))
}

/// One agent the registrar started that is running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAgent {
    /// Its kind.
    pub kind: String,
    /// Its key.
    pub key: String,
    /// Its process on this node.
    pub process: u64,
}

/// A page of the live agents: at most the number asked for, by kind and key, and how many
/// there are in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAgents {
    /// The first agents by kind, then key.
    pub agents: Vec<LiveAgent>,
    /// Live agents in all (the registry's `live_agents`).
    pub total: u64,
}

/// At most `limit` of the agents with a key running on this node (those the registry started),
/// by kind and key, for observers (the services' `observe` answer); empty when no registrar
/// runs on this node yet. The list is built when asked, so starts and ends pay nothing for it.
pub fn live_agents(limit: usize) -> Result<LiveAgents, String> {
    let Some(registrar) = current_registrar() else {
        return Ok(LiveAgents::default());
    };
    call::<RegistrarOp, LiveAgents>(
        registrar,
        RegistrarOp::LiveAgents { limit },
        Some(REGISTRAR_TIMEOUT),
    )
    .map_err(|err| format!("the node's registrar did not answer: {err:?}"))
}

/// `(kind, key)` of a registry name `swarm/agent/<kind>/<key>`; keys have no `/`, kinds may.
fn kind_and_key(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("swarm/agent/")?.rsplit_once('/')
}

/// The process id of the registrar running now, if any (for tests that kill it).
pub fn current_registrar() -> Option<u64> {
    let mut generation = GENERATION.with(Cell::get);
    loop {
        let id = host::registry_get(&format!("{REGISTRAR_NAME}{generation}"))?.id;
        if host::exists(id) {
            GENERATION.with(|cached| cached.set(generation));
            return Some(id);
        }
        generation += 1;
    }
}

/// Turns the address of a process known to be a `T` into a typed reference.
pub fn process_ref<T: AbstractProcess<Serializer = Wire>>(pid: Pid) -> ProcessRef<T> {
    // `ProcessRef` has no public constructor; it encodes as the `Process` it wraps, two `u64`s,
    // as `Pid` does, so decoding a `Pid`'s encoding gives the reference. The caller vouches for
    // `T`.
    let bytes = bincode::serialize(&pid).expect("a pid always encodes");
    bincode::deserialize(&bytes).expect("a process reference decodes from a pid")
}

thread_local! {
    /// The registrar generation this process last found alive: where the search starts.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// The live registrar, started if there is none: the first generation of its name that is free
/// or held by a live process.
fn registrar() -> Result<u64, String> {
    let mut generation = GENERATION.with(Cell::get);
    loop {
        let name = format!("{REGISTRAR_NAME}{generation}");
        let id = match host::registry_get(&name) {
            Some(pid) => pid.id,
            None => match spawn_named(&name, (), run_registrar) {
                Ok(Named::Started(id) | Named::Found(id)) => id,
                Err(err) => return Err(format!("the node's registrar did not start: {err}")),
            },
        };
        if host::exists(id) {
            GENERATION.with(|cached| cached.set(generation));
            return Ok(id);
        }
        // This generation's registrar has ended: its name stays taken, try the next one.
        generation += 1;
    }
}

/// What the registrar handles: requests, and the outcome of the starts it launched.
#[derive(Debug, Serialize, Deserialize)]
enum RegistrarOp {
    GetOrStart(StartJob),
    Finished {
        start: i64,
        outcome: Result<Pid, StartError>,
    },
    SetLimits(NodeLimits),
    Stats,
    /// Live agents per kind (the metrics' `swarm_agents_live`), answered as `Vec<(kind, n)>`.
    LiveByKind,
    /// At most `limit` live agents (see [`live_agents`]), answered as a [`LiveAgents`].
    LiveAgents {
        limit: usize,
    },
    /// The start `start` has run for `NodeLimits::start_timeout`.
    Deadline {
        start: i64,
    },
    /// Agent `agent` passivated and is ending (see [`note_passivated`]).
    Passivated {
        agent: u64,
    },
    /// Whether agent `agent` ended by passivating (see [`passivated`]).
    WasPassivated {
        agent: u64,
    },
    /// The message agent `agent` is serving has run past its kind's time budget (a timer the
    /// agent set, and cancels when the message is over): stop the agent, tell its caller.
    Overrun {
        agent: u64,
        kind: String,
        budget: Duration,
        caller: Option<ReplyTo>,
    },
}

/// One start in progress: its job and everyone waiting for it.
struct Start {
    job: StartJob,
    waiting: Vec<ReplyTo>,
    /// The starter process.
    starter: u64,
    /// The timer of its deadline (cancelled when it ends: a node starting thousands of agents a
    /// second would otherwise hold that many timers).
    deadline: Option<u64>,
}

/// The registrar's state.
struct Registrar {
    limits: NodeLimits,
    /// Starts in progress, by the tag of the link to their starter process.
    starts: HashMap<i64, Start>,
    /// Which start runs for a name.
    starting: HashMap<String, i64>,
    /// Live agents it started, with their names.
    live: HashMap<u64, String>,
    /// The other way round: the process it last started under each name, while it lives.
    by_name: HashMap<String, u64>,
    /// Starts of a name whose previous process left the registry but still runs (a passivating
    /// agent saving its state): held until that process has ended, by its id.
    after_end: HashMap<u64, Vec<(StartJob, ReplyTo)>>,
    /// The last agents that passivated, oldest first, and the same as a set.
    passivated: (
        std::collections::VecDeque<u64>,
        std::collections::HashSet<u64>,
    ),
    stats: NodeStats,
}

fn run_registrar((): ()) {
    // A starter that dies without reporting arrives as a link-death message, not as our end.
    host::die_when_link_dies(false);
    let mut registrar = Registrar {
        limits: node::limits(),
        starts: HashMap::new(),
        starting: HashMap::new(),
        live: HashMap::new(),
        by_name: HashMap::new(),
        after_end: HashMap::new(),
        passivated: Default::default(),
        stats: NodeStats::default(),
    };
    loop {
        match host::receive(&[], None) {
            Received::Data => {
                if host::tag() >> 56 != ENVELOPE_HANDLER_ID {
                    continue;
                }
                match decode_envelope::<RegistrarOp>(host::tag()) {
                    Ok(envelope) => registrar.handle(envelope),
                    Err(err) => eprintln!("swarm: the registrar dropped a message: {err}"),
                }
            }
            Received::LinkDied => {
                let start = host::tag();
                if let Some(pending) = registrar.starts.get(&start) {
                    let crashed = pending.job.error(
                        "the process starting it crashed (its panic message is in the node's log)",
                    );
                    registrar.finish(start, Err(crashed));
                }
            }
            Received::ProcessDied => registrar.ended(host::sender()),
            Received::TimedOut => {}
        }
    }
}

impl Registrar {
    fn handle(&mut self, envelope: Envelope<RegistrarOp>) {
        let reply_to = envelope.reply_to;
        match envelope.message {
            RegistrarOp::GetOrStart(job) => {
                if let Some(reply_to) = reply_to {
                    self.get_or_start(job, reply_to);
                }
            }
            RegistrarOp::Finished { start, outcome } => self.finish(start, outcome),
            RegistrarOp::SetLimits(limits) => {
                self.limits = limits;
                if let Some(reply_to) = reply_to {
                    reply_to.send(());
                }
            }
            RegistrarOp::Deadline { start } => {
                if let Some(pending) = self.starts.get(&start) {
                    // Its starter dies, and the agent it was starting with it (they are linked).
                    host::kill(pending.starter);
                    let late = pending.job.error(format!(
                        "it did not finish starting within {:?} (is its #[on_start] blocked?); \
                         the start was abandoned",
                        self.limits.start_timeout
                    ));
                    self.finish(start, Err(late));
                }
            }
            RegistrarOp::Overrun {
                agent,
                kind,
                budget,
                caller,
            } => {
                if !host::exists(agent) {
                    return;
                }
                // A timer that fired just as its message ended (the agent's cancel came too
                // late) still stops the agent: that message used its whole budget.
                host::kill(agent);
                let reason = format!(
                    "agent `{kind}` ran one message for longer than its budget of {budget:?}; it \
                     was stopped and restarts from its last saved state"
                );
                eprintln!("swarm: {reason}");
                if let Some(caller) = caller {
                    caller.send_failure(RemoteFailure::OverBudget(reason));
                }
            }
            RegistrarOp::Passivated { agent } => {
                let (order, set) = &mut self.passivated;
                if set.insert(agent) {
                    order.push_back(agent);
                }
                while order.len() > PASSIVATIONS_KEPT {
                    if let Some(oldest) = order.pop_front() {
                        set.remove(&oldest);
                    }
                }
            }
            RegistrarOp::WasPassivated { agent } => {
                if let Some(reply_to) = reply_to {
                    reply_to.send(self.passivated.1.contains(&agent));
                }
            }
            RegistrarOp::Stats => {
                if let Some(reply_to) = reply_to {
                    let mut stats = self.stats.clone();
                    stats.live_agents = self.live.len() as u64;
                    stats.starts_in_flight = self.starts.len() as u64;
                    stats.limits = self.limits.clone();
                    reply_to.send(stats);
                }
            }
            RegistrarOp::LiveByKind => {
                if let Some(reply_to) = reply_to {
                    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
                    for name in self.live.values() {
                        let kind = kind_and_key(name).map_or("", |(kind, _key)| kind);
                        *by_kind.entry(kind.to_owned()).or_default() += 1;
                    }
                    reply_to.send(by_kind.into_iter().collect::<Vec<_>>());
                }
            }
            RegistrarOp::LiveAgents { limit } => {
                if let Some(reply_to) = reply_to {
                    // Borrowed names first; only the `limit` shown are sorted and copied (a
                    // node holds up to a million agents, and this process also starts them).
                    let mut named: Vec<(&str, &str, u64)> = self
                        .live
                        .iter()
                        .filter_map(|(&process, name)| {
                            let (kind, key) = kind_and_key(name)?;
                            Some((kind, key, process))
                        })
                        .collect();
                    let total = named.len() as u64;
                    // The first `limit` by kind and key, so that the same agents are shown
                    // every time.
                    let by_name =
                        |a: &(&str, &str, u64), b: &(&str, &str, u64)| (a.0, a.1).cmp(&(b.0, b.1));
                    if limit < named.len() {
                        if limit == 0 {
                            named.clear();
                        } else {
                            named.select_nth_unstable_by(limit - 1, by_name);
                            named.truncate(limit);
                        }
                    }
                    named.sort_unstable_by(by_name);
                    let agents = named
                        .into_iter()
                        .map(|(kind, key, process)| LiveAgent {
                            kind: kind.to_owned(),
                            key: key.to_owned(),
                            process,
                        })
                        .collect();
                    reply_to.send(LiveAgents { agents, total });
                }
            }
        }
    }

    /// An agent it started has ended: forget it, and run the starts that waited for its end.
    fn ended(&mut self, id: u64) {
        if let Some(name) = self.live.remove(&id) {
            if host::registry_get(&name).map(|pid| pid.id) == Some(id) {
                host::registry_remove(&name);
            }
            if self.by_name.get(&name) == Some(&id) {
                self.by_name.remove(&name);
            }
        }
        for (job, reply_to) in self.after_end.remove(&id).unwrap_or_default() {
            self.get_or_start(job, reply_to);
        }
    }

    fn get_or_start(&mut self, job: StartJob, reply_to: ReplyTo) {
        if let Some(pid) = lookup(&job.name) {
            return reply_to.send::<Result<Registered, StartError>>(Ok(Registered::Found(pid)));
        }
        if let Some(start) = self.starting.get(&job.name) {
            if let Some(start) = self.starts.get_mut(start) {
                start.waiting.push(reply_to);
                return;
            }
        }
        // Its previous process has left the registry but still runs (it passivates, or stops in
        // order): it may be writing its last state. A new one started now could load the state
        // before that write and then be overwritten by it; so the start waits for the end.
        if let Some(&previous) = self.by_name.get(&job.name) {
            if host::exists(previous) {
                self.after_end
                    .entry(previous)
                    .or_default()
                    .push((job, reply_to));
                return;
            }
            self.by_name.remove(&job.name);
        }
        let answer = |outcome: Result<Registered, StartError>| reply_to.send(outcome);
        if let Some(limit) = self.refusal() {
            self.stats.refused_starts += 1;
            return answer(Err(StartError::Overloaded {
                kind: job.kind,
                key: job.key,
                limit,
            }));
        }
        let tag = Tag::new();
        let registrar = host::this().id;
        let capture = (registrar, tag.id(), job.starter, job.arg.clone());
        match spawn_linked(capture, run_start, tag) {
            Ok(starter) => {
                // A start that never ends (an `#[on_start]` blocked for good) must not hold its
                // name and a start slot for ever: this reminder ends it.
                let deadline = Envelope {
                    message: RegistrarOp::Deadline { start: tag.id() },
                    reply_to: None,
                };
                let deadline = host::send_after(
                    registrar,
                    envelope_tag(),
                    &deadline,
                    self.limits.start_timeout,
                )
                .ok();
                self.starting.insert(job.name.clone(), tag.id());
                self.starts.insert(
                    tag.id(),
                    Start {
                        job,
                        waiting: vec![reply_to],
                        starter,
                        deadline,
                    },
                );
            }
            Err(err) => {
                self.stats.failed_starts += 1;
                answer(Err(StartError::Spawn {
                    kind: job.kind,
                    key: job.key,
                    reason: err.reason,
                }))
            }
        }
    }

    /// Why a new start must be refused now, if it must.
    fn refusal(&mut self) -> Option<String> {
        let NodeLimits {
            max_agents,
            max_starts_in_flight,
            ..
        } = self.limits;
        if self.live.len() + self.starts.len() >= max_agents {
            // A monitor set just as its agent ended may never report: count again before refusing.
            self.live.retain(|&id, _| host::exists(id));
        }
        if self.live.len() + self.starts.len() >= max_agents {
            return Some(format!(
                "it holds {} live agents and {} starting, at its limit of max_agents = {max_agents}",
                self.live.len(),
                self.starts.len()
            ));
        }
        if self.starts.len() >= max_starts_in_flight {
            return Some(format!(
                "{} starts are in flight, at its limit of max_starts_in_flight = {max_starts_in_flight}",
                self.starts.len()
            ));
        }
        None
    }

    /// A start ended: register what started, and answer everyone who waited for it.
    fn finish(&mut self, start: i64, outcome: Result<Pid, StartError>) {
        let Some(Start {
            job,
            waiting,
            deadline,
            ..
        }) = self.starts.remove(&start)
        else {
            return;
        };
        if let Some(timer) = deadline {
            host::cancel_timer(timer);
        }
        self.starting.remove(&job.name);
        match &outcome {
            Ok(pid) => {
                self.stats.started += 1;
                host::registry_put(&job.name, *pid);
                host::monitor(pid.id);
                // An agent that ended before the monitor was set is never reported: not live.
                if pid.exists() {
                    self.by_name.insert(job.name.clone(), pid.id);
                    self.live.insert(pid.id, job.name);
                }
            }
            Err(_) => self.stats.failed_starts += 1,
        }
        for (index, reply_to) in waiting.into_iter().enumerate() {
            let answer = match &outcome {
                Ok(pid) if index == 0 => Ok(Registered::Started(*pid)),
                Ok(pid) => Ok(Registered::Found(*pid)),
                Err(error) => Err(error.clone()),
            };
            reply_to.send::<Result<Registered, StartError>>(answer);
        }
    }
}

/// Runs in a starter process: one start, reported to the registrar.
fn run_start((registrar, start, starter, arg): (u64, i64, StarterRef, AgentArg)) {
    // The agent is linked to this process while it starts (see `agent::start`): if this process
    // is killed (the start's deadline, the registrar's end), the half-started agent goes too, so
    // no agent is left running unregistered. An agent whose start fails must not take this
    // process with it: its end arrives as a message, and the start reports the failure.
    host::die_when_link_dies(false);
    super::agent::link_starts_to_this_process();
    let outcome = starter.start(arg);
    cast(registrar, RegistrarOp::Finished { start, outcome });
}

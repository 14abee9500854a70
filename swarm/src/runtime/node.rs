//! Node-wide settings, held by one process per node so that every process sees the same ones:
//! the default store, and the limits that keep outside callers from making a node hold more than
//! it can.

use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use serde::{Deserialize, Serialize};

use super::mailbox::{call, Envelope};
use super::registry;
use super::wire::Wire;
use crate::store::{StoreConfig, StoreError};

const NAME: &str = "swarm/node-config";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Admission control: how much a node agrees to hold. A start past a limit is refused at once
/// with [`crate::StartError::Overloaded`] naming the limit; the node goes on serving the agents
/// it has. Counted are the agents the registry starts (every agent with a `#[key]`, however it is
/// reached: handles, supervisors, the NATS front door); agents without a key are started by the
/// program's own code and are not counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLimits {
    /// Live agents (plus those starting) the node holds at most. Default 262,144 (Erlang's
    /// default process limit); a stock `lunatic run` node runs out of address space near 15,000
    /// processes, so set it lower there, or run `swarm-node`.
    pub max_agents: usize,
    /// Agents starting at the same time, at most (each start loads its state). Default 1,024.
    pub max_starts_in_flight: usize,
    /// A start (loading the state, running `#[on_start]`) still running after this long is
    /// abandoned: its callers get `StartError::Registry` saying so, and the half-started agent
    /// is stopped, so that a blocked `#[on_start]` does not hold its key and a start slot for
    /// ever. Default 55 s (callers of the registry give up at 60 s).
    pub start_timeout: Duration,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            max_agents: 262_144,
            max_starts_in_flight: 1_024,
            start_timeout: Duration::from_secs(55),
        }
    }
}

/// What the node's registry has seen since it started (see [`node_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Agents the registry started and that are still running.
    pub live_agents: u64,
    /// Starts in progress now.
    pub starts_in_flight: u64,
    /// Agents started.
    pub started: u64,
    /// Starts that failed (a spawn the node could not make, an `init` that failed or panicked).
    pub failed_starts: u64,
    /// Starts refused by the [`NodeLimits`].
    pub refused_starts: u64,
    /// The limits in force.
    pub limits: NodeLimits,
}

/// Sets the store that agents started from now on keep their `#[persist]` fields in, unless
/// they are started with `launcher().store(..)`. Agents already running keep theirs.
///
/// Until this is called, the node uses [`StoreConfig::default_for_node`].
pub fn set_default_store(store: StoreConfig) -> Result<(), StoreError> {
    let unavailable = |reason: String| StoreError::Config(format!("node settings: {reason}"));
    let settings = settings().map_err(unavailable)?;
    match call::<Op, Settings>(settings, Op::SetStore(store), Some(TIMEOUT)) {
        Ok(_) => Ok(()),
        Err(err) => Err(unavailable(format!("{err:?}"))),
    }
}

/// The store agents use unless told otherwise (see [`set_default_store`]).
pub fn default_store() -> StoreConfig {
    current().map_or_else(StoreConfig::default_for_node, |settings| settings.store)
}

/// Sets the node's [`NodeLimits`]; they apply to the next start.
pub fn set_node_limits(limits: NodeLimits) -> Result<(), String> {
    let settings = settings()?;
    call::<Op, Settings>(settings, Op::SetLimits(limits.clone()), Some(TIMEOUT))
        .map_err(|err| format!("node settings: {err:?}"))?;
    registry::apply_limits(limits)
}

/// The limits in force on this node.
pub fn limits() -> NodeLimits {
    current()
        .map(|settings| settings.limits)
        .unwrap_or_default()
}

/// What the node's registry has seen: live agents, starts, failures and refusals.
pub fn node_stats() -> Result<NodeStats, String> {
    Ok(registry::stats()?.unwrap_or_else(|| NodeStats {
        limits: limits(),
        ..NodeStats::default()
    }))
}

/// Gives the node a NATS connection that its processes share: the NATS KV store
/// ([`StoreConfig::NatsKv`]) reaches JetStream through it. Joining a cluster sets it.
#[cfg(feature = "nats")]
pub fn set_node_nats(client: crate::nats::NatsClient) -> Result<(), String> {
    let settings = settings()?;
    call::<Op, Settings>(settings, Op::SetNats(client), Some(TIMEOUT))
        .map(|_| ())
        .map_err(|err| format!("node settings: {err:?}"))
}

/// The node's shared NATS connection, if one was set (see [`set_node_nats`]).
#[cfg(feature = "nats")]
pub fn nats_client() -> Option<crate::nats::NatsClient> {
    current()?.nats
}

/// The settings process, started if need be.
fn settings() -> Result<u64, String> {
    // Lunatic's atomic "get or spawn": the settings process runs no user code and never stops.
    match SettingsProcess::start_as(&NAME, Settings::default()) {
        Ok(settings) => Ok(settings.id()),
        Err(StartupError::NameAlreadyRegistered(settings)) => Ok(settings.id()),
        Err(err) => Err(format!("{err:?}")),
    }
}

/// The settings now, `None` if none were ever set on this node.
fn current() -> Option<Settings> {
    let settings = ProcessRef::<SettingsProcess>::lookup(&NAME)?;
    call::<Op, Settings>(settings.id(), Op::Get, Some(TIMEOUT)).ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    store: StoreConfig,
    limits: NodeLimits,
    #[cfg(feature = "nats")]
    nats: Option<crate::nats::NatsClient>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            store: StoreConfig::default_for_node(),
            limits: NodeLimits::default(),
            #[cfg(feature = "nats")]
            nats: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Get,
    SetStore(StoreConfig),
    SetLimits(NodeLimits),
    #[cfg(feature = "nats")]
    SetNats(crate::nats::NatsClient),
}

struct SettingsProcess;

impl AbstractProcess for SettingsProcess {
    type State = Settings;
    type Serializer = Wire;
    type Arg = Settings;
    type Handlers = (lunatic::ap::handlers::Message<Envelope<Op>>,);
    type StartupError = ();

    fn init(_: Config<Self>, settings: Settings) -> Result<Settings, ()> {
        Ok(settings)
    }
}

impl MessageHandler<Envelope<Op>> for SettingsProcess {
    fn handle(mut state: State<Self>, envelope: Envelope<Op>) {
        match envelope.message {
            Op::Get => {}
            Op::SetStore(store) => state.store = store,
            Op::SetLimits(limits) => state.limits = limits,
            #[cfg(feature = "nats")]
            Op::SetNats(client) => state.nats = Some(client),
        }
        if let Some(reply_to) = envelope.reply_to {
            reply_to.send(state.clone());
        }
    }
}

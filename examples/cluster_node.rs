//! A node of a swarm cluster: joins the cluster named by the environment, serves the `ledger` and
//! `chat-room` kinds through the cluster's front door, and runs until it is drained. Its `teller`
//! agents, served on this node only (`<ns>.via.<node name>.teller.<key>.<handler>`), call ledgers
//! through handles, wherever in the cluster those live.
//!
//! `scripts/cluster up` starts three of these next to a three-server NATS cluster; the fault tests
//! (`tests/support/cluster_faults.py`) start, kill, pause and drain them. Environment:
//!
//! - `SWARM_CLUSTER_SERVERS`: NATS URLs, comma-separated (default `nats://127.0.0.1:4222`);
//! - `SWARM_NAMESPACE` (default `demo`), `SWARM_NODE_NAME` (default `node`);
//! - `SWARM_LEASE_TTL_MS` (default 10000, at least 3000), `SWARM_REPLICAS` (default 1);
//! - `SWARM_WORKERS`: front-door workers per kind (default 2);
//! - `SWARM_MAX_AGENTS`: the node's `NodeLimits::max_agents` (a full node places new agents on
//!   the node with the most room);
//! - `SWARM_FRONT_DOOR=0`: hold agents but take no front-door requests (`scripts/bench-cluster`
//!   uses it to measure a call forwarded from another node);
//! - `SWARM_STAY_UP=1`: keep every ledger up across node losses (`ServeOptions::stay_up`).
//!
//! It prints `swarm-cluster-node ready name=.. id=.. incarnation=1` once it serves, and
//! `swarm-cluster-node drained name=.. ms=..` before it ends after a drain
//! (`_SWARM.<ns>.control.<name>.drain`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::cluster::{join, Cluster, ClusterConfig, ServeOptions};
use swarm::nats::{serve_agents, ConnectOptions};
use swarm::prelude::*;

/// An append-only list of numbers: what the fault tests write to, because every acknowledged
/// append names its position, which the final list must still hold.
#[agent(kind = "ledger")]
pub struct Ledger {
    #[key]
    id: String,
    #[persist]
    entries: Vec<u64>,
}

/// What an append answers: the list's length after it (the value's position), and the node that
/// served it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appended {
    pub len: u64,
    pub node: String,
}

#[agent]
impl Ledger {
    /// Appends `value`; acknowledged once the new list is saved in the cluster's KV bucket.
    #[handler]
    pub fn append(&mut self, value: u64) -> Appended {
        self.entries.push(value);
        Appended {
            len: self.entries.len() as u64,
            node: node_name(),
        }
    }

    /// The whole list.
    #[handler]
    pub fn entries(&self) -> Vec<u64> {
        self.entries.clone()
    }
}

/// Calls ledgers through handles from this node: the fault tests use it to check that a handle
/// reaches its agent wherever it lives, and follows it when it moves. It keeps each ledger's
/// handle between calls, as a program would.
#[agent(kind = "teller")]
pub struct Teller {
    #[key]
    id: String,
    ledgers: std::collections::HashMap<String, LedgerRef>,
}

/// Why a teller's call failed: the `CallError`'s kind on the wire, whether it was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub kind: String,
    pub applied: Option<bool>,
    pub message: String,
}

impl Failed {
    fn of(err: &CallError) -> Failed {
        Failed {
            kind: err.reason.wire_name().into(),
            applied: err.reason.applied(),
            message: err.to_string(),
        }
    }

    fn start(err: &StartError) -> Failed {
        Failed {
            kind: "start_failed".into(),
            applied: Some(false),
            message: err.to_string(),
        }
    }
}

#[agent]
impl Teller {
    /// Appends `value` to ledger `ledger` through its handle.
    #[handler]
    pub fn append(&mut self, ledger: String, value: u64) -> Result<Appended, Failed> {
        self.ledger(&ledger)?
            .append(value)
            .map_err(|err| Failed::of(&err))
    }

    /// Acts on ledger `ledger` through its handle: `alive`, `shutdown` or `kill`; answers
    /// whether it is alive (`alive`), and where the handle found it (a process id here, or
    /// `null` for another node).
    #[handler]
    pub fn control(&mut self, ledger: String, op: String) -> Result<(bool, Option<u64>), Failed> {
        let handle = self.ledger(&ledger)?;
        let alive = match op.as_str() {
            "alive" => handle.is_alive(),
            "shutdown" => handle
                .shutdown()
                .map_err(|err| Failed::of(&err))
                .map(|()| true)?,
            "kill" => {
                handle.kill();
                true
            }
            other => {
                return Err(Failed {
                    kind: "bad_arguments".into(),
                    applied: Some(false),
                    message: format!("no op {other:?}: alive, shutdown or kill"),
                })
            }
        };
        Ok((alive, handle.process_id()))
    }

    /// Reads ledger `ledger` `calls` times through its handle; answers the microseconds per read
    /// (`scripts/bench-cluster`: a handle's call to an agent here, and to one on another node).
    #[handler]
    pub fn time_reads(&mut self, ledger: String, calls: u32) -> Result<f64, Failed> {
        let handle = self.ledger(&ledger)?;
        let started = std::time::Instant::now();
        for _ in 0..calls {
            handle.entries().map_err(|err| Failed::of(&err))?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(calls.max(1)))
    }
}

impl Teller {
    /// The handle kept for `ledger` (it follows its agent when that moves), made on first use.
    fn ledger(&mut self, ledger: &str) -> Result<&LedgerRef, Failed> {
        if !self.ledgers.contains_key(ledger) {
            let handle =
                Ledger::get_or_start(ledger.to_owned()).map_err(|err| Failed::start(&err))?;
            self.ledgers.insert(ledger.to_owned(), handle);
        }
        Ok(&self.ledgers[ledger])
    }
}

/// A chat room, as in the README, for trying the cluster by hand.
#[agent(kind = "chat-room")]
pub struct ChatRoom {
    #[key]
    room: String,
    #[persist]
    history: Vec<String>,
}

#[agent]
impl ChatRoom {
    /// Posts a line; answers the number of lines.
    #[handler]
    pub fn post(&mut self, text: String) -> usize {
        self.history.push(text);
        self.history.len()
    }

    /// The last `n` lines.
    #[handler]
    pub fn last(&self, n: usize) -> Vec<String> {
        let from = self.history.len().saturating_sub(n);
        self.history[from..].to_vec()
    }
}

fn node_name() -> String {
    std::env::var("SWARM_NODE_NAME").unwrap_or_else(|_| "node".into())
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("cluster_node: {name}={text:?} is not valid");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

fn main() {
    if let Err(err) = run() {
        eprintln!("cluster_node: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let servers =
        std::env::var("SWARM_CLUSTER_SERVERS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let namespace = std::env::var("SWARM_NAMESPACE").unwrap_or_else(|_| "demo".into());
    let name = node_name();
    let config = ClusterConfig::new(
        ConnectOptions::new(servers.split(',').map(str::trim))?,
        namespace,
        name.clone(),
    )?
    .lease_ttl(Duration::from_millis(setting("SWARM_LEASE_TTL_MS", 10_000)))?
    .replicas(setting("SWARM_REPLICAS", 1))?;
    if let Ok(max) = std::env::var("SWARM_MAX_AGENTS") {
        let limits = swarm::NodeLimits {
            max_agents: max.parse()?,
            ..swarm::NodeLimits::default()
        };
        swarm::set_node_limits(limits)?;
    }
    let cluster = join(config)?;
    let workers = setting("SWARM_WORKERS", 2);
    let front_door = setting("SWARM_FRONT_DOOR", 1) != 0;
    for serve in [
        Cluster::serve_with::<Ledger>,
        Cluster::serve_with::<ChatRoom>,
    ] {
        serve(
            &cluster,
            ServeOptions {
                workers,
                front_door,
                stay_up: setting("SWARM_STAY_UP", 0) != 0,
                ..ServeOptions::default()
            },
        )?;
    }
    // Tellers are this node's own: reached on a subject that names it.
    serve_agents::<Teller>(
        cluster.client(),
        &format!("{}.via.{name}", cluster.namespace()),
        1,
    )?;
    println!(
        "swarm-cluster-node ready name={name} id={} incarnation=1",
        cluster.node_id()
    );
    let took = cluster.run_until_drained()?;
    println!(
        "swarm-cluster-node drained name={name} ms={}",
        took.as_millis()
    );
    Ok(())
}

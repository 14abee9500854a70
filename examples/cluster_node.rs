//! A node of a swarm cluster: joins the cluster named by the environment, serves the `ledger` and
//! `chat-room` kinds through the cluster's front door, and runs until it is drained.
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
//!   uses it to measure a call forwarded from another node).
//!
//! It prints `swarm-cluster-node ready name=.. id=.. incarnation=1` once it serves, and
//! `swarm-cluster-node drained name=.. ms=..` before it ends after a drain
//! (`_SWARM.<ns>.control.<name>.drain`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::cluster::{join, ClusterConfig};
use swarm::nats::ConnectOptions;
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
    if setting("SWARM_FRONT_DOOR", 1) == 0 {
        cluster.serve_owned_only::<Ledger>(workers)?;
        cluster.serve_owned_only::<ChatRoom>(workers)?;
    } else {
        cluster.serve::<Ledger>(workers)?;
        cluster.serve::<ChatRoom>(workers)?;
    }
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

//! A Lunatic node that serves the demo's agents (`swarm-demo-agents`) through NATS, for native
//! callers: the typed client `#[agent]` generates (`clients/rust`), the `swarm` CLI, or any NATS
//! client speaking JSON.
//!
//! Reads `SWARM_NATS_URL` (default `nats://127.0.0.1:4222`), `SWARM_NAMESPACE` (default `demo`)
//! and `SWARM_STORE_DIR` (the file store's directory; default: a memory store). With
//! `SWARM_METRICS_ADDR` (`host:port`; port 0 picks one) it serves Prometheus metrics, `/livez`
//! and `/readyz` there, and prints `swarm-agents-node metrics http://<host:port>/metrics`. Prints
//! `swarm-agents-node ready namespace=<ns>` once it serves, and runs until it is stopped.
//!
//! It keeps three rooms up under a supervision tree, so that an operator's view (`swarm
//! dashboard`, the services API's `observe` request) has a tree to show: `Rooms` restarts
//! `general` and `rust` alone, and runs `HelpDesk`, which restarts `help`. A post containing
//! "segfault" crashes a room (see `ChatRoom::post`); its supervisor restarts it with its history.

use std::time::Duration;

use swarm::nats::{serve_agents, ConnectOptions, NatsClient};
use swarm::{supervisor, StoreConfig};
use swarm_demo_agents::ChatRoom;

supervisor! {
    /// The node's rooms: a crashed room restarts alone, up to 10 times in 10 s.
    pub Rooms: one_for_one(max_restarts = 10, within_secs = 10) {
        general: ChatRoom("general"),
        rust: ChatRoom("rust"),
        desk: HelpDesk,
    }
}

supervisor! {
    /// A nested supervisor: the help room, given up on after 3 crashes in 10 s (its parent then
    /// starts the desk again).
    pub HelpDesk: rest_for_one(max_restarts = 3, within_secs = 10) {
        help: ChatRoom("help"),
    }
}

fn main() {
    if let Err(err) = run() {
        eprintln!("agents_node: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("SWARM_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let namespace = std::env::var("SWARM_NAMESPACE").unwrap_or_else(|_| "demo".into());
    let store = match std::env::var("SWARM_STORE_DIR") {
        Ok(dir) => StoreConfig::file(dir),
        Err(_) => StoreConfig::memory("agents-node"),
    };
    swarm::set_default_store(store)?;
    let client = NatsClient::connect(ConnectOptions::new([url.as_str()])?.name("agents-node"))?;
    // Before the agents start: agents started while metrics are off count nothing.
    if let Some(metrics) = swarm::metrics::MetricsConfig::from_env() {
        let bound = swarm::metrics::serve(metrics.nats(&client))?;
        println!("swarm-agents-node metrics http://{bound}/metrics");
    }
    // After metrics (so the rooms count their calls), before the front door (so a call to one
    // of them finds the supervised agent rather than starting one of its own).
    let _tree = Rooms::start()?;
    let _rooms = serve_agents::<ChatRoom>(&client, &namespace, 2)?;
    println!("swarm-agents-node ready namespace={namespace}");
    loop {
        lunatic::sleep(Duration::from_secs(3600));
    }
}

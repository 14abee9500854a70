//! A Lunatic node that serves the demo's agents (`swarm-demo-agents`) through NATS, for native
//! callers: the typed client `#[agent]` generates (`clients/rust`), the `swarm` CLI, or any NATS
//! client speaking JSON.
//!
//! Reads `SWARM_NATS_URL` (default `nats://127.0.0.1:4222`), `SWARM_NAMESPACE` (default `demo`)
//! and `SWARM_STORE_DIR` (the file store's directory; default: a memory store). With
//! `SWARM_METRICS_ADDR` (`host:port`; port 0 picks one) it serves Prometheus metrics, `/livez`
//! and `/readyz` there, and prints `swarm-agents-node metrics http://<host:port>/metrics`. Prints
//! `swarm-agents-node ready namespace=<ns>` once it serves, and runs until it is stopped.

use std::time::Duration;

use swarm::nats::{serve_agents, ConnectOptions, NatsClient};
use swarm::StoreConfig;
use swarm_demo_agents::ChatRoom;

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
    let _rooms = serve_agents::<ChatRoom>(&client, &namespace, 2)?;
    println!("swarm-agents-node ready namespace={namespace}");
    loop {
        lunatic::sleep(Duration::from_secs(3600));
    }
}

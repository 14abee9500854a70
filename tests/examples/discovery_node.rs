//! A node serving two agent kinds through the NATS front door, for
//! `tests/support/discovery_check.py`, which starts two of these as OS processes and checks their
//! NATS services API (`$SRV.PING|INFO|STATS`) with a stock client in another language.
//!
//! Reads `SWARM_NATS_URL` (the server) and `SWARM_DISCOVERY_NS` (the namespace), serves
//! `counter` and `account` (from the test support library) with two workers each, prints
//! `serving <service name> <service id>` once both are subscribed, and runs until it is killed.
//!
//! With `SWARM_METRICS_ADDR` set (for `tests/support/metrics_check.py`) it also serves metrics,
//! liveness and readiness there (printing `metrics <host:port>` first), with this connection's
//! figures, and starts a supervisor `Watched` over the counter `watched`, so that a crash of
//! that counter through the front door shows up as a restart, and `Fragile` over `fragile`,
//! which gives up on a second crash (the node is then not ready). With `SWARM_OTLP_ADDR`
//! (`host:port`) it exports a span per traced call to that OTLP/HTTP collector.

use std::time::Duration;

use swarm::metrics::MetricsConfig;
use swarm::nats::{serve_agents, serve_discovery, ConnectOptions, NatsClient};
use swarm::{supervisor, StoreConfig};
use swarm_tests::{Account, Counter};

supervisor! {
    /// Restarts the counter `watched` (up to 100 times in 10 s: the check crashes it on purpose).
    pub Watched: one_for_one(max_restarts = 100, within_secs = 10) {
        watched: Counter("watched"),
    }
}

supervisor! {
    /// Gives up on the second crash of `fragile` within 10 s: the node is then not ready.
    pub Fragile: one_for_one(max_restarts = 1, within_secs = 10) {
        fragile: Counter("fragile"),
    }
}

fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the NATS server");
    let namespace =
        std::env::var("SWARM_DISCOVERY_NS").expect("SWARM_DISCOVERY_NS names the namespace");
    swarm::set_default_store(StoreConfig::memory("discovery-node")).expect("a memory store");
    let options = ConnectOptions::new([url.as_str()])
        .expect("a valid server URL")
        .name("discovery-node");
    let client = NatsClient::connect(options).expect("the NATS server accepts the node");
    // Before any agent starts: agents started while metrics are off count nothing.
    if let Ok(collector) = std::env::var("SWARM_OTLP_ADDR") {
        swarm::metrics::export_spans(&collector, "discovery-node").expect("spans are exported");
    }
    let metrics = MetricsConfig::from_env().map(|config| {
        let bound = swarm::metrics::serve(config.nats(&client)).expect("metrics are served");
        println!("metrics {bound}");
        (
            Watched::start().expect("the supervisor starts"),
            Fragile::start().expect("the supervisor starts"),
        )
    });
    let _counters = serve_agents::<Counter>(&client, &namespace, 2).expect("serves counters");
    let _accounts = serve_agents::<Account>(&client, &namespace, 2).expect("serves accounts");
    // Already running (serve_agents started it): this only reads the instance's name and id.
    let service = serve_discovery(&client, &namespace, None).expect("the services API runs");
    println!("serving {} {}", service.name, service.id);
    let _watched = metrics;
    loop {
        lunatic::sleep(Duration::from_secs(3600));
    }
}

//! A node serving two agent kinds through the NATS front door, for
//! `tests/support/discovery_check.py`, which starts two of these as OS processes and checks their
//! NATS services API (`$SRV.PING|INFO|STATS`) with a stock client in another language.
//!
//! Reads `SWARM_NATS_URL` (the server) and `SWARM_DISCOVERY_NS` (the namespace), serves
//! `counter` and `account` (from the test support library) with two workers each, prints
//! `serving <service name> <service id>` once both are subscribed, and runs until it is killed.

use std::time::Duration;

use swarm::nats::{serve_agents, serve_discovery, ConnectOptions, NatsClient};
use swarm::StoreConfig;
use swarm_tests::{Account, Counter};

fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the NATS server");
    let namespace =
        std::env::var("SWARM_DISCOVERY_NS").expect("SWARM_DISCOVERY_NS names the namespace");
    swarm::set_default_store(StoreConfig::memory("discovery-node")).expect("a memory store");
    let options = ConnectOptions::new([url.as_str()])
        .expect("a valid server URL")
        .name("discovery-node");
    let client = NatsClient::connect(options).expect("the NATS server accepts the node");
    let _counters = serve_agents::<Counter>(&client, &namespace, 2).expect("serves counters");
    let _accounts = serve_agents::<Account>(&client, &namespace, 2).expect("serves accounts");
    // Already running (serve_agents started it): this only reads the instance's name and id.
    let service = serve_discovery(&client, &namespace, None).expect("the services API runs");
    println!("serving {} {}", service.name, service.id);
    loop {
        lunatic::sleep(Duration::from_secs(3600));
    }
}

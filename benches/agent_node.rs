//! A node whose agents answer through NATS, for the "native client calling an agent" rows of
//! `scripts/bench-nats`: serves `bench.bench-echo.<key>.echo` with 16 worker processes and runs
//! until killed (at most 10 minutes).

use std::time::Duration;

use swarm::nats::{serve_agents, ConnectOptions, NatsClient};
use swarm::prelude::*;

#[agent(kind = "bench-echo")]
pub struct EchoAgent {
    #[key]
    id: String,
    served: u64,
}

#[agent]
impl EchoAgent {
    #[handler]
    pub fn echo(&mut self, text: String) -> String {
        self.served += 1;
        text
    }
}

fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let client = NatsClient::connect(ConnectOptions::new([url.as_str()]).expect("a valid URL"))
        .expect("connects");
    let service = serve_agents::<EchoAgent>(&client, "bench", 16).expect("serves");
    println!("READY {}", service.subject());
    lunatic::sleep(Duration::from_secs(600));
}

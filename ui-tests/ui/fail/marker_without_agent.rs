use swarm::prelude::*;

// Forgot `#[agent]` on the struct.
pub struct Counter {
    #[key]
    name: String,
    #[persist]
    total: u64,
}

fn main() {}

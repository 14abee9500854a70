use swarm::prelude::*;

/// `Default`, but not `Serialize`/`Deserialize`: it cannot be saved.
#[derive(Default)]
pub struct Stats {
    calls: u64,
}

#[agent]
pub struct Counter {
    #[key]
    name: String,
    #[persist]
    stats: Stats,
}

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

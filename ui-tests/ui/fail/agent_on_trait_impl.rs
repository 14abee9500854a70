use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

pub trait Total {
    fn total(&self) -> u64;
}

#[agent]
impl Total for Counter {
    fn total(&self) -> u64 {
        self.total
    }
}

fn main() {}

use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[persist]
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

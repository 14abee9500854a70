use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    #[persist]
    name: String,
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

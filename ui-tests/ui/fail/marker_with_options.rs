use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    #[persist(every = "1s")]
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

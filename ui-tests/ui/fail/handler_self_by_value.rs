use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn add(self, n: u64) -> u64 {
        self.total + n
    }
}

fn main() {}

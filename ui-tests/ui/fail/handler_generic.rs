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
    pub fn add<N: Into<u64>>(&mut self, n: N) -> u64 {
        self.total += n.into();
        self.total
    }
}

fn main() {}

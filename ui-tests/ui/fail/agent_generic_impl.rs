use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl<T> Counter {
    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }
}

fn main() {}

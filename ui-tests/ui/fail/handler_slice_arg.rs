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
    pub fn add_all(&mut self, amounts: &[u64]) -> u64 {
        self.total += amounts.iter().sum::<u64>();
        self.total
    }
}

fn main() {}

use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

// Forgot `#[agent]` on the impl block (or the impl block altogether).
impl Counter {
    pub fn total(&self) -> u64 {
        self.total
    }
}

fn main() {}

use swarm::prelude::*;

// Forgot `#[agent]` on the struct.
pub struct Counter {
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }
}

fn main() {}

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
    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }
}

// Handlers split over a second `#[agent]` impl block.
#[agent]
impl Counter {
    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }
}

fn main() {}

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

    #[handler]
    pub fn add(&mut self, n: u32) -> u64 {
        self.total += u64::from(n);
        self.total
    }
}

fn main() {}

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
    pub unsafe fn reset(&mut self) {
        self.total = 0;
    }
}

fn main() {}

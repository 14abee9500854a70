use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[on_stop]
    fn stopping(&mut self) -> u64 {
        self.total
    }
}

fn main() {}

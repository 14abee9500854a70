use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[on_start]
    fn started(&mut self, initial: u64) {
        self.total = initial;
    }
}

fn main() {}

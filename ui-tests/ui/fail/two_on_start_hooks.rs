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
    fn started(&mut self) {
        self.total = 0;
    }

    #[on_start]
    fn also_started(&mut self) {
        self.total = 1;
    }
}

fn main() {}

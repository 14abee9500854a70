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
    fn started(&self) {
        let _ = self.total;
    }
}

fn main() {}

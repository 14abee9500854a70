use swarm::prelude::*;

#[agent(persistence = "write_behind", save_every = "200ms")]
pub struct Ticker {
    #[key]
    id: String,
    ticks: u64,
}

#[agent]
impl Ticker {
    #[handler]
    pub fn tick(&mut self) {
        self.ticks += 1;
    }
}

fn main() {}

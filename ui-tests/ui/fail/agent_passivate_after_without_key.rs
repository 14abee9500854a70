use swarm::prelude::*;

#[agent(passivate_after = "5m")]
#[derive(Default)]
pub struct Worker {
    jobs: u64,
}

#[agent]
impl Worker {
    #[handler]
    pub fn run(&mut self) -> u64 {
        self.jobs += 1;
        self.jobs
    }
}

fn main() {}

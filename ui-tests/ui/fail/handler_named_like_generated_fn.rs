use swarm::prelude::*;

/// Without a `#[key]`, `#[agent]` generates `Worker::start()`.
#[agent]
pub struct Worker {
    jobs: u64,
}

#[agent]
impl Worker {
    #[handler]
    pub fn start(&mut self) {
        self.jobs += 1;
    }
}

fn main() {}

use swarm::prelude::*;

// An agent without a `#[key]` whose impl block lacks `#[agent]`: one error, at the struct's
// `#[agent]`, however many generated functions (start, its use as a supervisor's child) need
// the impl block.
#[agent]
pub struct Worker {
    jobs: u64,
}

impl Worker {
    pub fn jobs(&self) -> u64 {
        self.jobs
    }
}

fn main() {}

use swarm::prelude::*;

#[agent]
pub fn counter() -> u64 {
    0
}

fn main() {}

use swarm::prelude::*;

#[handler]
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {
    let _ = add(1, 2);
}

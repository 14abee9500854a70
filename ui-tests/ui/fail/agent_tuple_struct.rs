use swarm::prelude::*;

#[agent]
pub struct Counter(String, u64);

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

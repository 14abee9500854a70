use swarm::prelude::*;

#[agent]
pub struct Cache<V> {
    #[key]
    name: String,
    entries: Vec<V>,
}

#[agent]
impl<V> Cache<V> {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

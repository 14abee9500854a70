use swarm::prelude::*;

#[agent(state_version = 2)]
pub struct Ping {
    #[key]
    id: String,
}

#[agent]
impl Ping {
    #[handler]
    pub fn ping(&self) {}
}

fn main() {}

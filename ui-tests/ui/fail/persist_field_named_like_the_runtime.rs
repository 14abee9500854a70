use swarm::prelude::*;

#[agent(state_version = 2)]
pub struct Person {
    #[key]
    id: String,
    #[persist]
    __swarm_version: u32,
}

#[agent]
impl Person {
    #[migrate(from = 1)]
    fn from_v1(old: swarm::record::Fields) -> swarm::record::Fields {
        old
    }
}

fn main() {}

use swarm::prelude::*;

#[agent]
pub enum Light {
    On,
    Off,
}

fn main() {}

use swarm::prelude::*;

#[derive(serde::Deserialize, serde::Serialize)]
pub struct V1 {
    name: String,
}

#[migrate(from = 1)]
fn from_v1(old: V1) -> V1 {
    old
}

fn main() {}

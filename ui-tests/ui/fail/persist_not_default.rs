use serde::{Deserialize, Serialize};
use swarm::prelude::*;

/// Serializable, but without `Default`: a fresh agent cannot start with it.
#[derive(Serialize, Deserialize)]
pub struct Limits {
    max: u64,
}

#[agent]
pub struct Counter {
    #[key]
    name: String,
    #[persist]
    limits: Limits,
}

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

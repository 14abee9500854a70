use swarm::prelude::*;

/// Not `Serialize`/`Deserialize`: it cannot travel back in a reply.
pub struct Total(u64);

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn total(&self) -> Total {
        Total(self.total)
    }
}

fn main() {}

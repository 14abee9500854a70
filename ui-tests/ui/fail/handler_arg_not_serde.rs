use swarm::prelude::*;

/// Not `Serialize`/`Deserialize`: it cannot travel in a message.
pub struct Amount(u64);

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn add(&mut self, amount: Amount) -> u64 {
        self.total += amount.0;
        self.total
    }
}

fn main() {}

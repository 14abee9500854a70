use swarm::prelude::*;

#[agent]
pub struct Account {
    #[key]
    bank: String,
    #[key]
    number: u64,
    #[persist]
    balance: i64,
}

#[agent]
impl Account {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

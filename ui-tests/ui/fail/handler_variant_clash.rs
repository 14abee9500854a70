use swarm::prelude::*;

#[agent]
pub struct Counter {
    #[key]
    name: String,
    total: u64,
}

#[agent]
impl Counter {
    #[handler]
    pub fn get_count(&self) -> u64 {
        self.total
    }

    #[handler]
    #[allow(non_snake_case)]
    pub fn getCount(&self) -> u64 {
        self.total
    }
}

fn main() {}

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
    pub async fn add(self, n: &u64) -> u64 {
        self.total + n
    }

    #[on_stop]
    fn stopping(&mut self, why: String) -> bool {
        why.is_empty()
    }
}

fn main() {}

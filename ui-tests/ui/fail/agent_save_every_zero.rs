use swarm::prelude::*;

#[agent(persistence = "write_behind", save_every = "0ms")]
pub struct Basket {
    #[key]
    id: String,
    #[persist]
    items: Vec<String>,
}

#[agent]
impl Basket {
    #[handler]
    pub fn add(&mut self, item: String) {
        self.items.push(item);
    }
}

fn main() {}

use swarm::prelude::*;

#[agent(persistence = "write_through", save_every = "1s")]
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

use swarm::prelude::*;

#[agent]
pub struct Greeter {
    #[key]
    name: String,
    last: String,
}

#[agent]
impl Greeter {
    #[handler]
    pub fn last(&self) -> &String {
        &self.last
    }
}

fn main() {}

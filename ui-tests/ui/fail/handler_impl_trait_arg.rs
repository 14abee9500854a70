use swarm::prelude::*;

#[agent]
pub struct Greeter {
    #[key]
    name: String,
    greeted: Vec<String>,
}

#[agent]
impl Greeter {
    #[handler]
    pub fn greet(&mut self, who: impl Into<String>) {
        self.greeted.push(who.into());
    }
}

fn main() {}

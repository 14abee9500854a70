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
    pub fn greet(&mut self, who: &str) -> String {
        self.greeted.push(who.to_owned());
        format!("hello, {who}")
    }
}

fn main() {}

use swarm::prelude::*;

#[agent(message_budget = "0ms")]
pub struct Session {
    #[key]
    id: String,
}

#[agent]
impl Session {
    #[handler]
    pub fn touch(&mut self) {}
}

fn main() {}

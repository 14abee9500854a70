use swarm::prelude::*;

#[agent(passivate_after = "0s")]
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

use swarm::prelude::*;

#[agent(passivate_after = "30 seconds")]
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

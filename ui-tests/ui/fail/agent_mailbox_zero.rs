use swarm::prelude::*;

#[agent(mailbox = 0)]
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

use swarm::prelude::*;

#[agent(max_memory = "512KiB")]
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

use swarm::prelude::*;

/// No `Default`: an ephemeral field starts as `Default::default()` after every start.
pub struct Connection {
    open: bool,
}

#[agent]
pub struct Counter {
    #[key]
    name: String,
    connection: Connection,
}

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

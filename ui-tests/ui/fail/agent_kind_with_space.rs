use swarm::prelude::*;

#[agent(kind = "chat room")]
pub struct ChatRoom {
    #[key]
    room: String,
    members: Vec<String>,
}

#[agent]
impl ChatRoom {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

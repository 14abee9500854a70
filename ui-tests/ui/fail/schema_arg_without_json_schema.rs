use serde::{Deserialize, Serialize};
use swarm::prelude::*;

/// serde, but no `JsonSchema`: `#[agent(schema)]` cannot publish what `post` takes.
#[derive(Serialize, Deserialize)]
pub enum Mood {
    Calm,
    Loud,
}

#[agent(kind = "chat-room")]
pub struct ChatRoom {
    #[key]
    room: String,
    posts: u64,
}

#[agent(schema)]
impl ChatRoom {
    #[handler]
    pub fn post(&mut self, text: String, mood: Mood) -> u64 {
        drop((text, mood));
        self.posts += 1;
        self.posts
    }
}

fn main() {}

//! `#[agent(schema)]`: every handler's argument and answer types have a JSON Schema, derived
//! through swarm's re-export (no direct `schemars` dependency), including a `Result` answer, an
//! optional argument and a fire-and-forget handler.

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize, swarm::JsonSchema)]
#[schemars(crate = "swarm::schemars")]
pub enum ChatError {
    TooLong { max: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize, swarm::JsonSchema)]
#[schemars(crate = "swarm::schemars")]
pub struct Post {
    pub author: String,
    pub text: String,
}

#[agent(kind = "chat-room")]
pub struct ChatRoom {
    #[key]
    room: String,
    #[persist]
    history: Vec<Post>,
}

#[agent(schema)]
impl ChatRoom {
    #[handler]
    pub fn post(&mut self, author: String, text: String, max: Option<usize>) -> Result<usize, ChatError> {
        let max = max.unwrap_or(280);
        if text.len() > max {
            return Err(ChatError::TooLong { max });
        }
        self.history.push(Post { author, text });
        Ok(self.history.len() - 1)
    }

    #[handler]
    pub fn clear(&mut self) {
        self.history.clear();
    }

    #[handler]
    pub fn history(&self) -> Vec<Post> {
        self.history.clone()
    }
}

#[allow(dead_code)]
fn usage() {
    use swarm::__private::AgentBehavior;
    let _: Option<Vec<swarm::schema::HandlerSchemas>> = ChatRoom::schemas();
}

fn main() {}

//! The demo's agents, defined once for both sides:
//! - inside Lunatic (a build for `wasm32-wasip1`) they are agents: `examples/chat.rs` runs them
//!   under a supervisor, `examples/agents_node.rs` serves them through NATS;
//! - in a native build with the `client` feature, `#[agent]` makes a typed async client of each
//!   (`ChatRoom::client(&client).key("lobby").post(..)`), which `clients/rust` uses. The
//!   handlers' bodies are compiled for Lunatic only; their signatures are the client's.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

/// One message in a room's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, swarm::JsonSchema)]
#[schemars(crate = "swarm::schemars")]
pub struct Post {
    pub author: String,
    pub text: String,
}

/// Why a post was refused (data: it reaches the caller inside `Ok`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, swarm::JsonSchema)]
#[schemars(crate = "swarm::schemars")]
pub enum ChatError {
    NotAMember(String),
    EmptyText,
}

/// A chat room that keeps its history across crashes and restarts.
#[agent(kind = "chat-room")]
pub struct ChatRoom {
    #[key]
    room: String,
    /// Saved after every change, before the poster gets an answer.
    #[persist]
    history: Vec<Post>,
    /// Who is in the room now: ephemeral, empty again after a restart.
    members: BTreeSet<String>,
}

// `schema`: a node serving rooms publishes each handler's JSON Schemas in its services API, for
// callers in other languages (see `swarm::schema`).
#[agent(schema)]
impl ChatRoom {
    /// Someone walks in (fire-and-forget).
    #[handler]
    pub fn join(&mut self, who: String) {
        self.members.insert(who);
    }

    /// Posts a message; returns how many posts the room has.
    #[handler]
    pub fn post(&mut self, author: String, text: String) -> Result<usize, ChatError> {
        if !self.members.contains(&author) {
            return Err(ChatError::NotAMember(author));
        }
        if text.trim().is_empty() {
            return Err(ChatError::EmptyText);
        }
        if text.contains("segfault") {
            // A bug in the room's code: the agent crashes, the post is never saved.
            panic!("the word filter tripped over {text:?}");
        }
        self.history.push(Post { author, text });
        Ok(self.history.len())
    }

    #[handler]
    pub fn history(&self) -> Vec<Post> {
        self.history.clone()
    }

    #[handler]
    pub fn members(&self) -> Vec<String> {
        self.members.iter().cloned().collect()
    }

    #[on_start]
    fn opened(&mut self) {
        println!(
            "    [{}] room process up, {} posts loaded from the store",
            self.room,
            self.history.len()
        );
    }

    #[on_stop]
    fn closing(&mut self) {
        println!("    [{}] closing in order, history saved", self.room);
    }
}

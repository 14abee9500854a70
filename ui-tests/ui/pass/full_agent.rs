//! Everything at once: a `#[key]`, `#[persist]`ed and ephemeral fields, requests and
//! fire-and-forget messages on `&mut self` and `&self`, doc comments, a plain method next to the
//! handlers, and both hooks (`#[on_start]` returning a `Result`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Post {
    pub author: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatError {
    NotAMember(String),
    Empty,
}

#[agent(kind = "chat-room", persistence = "write_behind", save_every = "200ms")]
pub struct ChatRoom {
    #[key]
    room: String,
    #[persist]
    history: Vec<Post>,
    #[persist]
    stops: u32,
    members: BTreeSet<String>,
    loaded: usize,
}

#[agent]
impl ChatRoom {
    /// Adds a post by a member; answers its position in the history.
    #[handler]
    pub fn post(&mut self, author: String, text: String) -> Result<usize, ChatError> {
        if !self.members.contains(&author) {
            return Err(ChatError::NotAMember(author));
        }
        if text.is_empty() {
            return Err(ChatError::Empty);
        }
        self.history.push(Post { author, text });
        Ok(self.history.len() - 1)
    }

    /// Fire-and-forget.
    #[handler]
    pub fn join(&mut self, who: String) {
        self.members.insert(who);
    }

    #[handler]
    pub fn history(&self) -> Vec<Post> {
        self.history.clone()
    }

    #[handler]
    pub fn stats(&self) -> (usize, u32, usize) {
        (self.loaded, self.stops, self.members.len())
    }

    /// A plain method in the same block stays a plain method.
    fn member_count(&self) -> usize {
        self.members.len()
    }

    #[on_start]
    fn loaded(&mut self) -> Result<(), String> {
        self.loaded = self.history.len();
        Ok(())
    }

    #[on_stop]
    fn stopping(&mut self) {
        self.stops += 1;
        let _ = self.member_count();
    }
}

/// Never run (pass cases are only built, see tests/ui.rs): type-checks the caller's side of the
/// generated API, `ChatRoom::launcher()`, `ChatRoom::get_or_start`/`lookup` and `ChatRoomRef`.
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let room: ChatRoomRef = ChatRoom::launcher()
        .store(StoreConfig::memory("ui-pass"))
        .get_or_start("lobby")?;
    let same: Option<ChatRoomRef> = ChatRoom::lookup(String::from("lobby"));
    let _: ChatRoomRef = ChatRoom::get_or_start("lobby")?;
    // A request answers the handler's return value, inside the delivery result.
    let posted: Result<usize, ChatError> = room.post("ann".into(), "hi".into())?;
    // A fire-and-forget message answers `()` once it is in the mailbox.
    let (): () = room.join("ann".into())?;
    let _: Vec<Post> = room.history()?;
    let _: (usize, u32, usize) = room.stats()?;
    // Everything of `AgentHandle` too.
    let _: &str = room.key();
    let _: bool = room.is_alive();
    let _: ChatRoomRef = room.with_timeout(std::time::Duration::from_secs(1));
    room.shutdown()?;
    // The message enum is public, one variant per handler.
    let _ = ChatRoomMsg::Post {
        author: String::new(),
        text: String::new(),
    };
    let _ = (posted, same);
    Ok(())
}

fn main() {
    let _ = usage;
}

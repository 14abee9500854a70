//! The README's demo: chat rooms as agents whose history survives crashes.
//!
//! Run it with `scripts/demo` (or `cargo run -p swarm-examples --example chat --target
//! wasm32-wasip1` once `scripts/setup` has run).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Post {
    pub author: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[agent]
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

fn main() {
    println!("swarm demo: chat rooms are agents; their history is #[persist]ed to files under examples/demo-data\n");
    swarm::set_default_store(StoreConfig::file("examples/demo-data"))
        .expect("the store directory is writable");

    println!("1. Two rooms start on first use (one Lunatic process each).");
    let lobby = ChatRoom::get_or_start("lobby").unwrap();
    let rust = ChatRoom::get_or_start("rust").unwrap();
    for who in ["ada", "grace"] {
        lobby.join(who.into()).unwrap();
    }
    rust.join("linus".into()).unwrap();

    println!("\n2. Requests wait for the handler's answer; user errors come back as data.");
    println!(
        "   ada posts in lobby        -> {:?}",
        lobby.post("ada".into(), "hello, swarm".into()).unwrap()
    );
    println!(
        "   grace posts in lobby      -> {:?}",
        lobby.post("grace".into(), "hi ada".into()).unwrap()
    );
    println!(
        "   linus posts in rust       -> {:?}",
        rust.post("linus".into(), "ownership!".into()).unwrap()
    );
    println!(
        "   bob (not a member) posts  -> {:?}",
        lobby.post("bob".into(), "let me in".into()).unwrap()
    );
    println!(
        "   ada posts nothing         -> {:?}",
        lobby.post("ada".into(), "   ".into()).unwrap()
    );

    println!("\n3. A bug: a post makes the lobby's handler panic.");
    match lobby.post("grace".into(), "segfault".into()) {
        Err(err) => println!("   the caller gets an error, not a hang: {err}"),
        Ok(answer) => println!("   unexpected answer {answer:?}"),
    }
    println!("   lobby still alive? {}", lobby.is_alive());

    println!(
        "\n4. The lobby comes back with every acknowledged post (its members were ephemeral)."
    );
    let lobby = ChatRoom::get_or_start("lobby").unwrap();
    for post in lobby.history().unwrap() {
        println!("   {}: {}", post.author, post.text);
    }
    println!(
        "   members after the restart: {:?}",
        lobby.members().unwrap()
    );

    println!("\n5. The rust room's process is killed from outside, as a node fault would.");
    rust.kill();
    while rust.is_alive() {
        lunatic::sleep(Duration::from_millis(1));
    }
    let err = rust.history().unwrap_err();
    println!("   a call to the dead process: {err}");
    let rust = ChatRoom::get_or_start("rust").unwrap();
    println!(
        "   restarted, its history: {:?}",
        rust.history()
            .unwrap()
            .iter()
            .map(|p| &p.text)
            .collect::<Vec<_>>()
    );

    println!("\n6. An orderly shutdown runs the stop hooks.");
    lobby.shutdown().unwrap();
    rust.shutdown().unwrap();
    println!("\ndone: run it again and the rooms start with their saved history.");
}

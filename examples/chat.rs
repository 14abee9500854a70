//! The README's demo: chat rooms as agents whose history survives crashes.
//!
//! Run it with `scripts/demo` (or `cargo run -p swarm-examples --example chat --target
//! wasm32-wasip1` once `scripts/setup` has run).

use std::time::Duration;

use swarm::prelude::*;
use swarm_demo_agents::{ChatRoom, ChatRoomRef};

supervisor! {
    /// Restarts a crashed room alone, at most 3 times in 10 s; past that it gives up.
    pub ChatService: one_for_one(max_restarts = 3, within_secs = 10) {
        lobby: ChatRoom("lobby"),
        rust: ChatRoom("rust"),
    }
}

/// Waits until the supervisor runs a new process for `old`'s child (bounded).
fn restarted(
    service: &ChatServiceRef,
    old: &ChatRoomRef,
    pick: fn(&ChatServiceRef) -> Option<ChatRoomRef>,
) -> ChatRoomRef {
    for _ in 0..1000 {
        if let Some(now) = pick(service) {
            if now.process_id() != old.process_id() {
                return now;
            }
        }
        lunatic::sleep(Duration::from_millis(2));
    }
    panic!("the room was not restarted within 2 s");
}

fn main() {
    println!("swarm demo: chat rooms are agents under a supervisor; their history is #[persist]ed to files under examples/demo-data\n");
    swarm::set_default_store(StoreConfig::file("examples/demo-data"))
        .expect("the store directory is writable");

    println!("1. The supervisor starts the two rooms, in order (one Lunatic process each).");
    let service = ChatService::start().expect("the rooms start");
    let lobby = service.lobby().unwrap();
    let rust = service.rust().unwrap();
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
    let lobby = restarted(&service, &lobby, |s| s.lobby().ok());
    println!("   the supervisor restarted it; every acknowledged post is back:");
    for post in lobby.history().unwrap() {
        println!("     {}: {}", post.author, post.text);
    }
    println!(
        "   members after the restart (ephemeral): {:?}",
        lobby.members().unwrap()
    );

    println!("\n4. The rust room's process is killed from outside, as a fault would.");
    rust.kill();
    let rust = restarted(&service, &rust, |s| s.rust().ok());
    println!(
        "   restarted by the supervisor, its history: {:?}",
        rust.history()
            .unwrap()
            .iter()
            .map(|p| &p.text)
            .collect::<Vec<_>>()
    );

    println!("\n5. A crash loop: the lobby keeps crashing; past 3 restarts in 10 s the supervisor gives up.");
    // Every restart counts, the two above included (OTP counts them per supervisor).
    for round in 1..=5 {
        let Ok(lobby) = service.lobby() else { break };
        lobby.join("grace".into()).unwrap();
        let _ = lobby.post("grace".into(), format!("segfault #{round}"));
        for _ in 0..1000 {
            let moved_on = service
                .lobby()
                .map(|now| now.process_id() != lobby.process_id());
            if !service.supervisor().is_alive() || moved_on.unwrap_or(false) {
                break;
            }
            lunatic::sleep(Duration::from_millis(2));
        }
    }
    println!(
        "   supervisor alive: {}; a call to the lobby now: {:?}",
        service.supervisor().is_alive(),
        service.lobby().err().map(|e| e.to_string())
    );

    println!("\n6. The history outlives the whole tree: a new service starts with it.");
    let service = ChatService::start().expect("the rooms start again");
    println!(
        "   lobby posts: {}, rust posts: {}",
        service.lobby().unwrap().history().unwrap().len(),
        service.rust().unwrap().history().unwrap().len()
    );
    service.supervisor().shutdown().unwrap();
    println!("\ndone: run it again and the rooms start with their saved history.");
}

//! The demo's chat rooms, called from a native program through the typed client that
//! `#[agent]` generates from the same definition the Lunatic node runs
//! (`examples/agents/src/lib.rs`).
//!
//! Start a node first (`scripts/demo` does both), then:
//! `cargo run --manifest-path clients/rust/Cargo.toml -- [nats-url] [namespace]`.

use std::process::ExitCode;
use std::time::Duration;

use swarm::client::Client;
use swarm_demo_agents::ChatRoom;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let namespace = args.next().unwrap_or_else(|| "demo".into());
    match run(&url, &namespace).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat-client: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, namespace: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(url, namespace)
        .await?
        .with_timeout(Duration::from_secs(5));
    let room = ChatRoom::client(&client).key("native");
    // Fire-and-forget: published, not awaited by anyone. The node's front door has several
    // workers, so a request sent next may overtake it: wait until the room has the member.
    room.join("tokio".to_owned()).await?;
    for _ in 0..100 {
        if room.members().await?.iter().any(|member| member == "tokio") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let posted = room
        .post("tokio".to_owned(), "hello from a native program".to_owned())
        .await?;
    println!("   native post            -> {posted:?}");
    let refused = room
        .post("nobody".to_owned(), "let me in".to_owned())
        .await?;
    println!("   a non-member's post    -> {refused:?}");
    let history = room.history().await?;
    println!(
        "   the room's history     -> {} post(s), the last by {:?}",
        history.len(),
        history.last().map(|post| &post.author)
    );
    match ChatRoom::client(&client).key("not a key!").history().await {
        Err(err) => println!("   an invalid key         -> {err}"),
        Ok(posts) => println!("   an invalid key answered {posts:?}"),
    }
    Ok(())
}

//! The generated client against hand-written async-nats code calling the same agent: one
//! `chat-room` agent's `history` (a read, answered with its posts as JSON), on a node started by
//! `scripts/bench-client`. Both sides share one connection kind and do the same work: build the
//! JSON arguments, request, decode `{"ok": [...]}` into `Vec<Post>`. Prints one line per side and
//! shape; the script takes medians over rounds and prints the ratios.

use std::time::{Duration, Instant};

use serde::Deserialize;
use swarm::client::Client;
use swarm_demo_agents::{ChatRoom, Post};

#[derive(Deserialize)]
struct Reply {
    ok: Vec<Post>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("SWARM_NATS_URL")?;
    let namespace = std::env::var("SWARM_NAMESPACE")?;
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let nats = async_nats::connect(&url).await?;
    let client = Client::new(nats.clone(), &namespace)?.with_timeout(Duration::from_secs(10));
    let room = ChatRoom::client(&client).key("bench");
    // The room has one post, so that both sides decode a non-empty answer.
    room.join("bench".to_owned()).await?;
    while !room.members().await?.iter().any(|m| m == "bench") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if room.history().await?.is_empty() {
        let posted = room.post("bench".to_owned(), "one post".to_owned()).await?;
        posted.map_err(|refused| format!("the bench room refused its post: {refused:?}"))?;
    }
    let subject = format!("{namespace}.chat-room.bench.history");

    // Warm-up, both sides.
    for _ in 0..200 {
        room.history().await?;
        hand_written(&nats, &subject).await?;
    }

    let began = Instant::now();
    for _ in 0..n {
        room.history().await?;
    }
    let generated = began.elapsed();
    let began = Instant::now();
    for _ in 0..n {
        hand_written(&nats, &subject).await?;
    }
    let hand = began.elapsed();
    println!(
        "client-bench sequential: generated {:.1} us/call, hand-written {:.1} us/call",
        generated.as_secs_f64() * 1e6 / n as f64,
        hand.as_secs_f64() * 1e6 / n as f64
    );

    let generated = in_flight(n, |_| {
        let room = room.clone();
        async move { room.history().await.map(|_| ()).map_err(|e| e.to_string()) }
    })
    .await?;
    let hand = in_flight(n, |_| {
        let (nats, subject) = (nats.clone(), subject.clone());
        async move {
            hand_written(&nats, &subject)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await?;
    println!(
        "client-bench 256 in flight: generated {:.0} calls/s, hand-written {:.0} calls/s",
        n as f64 / generated.as_secs_f64(),
        n as f64 / hand.as_secs_f64()
    );
    Ok(())
}

/// What a user would write by hand with async-nats: the same request and decoding.
async fn hand_written(
    nats: &async_nats::Client,
    subject: &str,
) -> Result<Vec<Post>, Box<dyn std::error::Error + Send + Sync>> {
    let request = async_nats::Request::new()
        .payload(b"{}".to_vec().into())
        .timeout(Some(Duration::from_secs(10)));
    let reply = nats.send_request(subject.to_owned(), request).await?;
    Ok(serde_json::from_slice::<Reply>(&reply.payload)?.ok)
}

/// `n` calls made by 256 tasks at once; the time until all are answered.
async fn in_flight<F, Fut>(n: usize, call: F) -> Result<Duration, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n.min(256) {
        tasks.spawn(call(next));
        next += 1;
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
        if next < n {
            tasks.spawn(call(next));
            next += 1;
        }
    }
    Ok(began.elapsed())
}

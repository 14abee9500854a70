//! The baseline of `scripts/bench-stream`: async-nats's own JetStream pull consumer on the same
//! server, on a memory stream of N messages over KEYS subjects (the same as
//! `benches/stream_agent.rs` stores), consumed by a durable consumer with explicit acks in
//! batches of BATCH, two ways:
//!
//! - each message acked with `double_ack` (the server confirms the ack before the next message),
//!   as swarm's consumer does;
//! - each message acked with `ack` (sent, not confirmed), async-nats's usual loop.
//!
//! Each message's payload is parsed (a number) and added up, which must come to N. Timed from the
//! consumer's creation until every message is acked (the consumer has nothing pending nor
//! waiting for an ack).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(
    client: &async_nats::Client,
    js: &jetstream::Context,
    n: usize,
    keys: usize,
    batch: usize,
    confirm: bool,
) -> f64 {
    let _ = js.delete_stream("BENCHNATIVE").await;
    let stream = js
        .create_stream(stream::Config {
            name: "BENCHNATIVE".into(),
            subjects: vec!["bench.native.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .expect("the stream");
    for i in 0..n {
        // Core publishes, as the swarm side stores its messages.
        client
            .publish(format!("bench.native.k{}", i % keys), "1".into())
            .await
            .expect("published");
    }
    client.flush().await.expect("flushed");
    loop {
        let info = js
            .get_stream("BENCHNATIVE")
            .await
            .expect("the stream")
            .cached_info()
            .clone();
        if info.state.messages as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("native".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("the consumer");
    let mut sum = 0u64;
    let mut taken = 0;
    while taken < n {
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("a pull");
        while let Some(message) = messages.next().await {
            let message = message.expect("a message");
            sum += std::str::from_utf8(&message.payload)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .expect("a number");
            if confirm {
                message.double_ack().await.expect("acked");
            } else {
                message.ack().await.expect("acked");
            }
            taken += 1;
        }
    }
    client.flush().await.expect("flushed");
    let mut consumer = consumer;
    loop {
        let info = consumer.info().await.expect("the consumer's info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed().as_secs_f64();
    assert_eq!(sum as usize, n, "every message counted once");
    js.delete_stream("BENCHNATIVE").await.expect("deleted");
    took
}

#[tokio::main]
async fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let n = number("N", 5_000);
    let keys = number("KEYS", 50);
    let batch = number("BATCH", 256);
    let client = async_nats::connect(&url).await.expect("connects");
    let js = jetstream::new(client.clone());
    let took = run(&client, &js, n, keys, batch, true).await;
    println!(
        "async-nats-stream double_ack: {n} msgs in {took:.3} s: {:.0} msg/s",
        n as f64 / took
    );
    let took = run(&client, &js, n, keys, batch, false).await;
    println!(
        "async-nats-stream ack: {n} msgs in {took:.3} s: {:.0} msg/s",
        n as f64 / took
    );
}

//! Stream messages/s through agents, for `scripts/bench-stream`: N messages (one per key in turn,
//! over KEYS keys) stored in a memory stream first, then consumed by `serve_streams` (a durable
//! pull consumer, each message handed to its agent, applied, saved to the memory store with its
//! stream sequence, answered, and acked, not waiting for the confirmation), timed from the start of
//! the consumer until the consumer has nothing pending or waiting for an ack. The baseline,
//! async-nats's own pull consumer on the same server, is `swarm-bench-stream-native`.

use std::time::{Duration, Instant};

use swarm::nats::{
    serve_streams, ConnectOptions, JetStream, JsError, NatsClient, StorageType, StreamConfig,
    StreamOptions,
};
use swarm::prelude::*;

/// How many of its stream's messages one key's agent took.
#[agent(kind = "bench-tally")]
pub struct Tally {
    #[key]
    id: String,
    #[persist]
    seen: u64,
}

#[agent]
impl Tally {
    #[handler(stream = "BENCHSTREAM", subject = "bench.stream.{key}")]
    pub fn add(&mut self, n: u64) {
        self.seen += n;
    }

    #[handler]
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (pending, waiting for an ack) of the durable consumer.
fn consumer_left(client: &NatsClient, durable: &str) -> Option<(u64, u64)> {
    let reply = client
        .request(
            &format!("$JS.API.CONSUMER.INFO.BENCHSTREAM.{durable}"),
            b"",
            Duration::from_secs(5),
        )
        .ok()?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
    Some((
        info["num_pending"].as_u64()?,
        info["num_ack_pending"].as_u64()?,
    ))
}

fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let n = number("N", 5_000);
    let keys = number("KEYS", 50);
    let batch = number("BATCH", 256) as usize;
    swarm::set_default_store(StoreConfig::memory("bench-stream")).unwrap();
    let client = NatsClient::connect(ConnectOptions::new([url.as_str()]).expect("a valid URL"))
        .expect("connects");
    swarm::set_node_nats(client.clone()).unwrap();
    let js = JetStream::new(client.clone());
    match js.delete_stream("BENCHSTREAM") {
        Ok(()) | Err(JsError::NoSuchStream { .. }) => {}
        Err(err) => panic!("delete the stream: {err}"),
    }
    js.create_stream(&StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new("BENCHSTREAM", ["bench.stream.>"])
    })
    .expect("the stream");
    for i in 0..n {
        client
            .publish(&format!("bench.stream.k{}", i % keys), b"1")
            .expect("published");
    }
    client.flush().expect("flushed");
    while js
        .stream_info("BENCHSTREAM")
        .map_or(0, |info| info.state.messages)
        < n
    {
        lunatic::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let service = serve_streams::<Tally>(
        &client,
        StreamOptions {
            batch,
            ..StreamOptions::default()
        },
    )
    .expect("consuming");
    let durable = &service.consumers()[0];
    while consumer_left(&client, durable) != Some((0, 0)) {
        lunatic::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed().as_secs_f64();
    let applied: u64 = (0..keys)
        .map(|k| {
            Tally::get_or_start(format!("k{k}"))
                .expect("started")
                .seen()
                .expect("answered")
        })
        .sum();
    assert_eq!(applied, n, "every message applied once");
    println!(
        "swarm-stream: {n} msgs through agents ({keys} keys, memory store) in \
         {took:.3} s: {:.0} msg/s",
        n as f64 / took
    );
    service.kill();
    js.delete_stream("BENCHSTREAM").expect("deleted");
    client.close();
}

//! The Lunatic NATS client's rows of `scripts/bench-nats` (the native side is
//! `benches/nats-native`, on the same rows): sequential request/reply with a responder on
//! another connection, 256 requests in flight (256 Lunatic processes sharing one connection),
//! and 16-byte publish throughput. Prints one line per row; `scripts/bench-nats` starts the
//! server, runs this in release mode and tabulates the medians:
//!
//! ```sh
//! SWARM_NATS_URL=nats://127.0.0.1:4222 N=5000 \
//!     cargo run --release -p swarm-benches --bin nats_client --target wasm32-wasip1
//! ```
//!
//! It lived among the tests as an `#[ignore]`d test until it moved here: it measures, it asserts
//! nothing, and the suite never ran it.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process, Tag};
use swarm::nats::{ConnectOptions, NatsClient};

const DONE: i64 = 65;

fn connect(url: &str) -> NatsClient {
    let options = ConnectOptions::new([url])
        .unwrap_or_else(|e| panic!("{url} is not a NATS URL: {e}"))
        .connect_timeout(Duration::from_secs(2))
        .op_timeout(Duration::from_secs(5));
    NatsClient::connect(options).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[lunatic::main]
fn main(mailbox: Mailbox<u64>) {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let responder = connect(&url);
    let client = connect(&url);
    let done = Tag::special(DONE).unwrap();
    Process::spawn(
        (responder.clone(), mailbox.this()),
        |(responder, parent), _: Mailbox<()>| {
            let sub = responder.subscribe("bench.lunatic.echo").unwrap();
            parent.tag_send(Tag::special(DONE).unwrap(), 0);
            while let Ok(msg) = sub.next_timeout(Duration::from_secs(30)) {
                let _ = responder.respond(&msg, &msg.payload);
            }
        },
    );
    mailbox
        .tag_receive_timeout(&[done], Duration::from_secs(5))
        .unwrap();
    for _ in 0..200 {
        client
            .request("bench.lunatic.echo", "x", Duration::from_secs(5))
            .unwrap();
    }
    let payload = b"0123456789abcdef";
    let t = Instant::now();
    for _ in 0..n {
        client
            .request("bench.lunatic.echo", payload, Duration::from_secs(5))
            .unwrap();
    }
    let seq = t.elapsed();
    println!(
        "swarm-nats sequential request/reply: {:.1} us/req ({n} requests)",
        seq.as_secs_f64() * 1e6 / n as f64
    );

    let per = n * 4 / 256;
    let t = Instant::now();
    for _ in 0..256 {
        Process::spawn(
            (client.clone(), mailbox.this(), per),
            |(client, parent, per): (NatsClient, Process<u64>, usize), _: Mailbox<()>| {
                for _ in 0..per {
                    client
                        .request(
                            "bench.lunatic.echo",
                            b"0123456789abcdef",
                            Duration::from_secs(30),
                        )
                        .unwrap();
                }
                parent.tag_send(Tag::special(DONE).unwrap(), 1);
            },
        );
    }
    for _ in 0..256 {
        mailbox
            .tag_receive_timeout(&[done], Duration::from_secs(60))
            .unwrap();
    }
    let conc = t.elapsed();
    println!(
        "swarm-nats 256 in flight: {:.0} req/s ({} requests)",
        (per * 256) as f64 / conc.as_secs_f64(),
        per * 256
    );

    let m = n * 40;
    let sink = connect(&url);
    Process::spawn(
        (sink.clone(), mailbox.this(), m),
        |(sink, parent, m): (NatsClient, Process<u64>, usize), _: Mailbox<()>| {
            let sub = sink.subscribe("bench.lunatic.pub").unwrap();
            parent.tag_send(Tag::special(DONE).unwrap(), 0);
            let mut k = 0u64;
            let mut last = std::time::SystemTime::now();
            while (k as usize) < m && sub.next_timeout(Duration::from_secs(10)).is_ok() {
                k += 1;
                last = std::time::SystemTime::now();
            }
            parent.tag_send(Tag::special(DONE).unwrap(), k);
            // When the last message came (wall clock: comparable across processes), so that
            // messages lost on the way do not count the 10 s wait for them.
            let since_epoch = last
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            parent.tag_send(Tag::special(DONE).unwrap(), since_epoch.as_nanos() as u64);
        },
    );
    mailbox
        .tag_receive_timeout(&[done], Duration::from_secs(5))
        .unwrap();
    let t = Instant::now();
    let wall = std::time::SystemTime::now();
    for _ in 0..m {
        client.publish("bench.lunatic.pub", payload).unwrap();
    }
    client.flush().unwrap();
    let pubt = t.elapsed();
    let got = mailbox
        .tag_receive_timeout(&[done], Duration::from_secs(120))
        .unwrap();
    let last = mailbox
        .tag_receive_timeout(&[done], Duration::from_secs(5))
        .unwrap();
    let last = std::time::UNIX_EPOCH + Duration::from_nanos(last);
    let all = last.duration_since(wall).unwrap_or_default();
    println!(
        "swarm-nats publish 16 B: {:.0} msg/s published+flushed ({m} msgs), {:.0} msg/s received by a subscriber ({got})",
        m as f64 / pubt.as_secs_f64(),
        got as f64 / all.as_secs_f64()
    );
    client.close();
    responder.close();
    sink.close();
}

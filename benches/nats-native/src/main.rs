//! async-nats on the same rows as the Lunatic client's benchmark (`benches/nats_client.rs`):
//! sequential request/reply, 256 requests in flight on one connection, 16-byte publish
//! throughput. Prints one line per row in the same words, so `scripts/bench-nats` can pair them.

use std::time::{Duration, Instant};

use futures::StreamExt;

#[tokio::main]
async fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let client = async_nats::connect(&url).await.expect("connects");
    swarm_bench_nats_native::serve_echo(&url, "bench.native.echo").await;
    for _ in 0..200 {
        client
            .request("bench.native.echo", "x".into())
            .await
            .expect("warm-up request");
    }

    let started = Instant::now();
    for _ in 0..n {
        client
            .request("bench.native.echo", "0123456789abcdef".into())
            .await
            .expect("request");
    }
    let sequential = started.elapsed();
    println!(
        "async-nats sequential request/reply: {:.1} us/req ({n} requests)",
        sequential.as_secs_f64() * 1e6 / n as f64
    );

    let per = n * 4 / 256;
    let started = Instant::now();
    let tasks: Vec<_> = (0..256)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    client
                        .request("bench.native.echo", "0123456789abcdef".into())
                        .await
                        .expect("request");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let concurrent = started.elapsed();
    println!(
        "async-nats 256 in flight: {:.0} req/s ({} requests)",
        (per * 256) as f64 / concurrent.as_secs_f64(),
        per * 256
    );

    // The same two rows against swarm agents served through NATS (`benches/agent_node.rs`), when
    // `scripts/bench-nats` runs one: `bench.bench-echo.<key>.echo`, JSON in and out.
    if std::env::var("SWARM_AGENT_NODE").is_ok() {
        let body = bytes::Bytes::from_static(br#"{"text":"0123456789abcdef"}"#);
        for _ in 0..200 {
            client
                .request("bench.bench-echo.k0.echo", body.clone())
                .await
                .expect("warm-up request to an agent");
        }
        let started = Instant::now();
        for _ in 0..n {
            let reply = client
                .request("bench.bench-echo.k0.echo", body.clone())
                .await
                .expect("request to an agent");
            assert_eq!(&reply.payload[..], br#"{"ok":"0123456789abcdef"}"#);
        }
        println!(
            "agent-over-nats sequential request/reply: {:.1} us/req ({n} requests)",
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        let started = Instant::now();
        let tasks: Vec<_> = (0..256)
            .map(|task| {
                let client = client.clone();
                let body = body.clone();
                let subject = format!("bench.bench-echo.k{}.echo", task % 16);
                tokio::spawn(async move {
                    for _ in 0..per {
                        client
                            .request(subject.clone(), body.clone())
                            .await
                            .expect("request to an agent");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        println!(
            "agent-over-nats 256 in flight: {:.0} req/s ({} requests over 16 agents)",
            (per * 256) as f64 / started.elapsed().as_secs_f64(),
            per * 256
        );
    }

    let m = n * 40;
    let sink = async_nats::connect(&url).await.expect("connects");
    let mut counted = sink
        .subscribe("bench.native.pub")
        .await
        .expect("subscribes");
    sink.flush().await.expect("flushes");
    // Counts until every message came or none came for 10 s (async-nats drops messages when a
    // subscriber falls behind: a slow consumer); the rate is up to the last message, so the
    // 10 s wait for lost ones does not count.
    let counter = tokio::spawn(async move {
        let mut k = 0usize;
        let mut last = Instant::now();
        while k < m {
            match tokio::time::timeout(Duration::from_secs(10), counted.next()).await {
                Ok(Some(_)) => {
                    k += 1;
                    last = Instant::now();
                }
                _ => break,
            }
        }
        (k, last)
    });
    let started = Instant::now();
    for _ in 0..m {
        client
            .publish(
                "bench.native.pub",
                bytes::Bytes::from_static(b"0123456789abcdef"),
            )
            .await
            .expect("publish");
    }
    client.flush().await.expect("flushes");
    let published = started.elapsed();
    let (got, last) = counter.await.expect("counter");
    let all = last.duration_since(started);
    println!(
        "async-nats publish 16 B: {:.0} msg/s published+flushed ({m} msgs), {:.0} msg/s received by a subscriber ({got})",
        m as f64 / published.as_secs_f64(),
        got as f64 / all.as_secs_f64()
    );
}

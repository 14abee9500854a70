//! The cluster rows of `scripts/bench-cluster`, from a native async-nats client, all in one run
//! against one JetStream nats-server:
//!
//! - an async-nats echo service (the baseline a call through NATS is held against);
//! - a swarm agent called at its owner's node subject (one hop, as a smart client would);
//! - the same agent called through the front door of another node, which forwards it (two hops);
//! - a write-through save (`append`: the handler's state saved to the cluster's KV bucket with a
//!   compare-and-set before the answer) against a raw async-nats KV put on a bucket of the same
//!   kind, sequential and 64 in flight over 64 keys.
//!
//! Environment: `SWARM_NATS_URL`, `SWARM_NAMESPACE`, `SWARM_OWNER_ID` (the node id of the node
//! that holds the agents and serves no front door), `N` (requests per row, default 2000).

use std::time::Instant;

const IN_FLIGHT: usize = 64;

#[tokio::main]
async fn main() {
    let url = std::env::var("SWARM_NATS_URL").expect("SWARM_NATS_URL names the server");
    let ns = std::env::var("SWARM_NAMESPACE").expect("SWARM_NAMESPACE");
    let owner = std::env::var("SWARM_OWNER_ID").expect("SWARM_OWNER_ID");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let client = async_nats::connect(&url).await.expect("connects");

    swarm_bench_nats_native::serve_echo(&url, "bench.cluster.echo").await;

    let direct =
        |key: &str, handler: &str| format!("_SWARM.{ns}.node.{owner}.ledger.{key}.{handler}");
    let front = |key: &str, handler: &str| format!("{ns}.ledger.{key}.{handler}");

    // Place the agents on the owner (a request at its node subject claims them there), and warm up.
    for i in 0..IN_FLIGHT {
        let reply = client
            .request(direct(&format!("w{i}"), "append"), r#"{"value": 0}"#.into())
            .await
            .expect("placing an agent");
        assert!(
            reply.payload.starts_with(br#"{"ok""#),
            "{:?}",
            reply.payload
        );
    }
    for _ in 0..200 {
        client
            .request("bench.cluster.echo", "{}".into())
            .await
            .expect("warm-up");
        expect_ok(&client, direct("w0", "entries")).await;
        expect_ok(&client, front("w0", "entries")).await;
    }

    let echo = sequential(n, || client.request("bench.cluster.echo", "{}".into())).await;
    println!("cluster echo (async-nats service): {:.1} us/req", echo);
    let at_owner = sequential(n, || client.request(direct("w0", "entries"), "{}".into())).await;
    println!("cluster agent read at its owner: {:.1} us/req", at_owner);
    let forwarded = sequential(n, || client.request(front("w0", "entries"), "{}".into())).await;
    println!(
        "cluster agent read through another node's front door: {:.1} us/req",
        forwarded
    );

    // A handle's call inside Lunatic (the node's `teller` agents time their own reads): to the
    // agent on the same node (a mailbox call), and from the other node (through NATS).
    for (node, row) in [
        ("owner", "handle call to an agent on its own node (in Lunatic)"),
        ("front", "handle call to an agent on another node (in Lunatic)"),
    ] {
        let subject = format!("{ns}.via.{node}.teller.bench.time_reads");
        let ask = |calls: usize| {
            let body = format!(r#"{{"ledger": "w0", "calls": {calls}}}"#);
            client.request(subject.clone(), body.into())
        };
        ask(200).await.expect("warm-up");
        let reply = ask(n).await.expect("timing reads through a handle");
        let answer = String::from_utf8_lossy(&reply.payload);
        let micros: f64 = answer
            .strip_prefix(r#"{"ok":{"Ok":"#)
            .and_then(|rest| rest.strip_suffix("}}"))
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("{row}: unexpected answer {answer}"));
        println!("cluster {row}: {micros:.1} us/req");
    }

    // Writes: the agent's write-through save against a raw KV put.
    let js = async_nats::jetstream::new(client.clone());
    let bucket = format!("BENCH_RAW_{}", std::process::id());
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: bucket.clone(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("creates the raw bucket");
    let writes = n / 2;
    let save = sequential(writes, || {
        client.request(direct("w1", "append"), r#"{"value": 1}"#.into())
    })
    .await;
    println!(
        "cluster write-through save (append at owner): {:.1} us/req",
        save
    );
    let value = vec![b'x'; 64];
    let started = Instant::now();
    for _ in 0..writes {
        kv.put("raw", value.clone().into()).await.expect("raw put");
    }
    let raw = started.elapsed().as_secs_f64() * 1e6 / writes as f64;
    println!("cluster raw KV put (async-nats): {:.1} us/put", raw);

    let per = writes / IN_FLIGHT;
    let started = Instant::now();
    futures::future::join_all((0..IN_FLIGHT).map(|i| {
        let client = client.clone();
        let subject = direct(&format!("w{i}"), "entries");
        async move {
            for _ in 0..per * 4 {
                client
                    .request(subject.clone(), "{}".into())
                    .await
                    .expect("read");
            }
        }
    }))
    .await;
    let reads = (per * 4 * IN_FLIGHT) as f64 / started.elapsed().as_secs_f64();
    println!(
        "cluster agent reads at the owner, {IN_FLIGHT} agents in flight: {:.0} req/s",
        reads
    );
    let started = Instant::now();
    futures::future::join_all((0..IN_FLIGHT).map(|i| {
        let client = client.clone();
        let subject = direct(&format!("w{i}"), "append");
        async move {
            for _ in 0..per {
                let reply = client
                    .request(subject.clone(), r#"{"value": 2}"#.into())
                    .await
                    .expect("append");
                assert!(
                    reply.payload.starts_with(br#"{"ok""#),
                    "{:?}",
                    reply.payload
                );
            }
        }
    }))
    .await;
    let saves = (per * IN_FLIGHT) as f64 / started.elapsed().as_secs_f64();
    println!(
        "cluster write-through saves, {IN_FLIGHT} agents in flight: {:.0} saves/s",
        saves
    );
    let started = Instant::now();
    futures::future::join_all((0..IN_FLIGHT).map(|i| {
        let kv = kv.clone();
        let value = value.clone();
        async move {
            for _ in 0..per {
                kv.put(format!("k{i}"), value.clone().into())
                    .await
                    .expect("raw put");
            }
        }
    }))
    .await;
    let puts = (per * IN_FLIGHT) as f64 / started.elapsed().as_secs_f64();
    println!(
        "cluster raw KV puts, {IN_FLIGHT} keys in flight: {:.0} puts/s",
        puts
    );
    let _ = js.delete_key_value(&bucket).await;
}

async fn expect_ok(client: &async_nats::Client, subject: String) {
    let reply = client.request(subject, "{}".into()).await.expect("request");
    assert!(
        reply.payload.starts_with(br#"{"ok""#),
        "{:?}",
        reply.payload
    );
}

/// Microseconds per call of `n` calls one after the other.
async fn sequential<F, Fut, T, E>(n: usize, mut call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let started = Instant::now();
    for _ in 0..n {
        call().await.expect("request");
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

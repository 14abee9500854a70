//! The local mailbox path: swarm's generated handle against a hand-written Lunatic
//! `AbstractProcess` doing the same work, measured in the same run.
//!
//! Run: `scripts/bench` (or `cargo run --release -p swarm-benches --bin local --target
//! wasm32-wasip1`). Prints a table and writes `target/bench/local.json`. The cargo runner sets
//! `RUST_LIB_BACKTRACE=0`: with `RUST_BACKTRACE=1` alone Lunatic is ~20x slower.

use std::time::{Duration, Instant};

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, RequestHandler, State};
use lunatic::serializer::Bincode;
use serde::{Deserialize, Serialize};
use swarm::prelude::*;

// ---- the hand-written baseline -------------------------------------------------------------

struct RawCounter;

#[derive(Serialize, Deserialize)]
struct Add(u64);
#[derive(Serialize, Deserialize)]
struct Bump;
#[derive(Serialize, Deserialize)]
struct Post {
    author: String,
    text: String,
}
#[derive(Serialize, Deserialize)]
struct Note(String);

impl AbstractProcess for RawCounter {
    type State = (u64, usize);
    type Serializer = Bincode;
    type Arg = ();
    type Handlers = (
        lunatic::ap::handlers::Request<Add>,
        lunatic::ap::handlers::Message<Bump>,
        lunatic::ap::handlers::Request<Post>,
        lunatic::ap::handlers::Message<Note>,
    );
    type StartupError = ();

    fn init(_: Config<Self>, (): ()) -> Result<(u64, usize), ()> {
        Ok((0, 0))
    }
}

impl RequestHandler<Add> for RawCounter {
    type Response = u64;
    fn handle(mut state: State<Self>, Add(n): Add) -> u64 {
        state.0 += n;
        state.0
    }
}

impl RequestHandler<Post> for RawCounter {
    type Response = usize;
    fn handle(mut state: State<Self>, post: Post) -> usize {
        state.1 += post.author.len() + post.text.len();
        state.1
    }
}

impl MessageHandler<Note> for RawCounter {
    fn handle(mut state: State<Self>, Note(text): Note) {
        state.1 += text.len();
    }
}

impl MessageHandler<Bump> for RawCounter {
    fn handle(mut state: State<Self>, _: Bump) {
        state.0 += 1;
    }
}

// ---- the same agent through swarm ----------------------------------------------------------

#[agent(kind = "bench-counter")]
pub struct Counter {
    total: u64,
    chars: usize,
}

#[agent]
impl Counter {
    #[handler]
    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }

    #[handler]
    pub fn bump(&mut self) {
        self.total += 1;
    }

    #[handler]
    pub fn post(&mut self, author: String, text: String) -> usize {
        self.chars += author.len() + text.len();
        self.chars
    }

    #[handler]
    pub fn note(&mut self, text: String) {
        self.chars += text.len();
    }
}

// ---- measurement ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Row {
    name: String,
    baseline_ns: f64,
    swarm_ns: f64,
    ratio: f64,
    baseline_p99_ns: Option<f64>,
    swarm_p99_ns: Option<f64>,
}

/// Per-call latencies of `n` calls of `f`, sorted.
fn latencies(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f();
        out.push(started.elapsed());
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize].as_nanos() as f64
}

fn main() {
    let rounds: usize = std::env::var("SWARM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let calls: usize = std::env::var("SWARM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!(
        "swarm local-path benchmark: {rounds} rounds x {calls} calls, alternating baseline and swarm; \
         RUST_LIB_BACKTRACE={}",
        std::env::var("RUST_LIB_BACKTRACE").unwrap_or_default()
    );

    let raw: ProcessRef<RawCounter> = RawCounter::start(()).expect("baseline starts");
    let agent = Counter::start().expect("agent starts");
    if std::env::var("SWARM_BENCH_ONLY").as_deref() == Ok("metrics") {
        return metrics_on_vs_off(agent, rounds, calls);
    }

    // Warm up both paths.
    for _ in 0..2_000 {
        raw.request(Add(1));
        agent.add(1).unwrap();
    }

    let author = || "ada".to_string();
    let text = || "a message of a realistic length for a chat".to_string();
    let mut samples: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    let mut per_message: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for _ in 0..rounds {
        samples[0].0.extend(latencies(calls, || {
            raw.request(Add(1));
        }));
        samples[0].1.extend(latencies(calls, || {
            agent.add(1).unwrap();
        }));
        samples[1].0.extend(latencies(calls, || {
            raw.request(Post {
                author: author(),
                text: text(),
            });
        }));
        samples[1].1.extend(latencies(calls, || {
            agent.post(author(), text()).unwrap();
        }));

        // Fire-and-forget: send `calls` messages, then one request so that all were handled.
        let per = |f: &mut dyn FnMut(), sync: &mut dyn FnMut()| {
            let started = Instant::now();
            for _ in 0..calls {
                f();
            }
            sync();
            started.elapsed().as_nanos() as f64 / calls as f64
        };
        per_message[0].0.push(per(&mut || raw.send(Bump), &mut || {
            raw.request(Add(0));
        }));
        per_message[0]
            .1
            .push(per(&mut || agent.bump().unwrap(), &mut || {
                agent.add(0).unwrap();
            }));
        per_message[1]
            .0
            .push(per(&mut || raw.send(Note(text())), &mut || {
                raw.request(Add(0));
            }));
        per_message[1]
            .1
            .push(per(&mut || agent.note(text()).unwrap(), &mut || {
                agent.add(0).unwrap();
            }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    for ((raw_s, swarm_s), name) in samples.iter_mut().zip([
        "request round trip (u64 -> u64)",
        "request round trip (2 Strings -> usize)",
    ]) {
        raw_s.sort();
        swarm_s.sort();
        rows.push(Row {
            name: format!("{name}, p50"),
            baseline_ns: pct(raw_s, 0.5),
            swarm_ns: pct(swarm_s, 0.5),
            ratio: pct(swarm_s, 0.5) / pct(raw_s, 0.5),
            baseline_p99_ns: Some(pct(raw_s, 0.99)),
            swarm_p99_ns: Some(pct(swarm_s, 0.99)),
        });
    }
    for ((raw_m, swarm_m), name) in per_message
        .iter_mut()
        .zip(["message, no arguments", "message, one String"])
    {
        let (b, s) = (median(raw_m), median(swarm_m));
        rows.push(Row {
            name: format!("{name}, per message"),
            baseline_ns: b,
            swarm_ns: s,
            ratio: s / b,
            baseline_p99_ns: None,
            swarm_p99_ns: None,
        });
    }

    println!("\n| row | hand-written AbstractProcess | swarm handle | swarm / baseline |");
    println!("|---|---|---|---|");
    for row in &rows {
        let p99 = match (row.baseline_p99_ns, row.swarm_p99_ns) {
            (Some(b), Some(s)) => format!(" (p99 {:.2} us / {:.2} us)", b / 1e3, s / 1e3),
            _ => String::new(),
        };
        println!(
            "| {}{p99} | {:.2} us | {:.2} us | {:.3} |",
            row.name,
            row.baseline_ns / 1e3,
            row.swarm_ns / 1e3,
            row.ratio
        );
    }
    let throughput = 1e9 / rows[0].swarm_ns;
    println!("\nsequential request throughput through the swarm handle: {throughput:.0} req/s (from p50)");

    let json =
        serde_json::json!({ "benchmark": "local", "rounds": rounds, "calls": calls, "rows": rows });
    let _ = std::fs::create_dir_all("target/bench");
    match std::fs::write(
        "target/bench/local.json",
        serde_json::to_vec_pretty(&json).unwrap_or_default(),
    ) {
        Ok(()) => println!("written: target/bench/local.json"),
        Err(err) => println!("could not write target/bench/local.json: {err}"),
    }
    metrics_on_vs_off(agent, rounds, calls);
}

/// The same agent kind with metrics off and on, in one run: `off` and `control` were started
/// before the node served metrics (so they count nothing), `on` after. Their calls alternate in
/// batches of 500, the order rotating, so that the machine's load falls on all three alike;
/// `control` against `off` shows how far two identical agents differ (the noise floor).
fn metrics_on_vs_off(off: CounterRef, rounds: usize, calls: usize) {
    let control = Counter::start().expect("agent starts");
    let bound = swarm::metrics::serve(swarm::metrics::MetricsConfig::listen("127.0.0.1:0"))
        .expect("metrics are served");
    let on = Counter::start().expect("agent starts");
    {
        let started = Instant::now();
        let mut last = started;
        for _ in 0..100_000 {
            last = Instant::now();
        }
        println!(
            "a clock read (Instant::now) under Lunatic: {:.0} ns",
            (last - started).as_nanos() as f64 / 1e5
        );
    }
    println!("\nmetrics on vs off (the node serves metrics on {bound}; `off` and `control` started before)");
    let agents = [&off, &control, &on];
    for agent in agents {
        for _ in 0..2_000 {
            agent.add(1).unwrap();
        }
    }
    let author = || "ada".to_string();
    let text = || "a message of a realistic length for a chat".to_string();
    const BATCH: usize = 500;
    // [row][agent]: per-call latencies (requests), per-message means of batches (messages).
    let mut requests: [[Vec<Duration>; 3]; 2] = Default::default();
    let mut messages: [Vec<f64>; 3] = Default::default();
    for batch in 0..rounds * calls / BATCH {
        for turn in 0..3 {
            let which = (batch + turn) % 3;
            let agent = agents[which];
            requests[0][which].extend(latencies(BATCH, || {
                agent.add(1).unwrap();
            }));
            requests[1][which].extend(latencies(BATCH, || {
                agent.post(author(), text()).unwrap();
            }));
            let started = Instant::now();
            for _ in 0..BATCH {
                agent.bump().unwrap();
            }
            agent.add(0).unwrap();
            messages[which].push(started.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    println!("\n| row | metrics off | metrics on | on / off | control (off) / off |");
    println!("|---|---|---|---|---|");
    for (row, name) in requests.iter_mut().zip([
        "request round trip (u64 -> u64), p50",
        "request round trip (2 Strings -> usize), p50",
    ]) {
        for samples in row.iter_mut() {
            samples.sort();
        }
        let p50: Vec<f64> = row.iter().map(|samples| pct(samples, 0.5)).collect();
        println!(
            "| {name} | {:.2} us | {:.2} us | {:.3} | {:.3} |",
            p50[0] / 1e3,
            p50[2] / 1e3,
            p50[2] / p50[0],
            p50[1] / p50[0]
        );
    }
    let medians: Vec<f64> = messages
        .iter_mut()
        .map(|means| {
            means.sort_by(f64::total_cmp);
            means[means.len() / 2]
        })
        .collect();
    println!(
        "| message, no arguments, per message (median of batches) | {:.2} us | {:.2} us | {:.3} | {:.3} |",
        medians[0] / 1e3,
        medians[2] / 1e3,
        medians[2] / medians[0],
        medians[1] / medians[0]
    );
}

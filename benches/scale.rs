//! Scale: how many idle swarm agents one node holds, how fast they spawn, and whether they still
//! answer at the top count.
//!
//! Run: `cargo run --release -p swarm-benches --bin scale --target wasm32-wasip1 -- N [BATCH]`
//! (under stock `lunatic run`), or with `LUNATIC=node/target/release/swarm-node` in the
//! environment (the cargo runner then starts the tuned node instead). `node/measure.sh` wraps
//! either with a timeout and samples the node's RSS and memory maps from /proc after every batch.
//!
//! A wasm guest cannot read the host's /proc, so this binary only prints progress lines:
//! `SCALE batch agents=<n> batch_ms=<t> rate=<agents/s>` after each batch, then a request check
//! (`SCALE check ...`), then `SCALE top agents=<n>` and it pauses `SCALE_HOLD_MS` (default 1500)
//! with every agent alive so the sampler can take a last reading, and exits.
//! `SCALE tick agents=<n>` every 100 agents tells how far a run got when a spawn fails: lunatic's
//! `AbstractProcess::start` unwraps the host's spawn error, so the bench itself dies there.
//! Each batch is followed by a `SCALE_PAUSE_MS` (default 150) pause so the sample is taken while
//! the node is quiet; the pause is not counted in the spawn rate.

use std::time::{Duration, Instant};

use swarm::prelude::*;

/// The smallest useful agent: no key, no persisted state, one request handler.
#[agent]
#[derive(Default)]
pub struct Idle {
    hits: u64,
}

#[agent]
impl Idle {
    #[handler]
    pub fn ping(&mut self, n: u64) -> u64 {
        self.hits += 1;
        n + self.hits
    }
}

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let batch: usize = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
        .max(1);
    let pause = env_ms("SCALE_PAUSE_MS", 150);
    let hold = env_ms("SCALE_HOLD_MS", 1_500);
    println!(
        "SCALE start target={target} batch={batch} RUST_LIB_BACKTRACE={}",
        std::env::var("RUST_LIB_BACKTRACE").unwrap_or_default()
    );
    // Let the sampler take its baseline (the node with this main process only).
    std::thread::sleep(pause * 2);

    let mut agents = Vec::with_capacity(target);
    let started = Instant::now();
    let mut spawn_time = Duration::ZERO;
    let mut failed = None;
    while agents.len() < target && failed.is_none() {
        let n = batch.min(target - agents.len());
        let t = Instant::now();
        for _ in 0..n {
            match Idle::start() {
                Ok(agent) => {
                    agents.push(agent);
                    if agents.len() % 100 == 0 {
                        // A failed spawn panics inside lunatic's `start` (the guest cannot catch
                        // it: panic=abort), so this is how the sampler knows how far it got.
                        println!("SCALE tick agents={}", agents.len());
                    }
                }
                Err(err) => {
                    failed = Some(format!("{err}"));
                    break;
                }
            }
        }
        let took = t.elapsed();
        spawn_time += took;
        println!(
            "SCALE batch agents={} batch_ms={:.1} rate={:.0}",
            agents.len(),
            took.as_secs_f64() * 1e3,
            n as f64 / took.as_secs_f64()
        );
        std::thread::sleep(pause);
    }
    if let Some(err) = &failed {
        println!("SCALE spawn_failed agents={} error={err:?}", agents.len());
    }
    let total = agents.len();
    println!(
        "SCALE spawned agents={total} spawn_s={:.2} mean_rate={:.0} mean_us={:.1} wall_s={:.1}",
        spawn_time.as_secs_f64(),
        total as f64 / spawn_time.as_secs_f64(),
        spawn_time.as_secs_f64() * 1e6 / total.max(1) as f64,
        started.elapsed().as_secs_f64()
    );

    // Do they still answer? The first, the last, and a sample spread over all of them.
    if total > 0 {
        let picks: Vec<usize> = {
            let step = (total / 1000).max(1);
            let mut p: Vec<usize> = (0..total).step_by(step).collect();
            p.push(total - 1);
            p
        };
        let t = Instant::now();
        let mut ok = 0usize;
        let mut bad = 0usize;
        let mut worst = Duration::ZERO;
        for &i in &picks {
            let one = Instant::now();
            match agents[i].ping(i as u64) {
                Ok(v) if v == i as u64 + 1 => ok += 1,
                _ => bad += 1,
            }
            worst = worst.max(one.elapsed());
        }
        println!(
            "SCALE check requests={} ok={ok} bad={bad} mean_us={:.1} max_us={:.1}",
            picks.len(),
            t.elapsed().as_secs_f64() * 1e6 / picks.len() as f64,
            worst.as_secs_f64() * 1e6
        );
    }
    println!("SCALE top agents={total}");
    std::thread::sleep(hold);
    println!("SCALE done");
}

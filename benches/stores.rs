//! Stores: durable saves per second through an agent's write-through (against the same store's
//! raw `put` in the same run), acknowledged writes per second of a write-behind kind, and
//! restart-to-serving time of an agent with 1 KB and 1 MB of persisted state.
//!
//! Run: `scripts/bench` (or `cargo run --release -p swarm-benches --bin stores --target
//! wasm32-wasip1`). Writes `target/bench/stores.json`.

use std::time::{Duration, Instant};

use serde::Serialize;
use swarm::prelude::*;

#[agent(kind = "bench-state")]
pub struct State {
    #[key]
    id: String,
    #[persist]
    counter: u64,
    #[persist]
    blob: String,
}

#[agent]
impl State {
    /// Changes a persisted field: one durable save before the reply.
    #[handler]
    pub fn bump(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    #[handler]
    pub fn set_blob(&mut self, blob: String) -> usize {
        self.blob = blob;
        self.blob.len()
    }

    #[handler]
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

/// The same state, write-behind: `bump` is answered at once, the state saved at most 100 ms later.
#[agent(
    kind = "bench-lazy",
    persistence = "write_behind",
    save_every = "100ms"
)]
pub struct LazyState {
    #[key]
    id: String,
    #[persist]
    counter: u64,
}

#[agent]
impl LazyState {
    #[handler]
    pub fn bump(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// A handle whose `bump` changes the persisted state, for the concurrent rows.
trait Bump: serde::Serialize + serde::de::DeserializeOwned + 'static {
    fn start(config: &StoreConfig, key: String) -> Self;
    fn bump_once(&self);
}

impl Bump for StateRef {
    fn start(config: &StoreConfig, key: String) -> Self {
        State::launcher()
            .store(config.clone())
            .get_or_start(key)
            .expect("starts")
    }
    fn bump_once(&self) {
        self.bump().expect("bump");
    }
}

impl Bump for LazyStateRef {
    fn start(config: &StoreConfig, key: String) -> Self {
        LazyState::launcher()
            .store(config.clone())
            .get_or_start(key)
            .expect("starts")
    }
    fn bump_once(&self) {
        self.bump().expect("bump");
    }
}

/// Agents saving at the same time in the concurrent row.
const CONCURRENT_AGENTS: usize = 100;

/// `CONCURRENT_AGENTS` agents, each driven by its own process, each making `saves_each` changes
/// at once; returns acknowledged changes per second over all of them (each durable before its
/// answer for write-through; saved within the interval for write-behind).
fn concurrent_saves<H: Bump>(config: &StoreConfig, name: &str, saves_each: usize) -> f64 {
    use lunatic::{Mailbox, Process};
    let agents: Vec<H> = (0..CONCURRENT_AGENTS)
        .map(|i| H::start(config, format!("many-{name}-{i}")))
        .collect();
    // SAFETY: `this()` only reads this process' ids; it receives only the drivers' reports.
    let this = unsafe { Process::<u64>::this() };
    let started = Instant::now();
    for agent in agents {
        Process::spawn(
            (this, agent, saves_each),
            |(parent, agent, saves_each): (Process<u64>, H, usize), _: Mailbox<()>| {
                for _ in 0..saves_each {
                    agent.bump_once();
                }
                parent.send(saves_each as u64);
            },
        );
    }
    // SAFETY: as above.
    let reports: Mailbox<u64> = unsafe { Mailbox::new() };
    let total: u64 = (0..CONCURRENT_AGENTS).map(|_| reports.receive()).sum();
    per_second(total as usize, started.elapsed())
}

#[derive(Serialize)]
struct Row {
    store: String,
    raw_puts_per_s: f64,
    agent_saves_per_s: f64,
    ratio: f64,
    concurrent_saves_per_s: f64,
    behind_writes_per_s: f64,
    behind_concurrent_writes_per_s: f64,
    restart_1kb_ms: f64,
    restart_1mb_ms: f64,
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn main() {
    let saves: usize = std::env::var("SWARM_BENCH_SAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = std::path::PathBuf::from("target/bench/store-data");
    let _ = std::fs::remove_dir_all(&dir);
    println!("swarm store benchmark: {saves} durable saves per store; restart = kill, get_or_start, first answer");

    let stores = [
        ("memory", StoreConfig::memory("bench")),
        ("file", StoreConfig::file(dir.join("files"))),
        (
            "sqlite",
            StoreConfig::sqlite(dir.join("sqlite"), "bench.db"),
        ),
    ];
    let mut rows = Vec::new();
    for (name, config) in stores {
        let store = config.open().expect("the store opens");
        // The same record size as the agent's: a small JSON object behind the record header.
        let record = b"SWRM\x01\x01{\"counter\":12345,\"blob\":\"\"}".to_vec();
        // Warm up (file creation, SQLite's WAL) before either side is timed.
        for _ in 0..saves / 10 {
            store.put("bench-raw/x", &record).expect("put");
        }
        let started = Instant::now();
        for _ in 0..saves {
            store.put("bench-raw/x", &record).expect("put");
        }
        let raw = per_second(saves, started.elapsed());

        let agent = State::launcher()
            .store(config.clone())
            .get_or_start(format!("saves-{name}"))
            .expect("starts");
        let started = Instant::now();
        for _ in 0..saves {
            agent.bump().expect("bump");
        }
        let through_agent = per_second(saves, started.elapsed());
        let concurrent = concurrent_saves::<StateRef>(&config, name, (saves / 10).max(10));

        // Write-behind: the same changes, answered before they are saved.
        let lazy = LazyStateRef::start(&config, format!("saves-{name}"));
        let started = Instant::now();
        for _ in 0..saves {
            lazy.bump_once();
        }
        let behind = per_second(saves, started.elapsed());
        let behind_concurrent =
            concurrent_saves::<LazyStateRef>(&config, name, (saves / 10).max(10));

        let restart = |size: usize| -> f64 {
            let key = format!("restart-{name}-{size}");
            let agent = State::launcher()
                .store(config.clone())
                .get_or_start(key.clone())
                .expect("starts");
            agent.set_blob("x".repeat(size)).expect("set");
            let mut samples = Vec::new();
            for _ in 0..5 {
                let old = State::lookup(key.clone()).expect("running");
                old.kill();
                while old.is_alive() {
                    lunatic::sleep(Duration::from_millis(1));
                }
                let started = Instant::now();
                let again = State::launcher()
                    .store(config.clone())
                    .get_or_start(key.clone())
                    .expect("restarts");
                again.counter().expect("serves");
                samples.push(started.elapsed().as_secs_f64() * 1e3);
            }
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        };
        let (kb, mb) = (restart(1 << 10), restart(1 << 20));
        rows.push(Row {
            store: name.into(),
            raw_puts_per_s: raw,
            agent_saves_per_s: through_agent,
            ratio: through_agent / raw,
            concurrent_saves_per_s: concurrent,
            behind_writes_per_s: behind,
            behind_concurrent_writes_per_s: behind_concurrent,
            restart_1kb_ms: kb,
            restart_1mb_ms: mb,
        });
    }

    println!("\n| store | raw put/s | agent write-through saves/s | agent / raw | {CONCURRENT_AGENTS} agents at once, saves/s | at once / raw | write-behind 100ms, writes/s | {CONCURRENT_AGENTS} agents at once | restart to serving, 1 KB | 1 MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
            r.store,
            r.raw_puts_per_s,
            r.agent_saves_per_s,
            r.ratio,
            r.concurrent_saves_per_s,
            r.concurrent_saves_per_s / r.raw_puts_per_s,
            r.behind_writes_per_s,
            r.behind_concurrent_writes_per_s,
            r.restart_1kb_ms,
            r.restart_1mb_ms
        );
    }
    let json = serde_json::json!({ "benchmark": "stores", "saves": saves, "rows": rows });
    let _ = std::fs::create_dir_all("target/bench");
    match std::fs::write(
        "target/bench/stores.json",
        serde_json::to_vec_pretty(&json).unwrap_or_default(),
    ) {
        Ok(()) => println!("written: target/bench/stores.json"),
        Err(err) => println!("could not write target/bench/stores.json: {err}"),
    }
}

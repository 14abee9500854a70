//! Virtual agents: a million distinct keys addressed on one node, with passivation on.
//!
//! Run: `cargo run --release -p swarm-benches --bin virtual_agents --target wasm32-wasip1 -- [N]
//! [CALLERS] [IDLE_MS]` (defaults 1,000,000 agents, 64 callers, 200 ms), or `scripts/bench
//! --all`, which also samples the node's peak RSS from /proc.
//!
//! Every key `0..N` of the kind `account` (a `#[persist]` balance in SQLite) is called once by one
//! of `CALLERS` caller processes, each through `get_or_start(key).deposit(1)`: each call activates
//! its agent (a spawn, a load that finds nothing, the handler, a save), which passivates after
//! `IDLE_MS` without a message. So the node holds only the agents of the last moment, whatever N
//! is. Then, once every agent has passivated, 1,000 keys spread over the range are called again
//! one at a time: each must answer 2 (its state was saved at passivation and reloaded), and the
//! time of such a call, which activates, is measured.
//!
//! Prints `VIRTUAL progress ...` lines every 50,000 keys and a `VIRTUAL result ...` line.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process};
use swarm::prelude::*;

/// An account: a keyed agent with a small persisted state.
#[agent(kind = "account")]
pub struct Account {
    #[key]
    id: u64,
    #[persist]
    balance: u64,
}

#[agent]
impl Account {
    /// Adds `amount`; answers the new balance.
    #[handler]
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }
}

fn arg(index: usize, default: u64) -> u64 {
    std::env::args()
        .nth(index)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn launcher(store: &StoreConfig, idle: Duration) -> swarm::Launcher<Account> {
    Account::launcher()
        .store(store.clone())
        .passivate_after(idle)
}

fn stats() -> swarm::NodeStats {
    swarm::node_stats().expect("the node's figures")
}

fn main() {
    let n = arg(1, 1_000_000);
    let callers = arg(2, 64).max(1);
    let idle = Duration::from_millis(arg(3, 200));
    let dir = std::path::PathBuf::from("target/bench/virtual-agents");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the bench's database");
    let store = StoreConfig::sqlite(&dir, "accounts.db");
    // No admission limit in the way: this measures activations, not refusals.
    swarm::set_node_limits(swarm::NodeLimits {
        max_agents: usize::MAX,
        ..swarm::NodeLimits::default()
    })
    .expect("limits");
    println!(
        "VIRTUAL start agents={n} callers={callers} idle_ms={} RUST_LIB_BACKTRACE={}",
        idle.as_millis(),
        std::env::var("RUST_LIB_BACKTRACE").unwrap_or_default()
    );

    // SAFETY: `this()` only reads this process' ids; it receives only the callers' reports.
    let this = unsafe { Process::<u64>::this() };
    let started = Instant::now();
    for caller in 0..callers {
        Process::spawn(
            (this, caller, callers, n, store.clone(), idle),
            |(parent, caller, callers, n, store, idle), _: Mailbox<()>| {
                let mut done = 0;
                let mut key = caller;
                while key < n {
                    let account = launcher(&store, idle)
                        .get_or_start(key)
                        .unwrap_or_else(|err| panic!("account {key}: {err}"));
                    let balance = account
                        .deposit(1)
                        .unwrap_or_else(|err| panic!("account {key}: {err}"));
                    assert_eq!(balance, 1, "account {key} was new");
                    done += 1;
                    if done % 1_000 == 0 {
                        parent.send(1_000);
                    }
                    key += callers;
                }
                parent.send(done % 1_000);
                parent.send(u64::MAX);
            },
        );
    }
    // SAFETY: as above.
    let reports: Mailbox<u64> = unsafe { Mailbox::new() };
    let (mut called, mut finished, mut next_report) = (0u64, 0u64, 50_000u64);
    let mut peak_live = 0;
    while finished < callers {
        match reports.receive() {
            u64::MAX => finished += 1,
            count => called += count,
        }
        if called >= next_report {
            next_report += 50_000;
            let now = stats();
            peak_live = peak_live.max(now.live_agents);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "VIRTUAL progress called={called} live={} passivated={} activations_per_s={:.0}",
                now.live_agents,
                now.started - now.live_agents,
                now.started as f64 / secs
            );
        }
    }
    let first_pass = started.elapsed();

    // Every agent passivates once it has idled: wait for that (bounded).
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats().live_agents > 0 && Instant::now() < deadline {
        lunatic::sleep(Duration::from_millis(50));
    }
    let all_passivated = started.elapsed();
    let drained = stats();

    // Calls that have to activate: the state saved at passivation comes back.
    let sample = 1_000.min(n);
    let mut latencies = Vec::with_capacity(sample as usize);
    for i in 0..sample {
        let key = i * (n / sample);
        let begun = Instant::now();
        let balance = launcher(&store, idle)
            .get_or_start(key)
            .and_then(|account| account.deposit(1).map_err(|err| panic!("{err}")))
            .unwrap_or_else(|err| panic!("account {key}: {err}"));
        latencies.push(begun.elapsed());
        assert_eq!(
            balance, 2,
            "account {key} lost its state across passivation"
        );
    }
    latencies.sort();
    let micros = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "VIRTUAL result agents={n} first_pass_s={:.1} activations_per_s={:.0} \
         passivations={} passivations_per_s={:.0} peak_live_sampled={peak_live} \
         all_passivated_after_s={:.1} live_left={} reloaded={sample} activate_call_p50_us={} \
         activate_call_p99_us={}",
        first_pass.as_secs_f64(),
        n as f64 / first_pass.as_secs_f64(),
        drained.started - drained.live_agents,
        (drained.started - drained.live_agents) as f64 / all_passivated.as_secs_f64(),
        all_passivated.as_secs_f64(),
        drained.live_agents,
        micros(0.5),
        micros(0.99),
    );
}

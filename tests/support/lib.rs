//! Agents and helpers shared by the integration tests (run them with
//! `cargo test -p swarm-tests --target wasm32-wasip1`; they need the Lunatic VM).
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

/// A counter's own error, returned as data.
// Its JSON Schema is part of `counter.add`'s reply schema (derived through swarm's re-export:
// no `schemars` dependency here); the doc comments above become its descriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, swarm::JsonSchema)]
#[schemars(crate = "swarm::schemars")]
pub enum CounterError {
    /// Adding would overflow.
    Overflow {
        /// The total before.
        total: u64,
        /// What was to be added.
        add: u64,
    },
}

/// A keyed agent with persisted and ephemeral state, hooks, and handlers that misbehave on demand.
#[agent(kind = "counter")]
pub struct Counter {
    #[key]
    name: String,
    /// Persisted: survives crashes.
    #[persist]
    total: u64,
    /// Persisted: how many orderly stops this counter has seen (written by `#[on_stop]`).
    #[persist]
    stops: u32,
    /// Ephemeral: back to 0 after every start.
    calls: u32,
    /// Ephemeral, set by `#[on_start]` from the persisted total.
    total_at_start: u64,
}

// `schema`: the discovery and CLI checks validate real calls against the published schemas.
#[agent(schema)]
impl Counter {
    /// Adds `n`; an overflow is the caller's error, as data.
    #[handler]
    pub fn add(&mut self, n: u64) -> Result<u64, CounterError> {
        self.calls += 1;
        self.total = self.total.checked_add(n).ok_or(CounterError::Overflow {
            total: self.total,
            add: n,
        })?;
        Ok(self.total)
    }

    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }

    #[handler]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// A fire-and-forget increment.
    #[handler]
    pub fn bump(&mut self) {
        self.total += 1;
    }

    /// A fire-and-forget increment by a small step (a message short enough to travel in its tag).
    #[handler]
    pub fn bump_by(&mut self, step: u8) {
        self.total += u64::from(step);
    }

    /// A fire-and-forget increment by a larger step (a message that carries data).
    #[handler]
    pub fn bump_by_wide(&mut self, step: u32) {
        self.total += u64::from(step);
    }

    /// Changes only ephemeral state through `&mut self`: must not write the record.
    #[handler]
    pub fn touch(&mut self) -> u32 {
        self.calls += 1;
        self.calls
    }

    #[handler]
    pub fn calls(&self) -> u32 {
        self.calls
    }

    #[handler]
    pub fn stops(&self) -> u32 {
        self.stops
    }

    #[handler]
    pub fn total_at_start(&self) -> u64 {
        self.total_at_start
    }

    #[handler]
    pub fn sleep(&self, ms: u64) -> u64 {
        lunatic::sleep(Duration::from_millis(ms));
        ms
    }

    /// Changes the total, then panics: the change is never acknowledged nor saved.
    #[handler]
    pub fn crash(&mut self, why: String) -> u64 {
        self.total += 1000;
        panic!("asked to crash: {why}");
    }

    /// Same, as a message nobody waits for.
    #[handler]
    pub fn crash_later(&mut self) {
        self.total += 1000;
        panic!("asked to crash");
    }

    #[on_start]
    fn loaded(&mut self) {
        self.total_at_start = self.total;
    }

    #[on_stop]
    fn stopping(&mut self) {
        self.stops += 1;
    }
}

/// An agent without a key or persisted state: every `start()` is a new one.
#[agent]
#[derive(Default)]
pub struct Echo {
    seen: u64,
}

#[agent]
impl Echo {
    #[handler]
    pub fn echo(&mut self, text: String) -> (String, u64) {
        self.seen += 1;
        (text, self.seen)
    }
}

/// An agent with an integer key whose `#[on_start]` can refuse to start.
#[agent(kind = "account")]
pub struct Account {
    #[key]
    id: u64,
    #[persist]
    balance: i64,
}

#[agent(schema)]
impl Account {
    #[handler]
    pub fn deposit(&mut self, amount: i64) -> i64 {
        self.balance += amount;
        self.balance
    }

    #[handler]
    pub fn id(&self) -> u64 {
        self.id
    }

    #[on_start]
    fn check(&mut self) -> Result<(), String> {
        if self.id == 13 {
            Err("account 13 is closed".into())
        } else {
            Ok(())
        }
    }
}

/// A fresh directory under the test's working directory (the one Lunatic grants), emptied first.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from("test-data").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the test data directory can be created");
    dir
}

/// Helpers for the NATS client tests (`tests/tests/nats_*.rs`).
pub mod nats;

/// Records supervision events in order, outside the trees under test (keyed by test).
#[agent(kind = "journal")]
pub struct Journal {
    #[key]
    test: String,
    events: Vec<String>,
}

#[agent]
impl Journal {
    #[handler]
    pub fn record(&mut self, event: String) {
        self.events.push(event);
    }

    #[handler]
    pub fn events(&self) -> Vec<String> {
        self.events.clone()
    }

    /// The events so far, and forget them.
    #[handler]
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }
}

/// A supervised agent whose starts and stops go to the journal of its test: its key is
/// `<test>-<name>`. It keeps a persisted counter so restarts can be checked for state.
#[agent(kind = "member")]
pub struct Member {
    #[key]
    key: String,
    #[persist]
    count: u64,
}

impl Member {
    fn journal(&self) -> Option<JournalRef> {
        let (test, _) = self.key.split_once('-')?;
        Journal::lookup(test.to_owned())
    }

    fn note(&self, what: &str) {
        let name = self
            .key
            .split_once('-')
            .map(|(_, n)| n)
            .unwrap_or(&self.key);
        if let Some(journal) = self.journal() {
            let _ = journal.record(format!("{what} {name}"));
        }
    }
}

#[agent]
impl Member {
    #[handler]
    pub fn incr(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler]
    pub fn count(&self) -> u64 {
        self.count
    }

    #[handler]
    pub fn crash(&mut self) {
        panic!("member {} asked to crash", self.key);
    }

    #[on_start]
    fn started(&mut self) {
        self.note("start");
    }

    #[on_stop]
    fn stopped(&mut self) {
        self.note("stop");
    }
}

/// An agent without a key, for pools and unkeyed children.
#[agent]
pub struct Worker {
    served: u64,
}

#[agent]
impl Worker {
    #[handler]
    pub fn work(&mut self, ms: u64) -> u64 {
        if ms > 0 {
            lunatic::sleep(Duration::from_millis(ms));
        }
        self.served += 1;
        self.served
    }

    #[handler]
    pub fn crash(&mut self) {
        panic!("worker asked to crash");
    }
}

/// Polls `check` every 5 ms until it is true or `within` passed; returns whether it became true.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if check() {
            return true;
        }
        lunatic::sleep(Duration::from_millis(5));
    }
    check()
}

/// An agent whose `#[on_start]` gets or starts another agent: starting it must not deadlock the
/// registrar that is starting it.
#[agent(kind = "greeter")]
pub struct Greeter {
    #[key]
    name: String,
    counter: Option<CounterRef>,
}

#[agent]
impl Greeter {
    /// Counts a greeting in its own counter agent.
    #[handler]
    pub fn greet(&self) -> u64 {
        let counter = self.counter.as_ref().expect("set by on_start");
        counter
            .add(1)
            .expect("the counter answers")
            .expect("no overflow")
    }

    #[on_start]
    fn find_counter(&mut self) -> Result<(), String> {
        let counter = Counter::launcher()
            .store(StoreConfig::memory("greeters"))
            .get_or_start(format!("{}-greetings", self.name))
            .map_err(|err| err.to_string())?;
        self.counter = Some(counter);
        Ok(())
    }
}

/// An agent whose `#[on_start]` tries to get or start itself (a mistake the runtime must report
/// instead of waiting for itself).
#[agent(kind = "narcissus")]
pub struct Narcissus {
    #[key]
    name: String,
}

#[agent]
impl Narcissus {
    #[handler]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    #[on_start]
    fn find_myself(&mut self) -> Result<(), String> {
        Narcissus::get_or_start(self.name.clone())
            .map(|_| ())
            .map_err(|err| err.to_string())
    }
}

/// An answer whose `Serialize` always fails: what a caller gets must be an error, not a hang, and
/// the agent must go on.
#[derive(Debug, Clone, PartialEq)]
pub struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

/// A keyed agent with answers of any size, for the limits of the NATS front door.
#[agent(kind = "notes")]
pub struct Notes {
    #[key]
    name: String,
    #[persist]
    notes: Vec<String>,
}

#[agent]
impl Notes {
    /// Keeps a note; returns how many there are.
    #[handler]
    pub fn post(&mut self, text: String) -> usize {
        self.notes.push(text);
        self.notes.len()
    }

    /// Every note kept (grows with every post).
    #[handler]
    pub fn history(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// An answer of `bytes` bytes.
    #[handler]
    pub fn blob(&self, bytes: usize) -> String {
        "x".repeat(bytes)
    }

    #[handler]
    pub fn unencodable(&self) -> Unencodable {
        Unencodable
    }

    /// Panics with a message of `bytes` bytes.
    #[handler]
    pub fn panic_with(&self, bytes: usize) -> u64 {
        panic!("{}", "p".repeat(bytes))
    }
}

/// An agent whose start takes `SLOW_START` (its `#[on_start]` sleeps): a window in which a start
/// is in flight.
#[agent(kind = "slow-starter")]
pub struct SlowStarter {
    #[key]
    name: String,
    /// How many starts got to the end of `#[on_start]` (saved by it).
    #[persist]
    starts: u32,
}

/// How long a [`SlowStarter`] takes to start.
pub const SLOW_START: Duration = Duration::from_millis(1500);

#[agent]
impl SlowStarter {
    #[handler]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    #[handler]
    pub fn starts(&self) -> u32 {
        self.starts
    }

    #[on_start]
    fn take_time(&mut self) {
        lunatic::sleep(SLOW_START);
        self.starts += 1;
    }
}

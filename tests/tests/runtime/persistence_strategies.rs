//! Persistence strategies per kind: write-through (the default) loses no acknowledged write when
//! its agent is killed; write-behind answers first and saves on a timer, on stop and on
//! passivation, and a kill loses at most the acknowledged writes of its last `save_every`. The
//! crash tests print what they saw: acknowledged writes, and how many a restart did not find.

use std::time::{Duration, Instant};

use serde::Deserialize;
use swarm::prelude::*;
use swarm_tests::scratch_dir;

/// Write-through, the default: each `add` is saved before it is answered.
#[agent(kind = "ledger-through", persistence = "write_through")]
pub struct LedgerThrough {
    #[key]
    id: String,
    #[persist]
    count: u64,
}

#[agent]
impl LedgerThrough {
    #[handler]
    pub fn add(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Write-behind every 100 ms: `add` is answered first, saved at most 100 ms later.
#[agent(
    kind = "ledger-behind",
    persistence = "write_behind",
    save_every = "500ms"
)]
pub struct LedgerBehind {
    #[key]
    id: String,
    #[persist]
    count: u64,
}

#[agent]
impl LedgerBehind {
    #[handler]
    pub fn add(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Write-behind with an interval far longer than any test here: only a stop or a passivation
/// saves it in time.
#[agent(kind = "ledger-lazy", persistence = "write_behind", save_every = "1h")]
pub struct LedgerLazy {
    #[key]
    id: String,
    #[persist]
    count: u64,
}

#[agent]
impl LedgerLazy {
    #[handler]
    pub fn add(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The write-behind interval of `LedgerBehind`.
const EVERY: Duration = Duration::from_millis(500);
/// What a write-behind save may take past its deadline on a busy test machine: the message being
/// handled then, the store's write itself, and a stall of the test's own process (a CI machine
/// running builds beside the suite stalls one for hundreds of milliseconds).
const SLACK: Duration = Duration::from_secs(1);

/// The `count` of a stored record, read straight from the store (not through an agent).
fn stored_count(store: &StoreConfig, storage_key: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Fields {
        count: Option<u64>,
    }
    let record = store.open().unwrap().get(storage_key).unwrap()?;
    swarm::record::decode::<Fields>(&record).unwrap().count
}

/// What a stream of acknowledged `add`s saw until its agent was killed under it.
struct Stream {
    /// The answer of each acknowledged `add` (1, 2, 3, ...) and when it arrived.
    acks: Vec<(u64, Instant)>,
    /// When the first call failed: just after the kill (the caller is linked to the agent while
    /// it waits, so it learns of the kill at once), an upper bound of the kill's time.
    killed_by: Instant,
}

/// Calls `add` in a loop from this process while another one kills the agent `run` after the
/// tenth acknowledgement (a stream long enough to check, on a loaded machine too, with the kill
/// landing wherever the agent happens to be); stops at the first call that fails (the agent is
/// gone).
fn stream_until_killed<H>(agent: &H, run: Duration, add: impl Fn(&H) -> Option<u64>) -> Stream
where
    H: AgentHandle + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    const ACKS_BEFORE_THE_CLOCK: usize = 10;
    let started = Instant::now();
    let killer = lunatic::Process::spawn_link(
        (agent.clone(), run.as_millis() as u64),
        |(agent, run_ms): (H, u64), mailbox: lunatic::Mailbox<()>| {
            mailbox.receive();
            lunatic::sleep(Duration::from_millis(run_ms));
            agent.kill();
        },
    );
    let mut acks = Vec::new();
    while let Some(count) = add(agent) {
        acks.push((count, Instant::now()));
        if acks.len() == ACKS_BEFORE_THE_CLOCK {
            killer.send(());
        }
    }
    let killed_by = Instant::now();
    assert!(
        killed_by >= started + run,
        "the stream ended with the kill, not before"
    );
    Stream { acks, killed_by }
}

#[lunatic::test]
fn write_through_loses_no_acknowledged_write_when_killed() {
    for (store, name) in [
        (StoreConfig::file(scratch_dir("through-kill-file")), "file"),
        (
            StoreConfig::sqlite(scratch_dir("through-kill-sqlite"), "db.sqlite"),
            "sqlite",
        ),
    ] {
        let ledger = LedgerThrough::launcher()
            .store(store.clone())
            .get_or_start(name)
            .unwrap();
        let stream = stream_until_killed(&ledger, Duration::from_millis(400), |ledger| {
            ledger.add().ok()
        });
        let acked = stream.acks.last().map_or(0, |(count, _)| *count);
        assert!(acked > 10, "a stream of writes before the kill ({acked})");
        let again = LedgerThrough::launcher()
            .store(store)
            .get_or_start(name)
            .unwrap();
        let found = again.count().unwrap();
        println!(
            "write-through ({name}): {acked} acknowledged writes before the kill, {} lost",
            acked.saturating_sub(found)
        );
        // The call the kill interrupted may have been saved without being answered: one more.
        assert!(
            found == acked || found == acked + 1,
            "{name}: {acked} acknowledged, {found} after the restart"
        );
    }
}

#[lunatic::test]
fn write_behind_loses_at_most_its_window_when_killed() {
    for (store, name) in [
        (StoreConfig::file(scratch_dir("behind-kill-file")), "file"),
        (
            StoreConfig::sqlite(scratch_dir("behind-kill-sqlite"), "db.sqlite"),
            "sqlite",
        ),
    ] {
        let ledger = LedgerBehind::launcher()
            .store(store.clone())
            .get_or_start(name)
            .unwrap();
        let stream = stream_until_killed(
            &ledger,
            EVERY + SLACK + Duration::from_millis(600),
            |ledger| ledger.add().ok(),
        );
        let acked = stream.acks.last().map_or(0, |(count, _)| *count);
        let again = LedgerBehind::launcher()
            .store(store)
            .get_or_start(name)
            .unwrap();
        let found = again.count().unwrap();
        let lost = acked.saturating_sub(found);
        // Every write acknowledged before the window (and the slack) ended must be there.
        let must_have = stream
            .acks
            .iter()
            .take_while(|(_, at)| *at + EVERY + SLACK <= stream.killed_by)
            .last()
            .map_or(0, |(count, _)| *count);
        let lost_window = stream
            .acks
            .iter()
            .find(|(count, _)| *count == found + 1)
            .map_or("none".to_owned(), |(_, at)| {
                format!("{:.1?}", stream.killed_by.saturating_duration_since(*at))
            });
        println!(
            "write-behind every {EVERY:?} ({name}): {acked} acknowledged writes before the kill, \
             {lost} lost (the oldest acknowledged {lost_window} before it)"
        );
        assert!(
            must_have > 10,
            "{name}: a stream of writes older than the window ({must_have})"
        );
        assert!(
            found >= must_have,
            "{name}: {found} after the restart, but {must_have} were acknowledged more than \
             {EVERY:?} + {SLACK:?} before the kill"
        );
        assert!(found <= acked, "{name}: {found} > {acked} acknowledged");
    }
}

#[lunatic::test]
fn write_behind_answers_first_and_saves_within_its_interval() {
    let store = StoreConfig::file(scratch_dir("behind-timer"));
    let ledger = LedgerBehind::launcher()
        .store(store.clone())
        .get_or_start("t")
        .unwrap();
    let asked = Instant::now();
    assert_eq!(ledger.add().unwrap(), 1);
    let stored = stored_count(&store, "ledger-behind/t");
    // The save is due EVERY after the change: only a machine that stalled that long may show it.
    if asked.elapsed() < EVERY {
        assert_eq!(stored, None, "answered before it was saved");
    }
    let acked = Instant::now();
    while stored_count(&store, "ledger-behind/t") != Some(1) {
        assert!(
            acked.elapsed() < EVERY + SLACK,
            "not saved {:?} after the answer",
            acked.elapsed()
        );
        lunatic::sleep(Duration::from_millis(5));
    }
    // A steady stream of writes does not put the save off: each is on disk within the interval.
    let started = Instant::now();
    let mut last = 1;
    while started.elapsed() < EVERY * 5 {
        last = ledger.add().unwrap();
    }
    let streamed = Instant::now();
    let seen_at_end = stored_count(&store, "ledger-behind/t").unwrap_or(0);
    assert!(
        seen_at_end > 1,
        "saved while the writes kept coming ({seen_at_end} of {last})"
    );
    while stored_count(&store, "ledger-behind/t") != Some(last) {
        assert!(
            streamed.elapsed() < EVERY + SLACK,
            "the last write not saved {:?} after it",
            streamed.elapsed()
        );
        lunatic::sleep(Duration::from_millis(5));
    }
}

#[lunatic::test]
fn write_behind_saves_on_an_orderly_stop() {
    let store = StoreConfig::sqlite(scratch_dir("behind-stop"), "db.sqlite");
    let ledger = LedgerLazy::launcher()
        .store(store.clone())
        .get_or_start("s")
        .unwrap();
    for _ in 0..5 {
        ledger.add().unwrap();
    }
    assert_eq!(stored_count(&store, "ledger-lazy/s"), None, "not saved yet");
    ledger.shutdown().unwrap();
    assert_eq!(stored_count(&store, "ledger-lazy/s"), Some(5));
    let again = LedgerLazy::launcher()
        .store(store)
        .get_or_start("s")
        .unwrap();
    assert_eq!(again.count().unwrap(), 5);
}

#[lunatic::test]
fn write_behind_saves_when_it_passivates() {
    let store = StoreConfig::file(scratch_dir("behind-passivate"));
    let ledger = LedgerLazy::launcher()
        .store(store.clone())
        .passivate_after(Duration::from_secs(1))
        .get_or_start("p")
        .unwrap();
    for _ in 0..7 {
        ledger.add().unwrap();
    }
    assert_eq!(stored_count(&store, "ledger-lazy/p"), None, "not saved yet");
    let started = Instant::now();
    while ledger.is_alive() {
        assert!(started.elapsed() < Duration::from_secs(10), "passivated");
        lunatic::sleep(Duration::from_millis(10));
    }
    assert_eq!(stored_count(&store, "ledger-lazy/p"), Some(7));
    // The next call starts it again, with its state.
    assert_eq!(ledger.add().unwrap(), 8);
    assert!(ledger.is_alive());
}

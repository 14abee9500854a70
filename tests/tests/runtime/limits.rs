//! Limits per agent kind: a handler stuck in a loop is stopped at its kind's time budget, an agent
//! that grows past its kind's memory cap stops; each caller gets a clear error, the agent
//! restarts from its last saved state, and the other agents of the node keep answering meanwhile.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process};
use swarm::prelude::*;
use swarm::CallFailure;

/// Spins for ever when asked: its kind allows a message 300 ms.
#[agent(kind = "spinner", message_budget = "300ms", passivate_after = "10s")]
pub struct Spinner {
    #[key]
    id: String,
    #[persist]
    spins: u64,
}

#[agent]
impl Spinner {
    /// Counts a spin; with `forever`, never returns.
    #[handler]
    pub fn spin(&mut self, forever: bool) -> u64 {
        self.spins += 1;
        let mut turns: u64 = 0;
        // Read anew each turn: the loop is meant to never end.
        while std::hint::black_box(forever) {
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
        self.spins
    }
}

/// Keeps what it is given in memory: its kind may hold 48 MiB.
#[agent(kind = "hog", max_memory = "48MiB", passivate_after = "10s")]
pub struct Hog {
    #[key]
    id: String,
    #[persist]
    grows: u64,
    heap: Vec<Vec<u8>>,
}

#[agent]
impl Hog {
    /// Keeps `mib` more MiB; answers how many calls it took.
    #[handler]
    pub fn grow(&mut self, mib: u64) -> u64 {
        self.grows += 1;
        for _ in 0..mib {
            self.heap.push(vec![1; 1 << 20]);
        }
        self.grows
    }
}

/// An ordinary neighbour.
#[agent(kind = "neighbour")]
pub struct Neighbour {
    #[key]
    id: String,
    calls: u64,
}

#[agent]
impl Neighbour {
    #[handler]
    pub fn call(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

/// What the test's helper processes tell it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Report {
    /// A neighbour's calls during the fault: answered, failed.
    Neighbour(u64, u64),
    /// A flooding caller's call: served, and how long it took in ms.
    Flood(bool, u64),
    /// A flooding caller has its handle and waits for the word to call.
    Ready,
}

/// The test process' mailbox of [`Report`]s.
fn reports() -> Mailbox<Report> {
    // SAFETY: the test process receives nothing but its helpers' reports.
    unsafe { Mailbox::new() }
}

fn this() -> Process<Report> {
    // SAFETY: `this()` only reads this process' ids.
    unsafe { Process::<Report>::this() }
}

/// Calls a neighbour agent every 5 ms for `for_ms`, then reports.
fn neighbours_during(for_ms: u64) {
    Process::spawn((this(), for_ms), |(parent, for_ms), _: Mailbox<()>| {
        let neighbour = Neighbour::get_or_start("n").unwrap();
        let until = Instant::now() + Duration::from_millis(for_ms);
        let (mut answered, mut failed) = (0, 0);
        while Instant::now() < until {
            match neighbour.call() {
                Ok(_) => answered += 1,
                Err(_) => failed += 1,
            }
            lunatic::sleep(Duration::from_millis(5));
        }
        parent.send(Report::Neighbour(answered, failed));
    });
}

/// The next report (a helper that panicked never sends one: the test fails instead of waiting).
fn next_report() -> Report {
    reports()
        .receive_timeout(Duration::from_secs(30))
        .expect("a helper process reported")
}

/// Waits for the neighbour's report; `floods` collects the flooding callers' reports meanwhile.
fn neighbour_report(floods: &mut Vec<(bool, u64)>) -> (u64, u64) {
    loop {
        match next_report() {
            Report::Neighbour(answered, failed) => return (answered, failed),
            Report::Flood(served, ms) => floods.push((served, ms)),
            Report::Ready => unreachable!("every caller was ready before the flood"),
        }
    }
}

#[lunatic::test]
fn a_handler_stuck_in_a_loop_is_stopped_at_its_budget() {
    swarm::set_default_store(StoreConfig::memory("limits")).unwrap();
    let spinner = Spinner::get_or_start("s").unwrap();
    assert_eq!(spinner.spin(false).unwrap(), 1);
    neighbours_during(1_500);

    let begun = Instant::now();
    let err = spinner.spin(true).unwrap_err();
    let took = begun.elapsed();
    assert!(matches!(err.reason, CallFailure::OverBudget(_)), "{err}");
    assert!(err.to_string().contains("300ms"), "{err}");
    assert_eq!(err.reason.applied(), Some(false));
    assert!(took < Duration::from_secs(3), "stopped only after {took:?}");

    // The same handle starts it again, from its last saved state: the stuck spin was not saved.
    assert_eq!(spinner.spin(false).unwrap(), 2);
    let (answered, failed) = neighbour_report(&mut Vec::new());
    assert_eq!(
        failed, 0,
        "a neighbour's call failed while the spinner spun"
    );
    assert!(
        answered >= 10,
        "only {answered} neighbour calls answered in 1.5 s"
    );
}

#[lunatic::test]
fn an_agent_past_its_memory_cap_stops_alone() {
    swarm::set_default_store(StoreConfig::memory("limits")).unwrap();
    let hog = Hog::get_or_start("h").unwrap();
    assert_eq!(hog.grow(8).unwrap(), 1);
    neighbours_during(1_000);

    let err = hog.grow(64).unwrap_err();
    assert!(matches!(err.reason, CallFailure::OverMemory(_)), "{err}");
    assert!(err.to_string().contains("48 MiB"), "{err}");
    assert_eq!(err.reason.applied(), Some(false));

    // Restarted small, from what it saved before: the call past the cap was not saved.
    assert_eq!(hog.grow(1).unwrap(), 2);
    let (answered, failed) = neighbour_report(&mut Vec::new());
    assert_eq!(failed, 0, "a neighbour's call failed while the hog grew");
    assert!(
        answered >= 10,
        "only {answered} neighbour calls answered in 1 s"
    );
}

/// Takes 100 ms a message; at most 5 may wait.
#[agent(kind = "slow", mailbox = 5)]
pub struct Slow {
    #[key]
    id: String,
    done: u64,
}

#[agent]
impl Slow {
    #[handler]
    pub fn work(&mut self) -> u64 {
        lunatic::sleep(Duration::from_millis(100));
        self.done += 1;
        self.done
    }
}

#[lunatic::test]
fn a_flooded_agent_refuses_past_its_mailbox_and_others_are_unaffected() {
    let slow = Slow::get_or_start("flooded").unwrap();
    assert_eq!(slow.work().unwrap(), 1);

    // 40 callers at once, each waiting up to 10 s: unbounded, the last would wait 4 s. Each
    // gets its handle, says so, and waits for the word to call, so that they call together
    // however slowly a busy machine spawns them.
    let callers: Vec<Process<()>> = (0..40)
        .map(|_| {
            Process::spawn(this(), |parent, go: Mailbox<()>| {
                let slow = Slow::get_or_start("flooded")
                    .unwrap()
                    .with_timeout(Duration::from_secs(10));
                parent.send(Report::Ready);
                go.receive();
                let begun = Instant::now();
                let outcome = slow.work();
                if let Err(err) = &outcome {
                    assert!(matches!(err.reason, CallFailure::Overloaded(_)), "{err}");
                    assert_eq!(err.reason.applied(), Some(false));
                }
                parent.send(Report::Flood(
                    outcome.is_ok(),
                    begun.elapsed().as_millis() as u64,
                ));
            })
        })
        .collect();
    for _ in &callers {
        assert!(matches!(next_report(), Report::Ready));
    }
    neighbours_during(1_500);
    for caller in &callers {
        caller.send(());
    }
    let mut results = Vec::new();
    let (answered, failed) = neighbour_report(&mut results);
    while results.len() < 40 {
        match next_report() {
            Report::Flood(served, ms) => results.push((served, ms)),
            other => unreachable!("{other:?} after the neighbour's report"),
        }
    }
    let served = results.iter().filter(|(ok, _)| *ok).count();
    let refused: Vec<u64> = results
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, ms)| *ms)
        .collect();
    assert!(served >= 5, "only {served} of 40 served");
    // Unbounded, all 40 would be served (the last after 4 s); bounded, the callers that came
    // while 5 waited are refused (about 34; fewer when a loaded machine spreads them out).
    assert!(
        refused.len() >= 20,
        "only {} of 40 refused: {results:?}",
        refused.len()
    );
    // Refused as soon as the agent was between two messages, not after queueing.
    assert!(
        refused.iter().all(|&ms| ms < 1_000),
        "refusals took up to {:?} ms",
        refused.iter().max()
    );
    assert_eq!(failed, 0, "a neighbour's call failed during the flood");
    assert!(
        answered >= 10,
        "only {answered} neighbour calls answered in 1.5 s"
    );
}

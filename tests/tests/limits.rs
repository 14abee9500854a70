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

/// Calls a neighbour agent every 5 ms for `for_ms`; reports (answered, failed).
fn neighbours_during(for_ms: u64) -> Mailbox<(u64, u64)> {
    // SAFETY: `this()` only reads this process' ids; it receives only the report.
    let this = unsafe { Process::<(u64, u64)>::this() };
    Process::spawn((this, for_ms), |(parent, for_ms), _: Mailbox<()>| {
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
        parent.send((answered, failed));
    });
    // SAFETY: as above.
    unsafe { Mailbox::new() }
}

#[lunatic::test]
fn a_handler_stuck_in_a_loop_is_stopped_at_its_budget() {
    swarm::set_default_store(StoreConfig::memory("limits")).unwrap();
    let spinner = Spinner::get_or_start("s").unwrap();
    assert_eq!(spinner.spin(false).unwrap(), 1);
    let neighbours = neighbours_during(1_500);

    let begun = Instant::now();
    let err = spinner.spin(true).unwrap_err();
    let took = begun.elapsed();
    assert!(matches!(err.reason, CallFailure::OverBudget(_)), "{err}");
    assert!(err.to_string().contains("300ms"), "{err}");
    assert_eq!(err.reason.applied(), Some(false));
    assert!(took < Duration::from_secs(3), "stopped only after {took:?}");

    // The same handle starts it again, from its last saved state: the stuck spin was not saved.
    assert_eq!(spinner.spin(false).unwrap(), 2);
    let (answered, failed) = neighbours.receive();
    assert_eq!(
        failed, 0,
        "a neighbour's call failed while the spinner spun"
    );
    assert!(
        answered >= 20,
        "only {answered} neighbour calls answered in 1.5 s"
    );
}

#[lunatic::test]
fn an_agent_past_its_memory_cap_stops_alone() {
    swarm::set_default_store(StoreConfig::memory("limits")).unwrap();
    let hog = Hog::get_or_start("h").unwrap();
    assert_eq!(hog.grow(8).unwrap(), 1);
    let neighbours = neighbours_during(1_000);

    let err = hog.grow(64).unwrap_err();
    assert!(matches!(err.reason, CallFailure::OverMemory(_)), "{err}");
    assert!(err.to_string().contains("48 MiB"), "{err}");
    assert_eq!(err.reason.applied(), Some(false));

    // Restarted small, from what it saved before: the call past the cap was not saved.
    assert_eq!(hog.grow(1).unwrap(), 2);
    let (answered, failed) = neighbours.receive();
    assert_eq!(failed, 0, "a neighbour's call failed while the hog grew");
    assert!(
        answered >= 20,
        "only {answered} neighbour calls answered in 1 s"
    );
}

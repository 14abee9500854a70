//! Passivation on a node on its own: an idle agent saves, runs `#[on_stop]` and stops; the next
//! call through any handle starts it again with its state, and no acknowledged write is lost
//! when a call lands while the previous activation is still saving.

use std::time::{Duration, Instant};

use swarm::prelude::*;
use swarm_tests::scratch_dir;

#[agent(kind = "tally")]
pub struct Tally {
    #[key]
    id: String,
    #[persist]
    total: u64,
    #[persist]
    stops: u32,
    #[persist]
    starts: u32,
}

#[agent]
impl Tally {
    #[handler]
    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }

    #[handler]
    pub fn stops(&self) -> u32 {
        self.stops
    }

    /// Activations and passivations so far, as saved.
    #[handler]
    pub fn counts(&self) -> (u32, u32) {
        (self.starts, self.stops)
    }

    #[on_start]
    fn started(&mut self) {
        self.starts += 1;
    }

    #[on_stop]
    fn stopped(&mut self) {
        self.stops += 1;
    }
}

fn wait_passivated(key: &str, store: &StoreConfig) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Tally::launcher().store(store.clone()).lookup(key).is_some() {
        assert!(
            Instant::now() < deadline,
            "{key} did not passivate within 15 s"
        );
        lunatic::sleep(Duration::from_millis(10));
    }
}

#[lunatic::test]
fn an_idle_agent_stops_and_its_handle_starts_it_again_with_its_state() {
    let store = StoreConfig::sqlite(scratch_dir("passivate-sqlite"), "agents.db");
    // 1 s: a busy machine's stall between two calls below must not passivate it in between.
    let tally = Tally::launcher()
        .store(store.clone())
        .passivate_after(Duration::from_secs(1))
        .get_or_start("t1")
        .unwrap();
    assert_eq!(tally.add(1).unwrap(), 1);
    let first = tally.process_id().expect("a local agent");

    wait_passivated("t1", &store);
    assert!(!tally.is_alive());
    // The same handle: its call finds the agent gone and starts it again, with its state and
    // with what its `#[on_stop]` saved.
    assert_eq!(tally.add(2).unwrap(), 3);
    assert_ne!(tally.process_id(), Some(first));
    assert_eq!(tally.stops().unwrap(), 1);

    // Another handle to the same key finds the same (new) agent.
    let other = Tally::launcher()
        .store(store.clone())
        .get_or_start("t1")
        .unwrap();
    assert_eq!(other.process_id(), tally.process_id());
    assert_eq!(other.add(4).unwrap(), 7);
}

#[lunatic::test]
fn a_handle_without_passivation_reports_its_stopped_agent() {
    let store = StoreConfig::file(scratch_dir("passivate-none"));
    let tally = Tally::launcher().store(store).get_or_start("t2").unwrap();
    tally.shutdown().unwrap();
    // An agent that does not passivate is not started again behind its caller's back.
    let err = tally.add(1).unwrap_err();
    assert_eq!(err.reason, swarm::CallFailure::NotRunning, "{err}");
}

/// Calls land just before, during and just after passivations (the file store writes without a
/// compare-and-set: a new activation that loaded before the old one's last save would lose the
/// writes it acknowledged). Every acknowledged add must be in the final total.
#[lunatic::test]
fn no_acknowledged_write_is_lost_across_passivations() {
    let store = StoreConfig::file(scratch_dir("passivate-race"));
    let idle = Duration::from_millis(15);
    let tally = Tally::launcher()
        .store(store.clone())
        .passivate_after(idle)
        .get_or_start("race")
        .unwrap();
    let mut acked = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let total = tally.add(1).unwrap();
        acked += 1;
        assert_eq!(total, acked, "an acknowledged add went missing");
        // 0-30 ms: often around the 15 ms idle time, when the agent is passivating.
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        lunatic::sleep(Duration::from_micros((seed >> 33) % 30_000));
    }
    wait_passivated("race", &store);
    let fresh = Tally::launcher()
        .store(store)
        .passivate_after(idle)
        .get_or_start("race")
        .unwrap();
    assert_eq!(fresh.add(0).unwrap(), acked);
    // Each activation but this one passivated, and each passivation's save survived: a new
    // activation that loaded before the previous one's last save would have overwritten it.
    let (starts, stops) = fresh.counts().unwrap();
    assert_eq!(
        stops,
        starts - 1,
        "{starts} activations, {stops} passivations saved"
    );
    assert!(
        stops >= 20,
        "only {stops} passivations: the test did not test them"
    );
}

/// A kind declared to passivate (`#[agent(passivate_after = ..)]`).
#[agent(kind = "session", passivate_after = "100ms")]
pub struct Session {
    #[key]
    id: String,
    #[persist]
    hits: u64,
}

#[agent]
impl Session {
    #[handler]
    pub fn hit(&mut self) -> u64 {
        self.hits += 1;
        self.hits
    }
}

swarm::supervisor! {
    pub Sessions: one_for_one(max_restarts = 3, within_secs = 10) {
        kept: Session("kept"),
    }
}

fn session_gone(key: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Session::lookup(key).is_some() {
        if Instant::now() > deadline {
            return false;
        }
        lunatic::sleep(Duration::from_millis(10));
    }
    true
}

#[lunatic::test]
fn a_kind_declared_to_passivate_does_and_its_supervised_children_do_not() {
    // Both tests of this binary use it: the default store is the node's, shared by its tests.
    swarm::set_default_store(StoreConfig::memory("passivation")).unwrap();
    let session = Session::get_or_start("s1").unwrap();
    assert_eq!(session.hit().unwrap(), 1);
    assert!(
        session_gone("s1"),
        "a session idle for 100 ms did not passivate"
    );
    assert_eq!(
        session.hit().unwrap(),
        2,
        "the handle started it again with its state"
    );

    // A supervisor's child of the same kind is never passivated: the supervisor keeps it up.
    let sessions = Sessions::start().unwrap();
    let kept = sessions.kept().unwrap();
    assert_eq!(kept.hit().unwrap(), 1);
    lunatic::sleep(Duration::from_millis(400));
    assert!(
        Session::lookup("kept").is_some(),
        "a supervised session passivated"
    );
    assert_eq!(kept.hit().unwrap(), 2);
}

/// Through the NATS front door, a passivated agent comes back on its next request.
#[lunatic::test]
fn the_front_door_starts_a_passivated_agent_again() {
    let Some(url) = swarm_tests::nats::server("URL") else {
        return;
    };
    swarm::set_default_store(StoreConfig::memory("passivation")).unwrap();
    let client = swarm_tests::nats::connect(&url);
    let namespace = swarm_tests::nats::unique("passivate").replace('.', "_");
    let _service = swarm::nats::serve_agents::<Session>(&client, &namespace, 1).unwrap();
    let subject = format!("{namespace}.session.door.hit");
    let ask = || {
        let reply = client
            .request(&subject, b"{}", Duration::from_secs(5))
            .expect("an answer");
        String::from_utf8(reply.payload).unwrap()
    };
    assert_eq!(ask(), r#"{"ok":1}"#);
    assert!(session_gone("door"), "the session did not passivate");
    assert_eq!(ask(), r#"{"ok":2}"#);
}

//! Crash semantics: a caller never hangs, and a restarted agent has every acknowledged write,
//! with each store.

use std::time::{Duration, Instant};

use swarm::prelude::*;
use swarm_tests::{scratch_dir, Counter, CounterRef};

/// Adds to a counter, crashes it mid-way with an unacknowledged change, restarts it, and checks
/// that exactly the acknowledged writes survived.
fn survives_a_crash(store: StoreConfig, key: &str) {
    let counter = Counter::launcher()
        .store(store.clone())
        .get_or_start(key)
        .unwrap();
    for n in 1..=10 {
        counter.add(n).unwrap().unwrap();
    }
    let err = counter.crash("mid-way".into()).unwrap_err();
    assert!(matches!(err.reason, CallFailure::Panicked(_)), "{err}");
    assert!(!counter.is_alive());

    let again = Counter::launcher().store(store).get_or_start(key).unwrap();
    assert_ne!(again.process_id(), counter.process_id(), "a new process");
    assert_eq!(
        again.total().unwrap(),
        55,
        "every acknowledged add, not the crashed change"
    );
    assert_eq!(
        again.total_at_start().unwrap(),
        55,
        "on_start ran after the state was loaded"
    );
    assert_eq!(
        again.calls().unwrap(),
        0,
        "ephemeral fields start from Default"
    );
}

#[lunatic::test]
fn memory_store_state_survives_a_crash() {
    survives_a_crash(StoreConfig::memory("crash"), "mem");
}

#[lunatic::test]
fn file_store_state_survives_a_crash() {
    survives_a_crash(StoreConfig::file(scratch_dir("crash-file")), "file");
}

#[lunatic::test]
fn sqlite_store_state_survives_a_crash() {
    survives_a_crash(
        StoreConfig::sqlite(scratch_dir("crash-sqlite"), "agents.db"),
        "sqlite",
    );
}

#[lunatic::test]
fn a_message_that_crashes_the_agent_loses_only_its_own_change() {
    let store = StoreConfig::memory("crash-msg");
    let counter = Counter::launcher()
        .store(store.clone())
        .get_or_start("a")
        .unwrap();
    counter.add(3).unwrap().unwrap();
    counter.crash_later().unwrap();
    // The caller queued behind the crash learns the agent stopped, instead of hanging.
    let err = counter.total().unwrap_err();
    assert!(
        matches!(err.reason, CallFailure::Stopped | CallFailure::NotRunning),
        "{err}"
    );
    let again = Counter::launcher().store(store).get_or_start("a").unwrap();
    assert_eq!(again.total().unwrap(), 3);
}

#[lunatic::test]
fn a_caller_waiting_on_a_killed_agent_gets_an_error_not_a_hang() {
    let counter = Counter::launcher()
        .store(StoreConfig::memory("kill"))
        .get_or_start("a")
        .unwrap();
    // Kill it from another process while our request sleeps inside it (a second on: a busy
    // machine may hold the request back for a while).
    lunatic::Process::spawn_link(
        counter.clone(),
        |counter: CounterRef, _: lunatic::Mailbox<()>| {
            lunatic::sleep(Duration::from_secs(1));
            counter.kill();
        },
    );
    let started = Instant::now();
    let err = counter.without_timeout().sleep(60_000).unwrap_err();
    assert_eq!(err.reason, CallFailure::Stopped);
    assert_eq!(
        err.to_string(),
        "counter/a.sleep: the agent stopped before it answered"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "noticed in {:?}",
        started.elapsed()
    );
}

#[lunatic::test]
fn an_orderly_stop_runs_the_hook_and_saves_what_it_changed() {
    let dir = scratch_dir("stop");
    let counter = Counter::launcher()
        .store(StoreConfig::file(&dir))
        .get_or_start("a")
        .unwrap();
    counter.add(4).unwrap().unwrap();
    counter.shutdown().unwrap();
    let again = Counter::launcher()
        .store(StoreConfig::file(&dir))
        .get_or_start("a")
        .unwrap();
    assert_eq!(again.stops().unwrap(), 1);
    assert_eq!(again.total().unwrap(), 4);
}

#[lunatic::test]
fn a_killed_agent_keeps_its_acknowledged_state_with_every_store() {
    for (store, key) in [
        (StoreConfig::memory("killed"), "m"),
        (StoreConfig::file(scratch_dir("killed-file")), "f"),
        (
            StoreConfig::sqlite(scratch_dir("killed-sqlite"), "db.sqlite"),
            "s",
        ),
    ] {
        let counter = Counter::launcher()
            .store(store.clone())
            .get_or_start(key)
            .unwrap();
        counter.add(21).unwrap().unwrap();
        counter.add(21).unwrap().unwrap();
        counter.kill();
        while counter.is_alive() {
            lunatic::sleep(Duration::from_millis(1));
        }
        let again = Counter::launcher().store(store).get_or_start(key).unwrap();
        assert_eq!(again.total().unwrap(), 42, "{key}");
        assert_eq!(
            again.stops().unwrap(),
            0,
            "a kill runs no stop hook ({key})"
        );
    }
}

//! The node's registrar, killed: callers waiting on it get an error at once instead of waiting for
//! ever, and the next call starts a new registrar. (Its own test binary: killing the registrar
//! touches every test running on the node at the same moment.)

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process};
use swarm::prelude::*;
use swarm::runtime::registry::current_registrar;
use swarm_tests::{Counter, SlowStarter, SLOW_START};

fn start_slow_in_background(key: &'static str) -> Mailbox<Result<String, String>> {
    // SAFETY: `this()` only reads the current process' ids.
    let this = unsafe { Process::<Result<String, String>>::this() };
    Process::spawn((this, key.to_owned()), |(parent, key), _: Mailbox<()>| {
        let outcome = SlowStarter::get_or_start(key)
            .map_err(|err| err.to_string())
            .and_then(|agent| agent.name().map_err(|err| err.to_string()));
        parent.send(outcome);
    });
    // SAFETY: this process receives only the one answer above.
    unsafe { Mailbox::new() }
}

#[lunatic::test]
fn a_killed_registrar_is_replaced_and_callers_waiting_on_it_get_an_error() {
    swarm::set_default_store(StoreConfig::memory("registrar-restart")).unwrap();
    let before = Counter::get_or_start("before").unwrap();
    assert_eq!(before.add(1).unwrap(), Ok(1));
    let registrar = current_registrar().expect("a registrar runs once an agent was started");

    // A start in flight (its on_start takes SLOW_START) when the registrar is killed.
    let waiter = start_slow_in_background("slow");
    assert!(swarm_tests::eventually(SLOW_START, || {
        swarm::node_stats().unwrap().starts_in_flight == 1
    }));
    let killed_at = Instant::now();
    swarm::runtime::host::kill(registrar);
    let outcome = waiter
        .receive_timeout(SLOW_START * 4)
        .expect("the waiting caller gets an answer");
    let waited = killed_at.elapsed();
    let error = outcome.expect_err("the start was lost with the registrar");
    assert!(
        error.contains("registrar stopped before it answered"),
        "{error}"
    );
    assert!(
        waited < SLOW_START,
        "the caller waited {waited:?} after the registrar was killed"
    );

    // The next call starts a new registrar: new keys start, restarted agents come back.
    let after = Counter::get_or_start("after").unwrap();
    assert_eq!(after.add(2).unwrap(), Ok(2));
    let new_registrar = current_registrar().unwrap();
    assert_ne!(new_registrar, registrar);
    assert_eq!(before.add(1).unwrap(), Ok(2), "a live agent is not touched");
    before.kill();
    let restarted = Counter::get_or_start("before").unwrap();
    assert_eq!(
        restarted.total().unwrap(),
        2,
        "restarted with its saved state"
    );
    assert_eq!(
        SlowStarter::get_or_start("slow").unwrap().name().unwrap(),
        "slow"
    );
    // Killed again (a kill is a signal: wait until it has landed), replaced again.
    swarm::runtime::host::kill(new_registrar);
    assert!(swarm_tests::eventually(Duration::from_secs(5), || {
        !swarm::runtime::host::exists(new_registrar)
    }));
    assert_eq!(
        Counter::get_or_start("third").unwrap().add(3).unwrap(),
        Ok(3)
    );
    assert_ne!(current_registrar().unwrap(), new_registrar);
}

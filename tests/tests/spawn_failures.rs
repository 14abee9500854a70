//! A node that cannot spawn one more process. `scripts/lunatic-runner` runs this test binary (and
//! only this one) under an address-space limit (`ulimit -v`) that leaves room for a few dozen
//! Lunatic processes, so spawns fail for real (`Cannot allocate memory`), as they do on a node
//! that a flood of callers filled up.

use std::time::Duration;

use swarm::prelude::*;
use swarm_tests::{eventually, Counter, CounterRef};

/// More agents than the limited address space can hold.
const TOO_MANY: usize = 400;

#[lunatic::test]
fn a_spawn_the_node_cannot_make_is_an_error_for_that_caller_and_starts_work_again_after() {
    swarm::set_default_store(StoreConfig::memory("spawn-failures")).unwrap();
    let mut live: Vec<CounterRef> = Vec::new();
    let failure = loop {
        match Counter::get_or_start(format!("c{}", live.len())) {
            Ok(counter) => live.push(counter),
            Err(err) => break err,
        }
        assert!(
            live.len() < TOO_MANY,
            "{TOO_MANY} agents started without one spawn failing: this binary must run under \
             scripts/lunatic-runner's address-space limit"
        );
    };
    eprintln!("spawn failure after {} agents: {failure}", live.len());
    // The caller gets the runtime's reason, typed; not a crash, not "the registrar stopped".
    match &failure {
        StartError::Spawn { kind, key, reason } => {
            assert_eq!(kind, "counter");
            assert_eq!(key, &format!("c{}", live.len()));
            assert!(!reason.is_empty());
        }
        other => panic!("expected StartError::Spawn, got {other:?}"),
    }
    // Trying again fails the same way, and the node still serves every agent it holds. The
    // runtime's own address space (threads, allocator arenas, the compile cache) moves by a few
    // MiB, so the room one failure left can now and then hold one more agent: such a start is
    // kept and counted, and the next try must fail.
    let mut late: Vec<CounterRef> = Vec::new();
    let again = loop {
        match Counter::get_or_start(format!("late{}", late.len())) {
            Ok(counter) => late.push(counter),
            Err(err) => break err,
        }
        assert!(
            late.len() <= 2,
            "{} more agents started after a spawn failed",
            late.len()
        );
    };
    eprintln!("{} more started before the next failure", late.len());
    assert!(
        matches!(again, StartError::Spawn { .. }),
        "expected StartError::Spawn, got {again:?}"
    );
    for counter in live.iter().chain(&late) {
        assert_eq!(counter.add(1).unwrap(), Ok(1));
    }
    let stats = swarm::node_stats().unwrap();
    assert!(stats.failed_starts >= 2, "{stats:?}");
    assert_eq!(
        stats.live_agents as usize,
        live.len() + late.len(),
        "{stats:?}"
    );

    // No room at all: fill what is left with idle processes, so that the registrar's own spawn
    // (of the process that runs a start) fails too. It answers with the reason and lives on.
    let registrar = swarm::runtime::registry::current_registrar().unwrap();
    let mut fillers = Vec::new();
    let fill = |fillers: &mut Vec<_>| {
        while let Ok(filler) = swarm::runtime::process::spawn((), |()| loop {
            lunatic::sleep(Duration::from_secs(60));
        }) {
            fillers.push(filler);
            assert!(fillers.len() < TOO_MANY);
        }
    };
    for _ in 0..3 {
        // Filled again before each try: the room the runtime's own use leaves moves a little.
        fill(&mut fillers);
        match Counter::get_or_start("no-room") {
            Err(StartError::Spawn { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("expected StartError::Spawn, got {other:?}"),
        }
    }
    assert_eq!(
        swarm::runtime::registry::current_registrar(),
        Some(registrar),
        "the same registrar serves on"
    );
    for filler in fillers {
        swarm::runtime::host::kill(filler);
    }

    // Room again: stop a few agents; the registrar (the same one) starts new ones, and a stopped
    // agent comes back with its state.
    for counter in live.drain(live.len() - 4..) {
        counter.shutdown().unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || {
        Counter::get_or_start("one-more").is_ok()
    }));
    let again = Counter::get_or_start(format!("c{}", live.len())).unwrap();
    assert_eq!(again.total().unwrap(), 1, "restarted with its saved state");
}

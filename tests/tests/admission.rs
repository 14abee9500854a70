//! Admission control: a node refuses starts past its `NodeLimits` at once, with an error that
//! names the limit, and goes on serving the agents it holds. (Its own test binary: the limits are
//! node-wide.)

use std::time::Duration;

use lunatic::{Mailbox, Process};
use swarm::nats::{serve_agents, NatsClient};
use swarm::prelude::*;
use swarm::{NodeLimits, StartError};
use swarm_tests::nats::{connect, server, unique};
use swarm_tests::{eventually, Counter, SlowStarter, SLOW_START};

const TIMEOUT: Duration = Duration::from_secs(5);

fn ask(client: &NatsClient, subject: &str, payload: &str) -> serde_json::Value {
    let reply = client
        .request(subject, payload.as_bytes(), TIMEOUT)
        .unwrap_or_else(|err| panic!("no answer to {subject} within {TIMEOUT:?}: {err}"));
    serde_json::from_slice(&reply.payload).expect("the reply is JSON")
}

#[lunatic::test]
fn a_flood_of_distinct_keys_is_refused_past_the_limit_and_the_node_keeps_serving() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("admission")).unwrap();
    let client = connect(&url);
    let ns = unique("admission");
    let service = serve_agents::<Counter>(&client, &ns, 2).unwrap();

    let live_before = swarm::node_stats().unwrap().live_agents as usize;
    let max_agents = live_before + 20;
    swarm::set_node_limits(NodeLimits {
        max_agents,
        ..NodeLimits::default()
    })
    .unwrap();

    // A hostile client asks for 200 distinct keys.
    let (mut served, mut refused) = (0, 0);
    for n in 0..200 {
        let answer = ask(
            &client,
            &format!("{ns}.counter.flood{n}.add"),
            r#"{"n": 1}"#,
        );
        if answer == serde_json::json!({"ok": {"Ok": 1}}) {
            served += 1;
        } else {
            assert_eq!(answer["error"]["kind"], "overloaded", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("max_agents = {max_agents}")),
                "{message}"
            );
            refused += 1;
        }
    }
    assert_eq!((served, refused), (20, 180));
    let stats = swarm::node_stats().unwrap();
    assert_eq!(stats.refused_starts, 180, "{stats:?}");
    assert_eq!(stats.live_agents as usize, max_agents, "{stats:?}");

    // The agents it holds are served as before, through NATS and from Rust.
    assert_eq!(
        ask(&client, &format!("{ns}.counter.flood0.add"), r#"{"n": 1}"#),
        serde_json::json!({"ok": {"Ok": 2}})
    );
    assert!(matches!(
        Counter::get_or_start("local-one"),
        Err(StartError::Overloaded { .. })
    ));
    // Room again once agents stop: the count follows their exits.
    for n in 0..5 {
        Counter::lookup(format!("flood{n}"))
            .unwrap()
            .shutdown()
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || {
        swarm::node_stats().unwrap().live_agents as usize == max_agents - 5
    }));
    assert_eq!(
        ask(&client, &format!("{ns}.counter.flood0.total"), ""),
        serde_json::json!({"ok": 2}),
        "a stopped agent comes back with its state"
    );
    assert_eq!(
        Counter::get_or_start("local-one").unwrap().add(1).unwrap(),
        Ok(1)
    );

    // Starts in flight: with a limit of 1, a second start during a slow one is refused at once.
    swarm::set_node_limits(NodeLimits {
        max_agents: 1_000,
        max_starts_in_flight: 1,
        ..NodeLimits::default()
    })
    .unwrap();
    // SAFETY: `this()` only reads the current process' ids.
    let this = unsafe { Process::<bool>::this() };
    Process::spawn(this, |parent, _: Mailbox<()>| {
        parent.send(SlowStarter::get_or_start("first").is_ok());
    });
    // Once the first start is in flight (a fixed sleep may end before a busy machine got there).
    assert!(eventually(SLOW_START, || swarm::node_stats()
        .unwrap()
        .starts_in_flight
        == 1));
    match SlowStarter::get_or_start("second") {
        Err(StartError::Overloaded { limit, .. }) => {
            assert!(limit.contains("max_starts_in_flight = 1"), "{limit}")
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    // SAFETY: this process receives only the one answer above.
    let mailbox: Mailbox<bool> = unsafe { Mailbox::new() };
    assert!(mailbox.receive_timeout(SLOW_START * 4).unwrap());
    assert!(SlowStarter::get_or_start("second").is_ok());

    // A start that runs past its deadline is abandoned: its caller is told why, and the agent it
    // was starting is stopped with it (it never finishes its start, never saves).
    swarm::set_node_limits(NodeLimits {
        start_timeout: SLOW_START / 3,
        ..NodeLimits::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    match SlowStarter::get_or_start("too-slow") {
        Err(StartError::Registry { reason, .. }) => {
            assert!(
                reason.contains("did not finish starting within 500ms"),
                "{reason}"
            )
        }
        other => panic!("expected an abandoned start, got {other:?}"),
    }
    assert!(started.elapsed() < SLOW_START, "{:?}", started.elapsed());
    assert_eq!(swarm::node_stats().unwrap().starts_in_flight, 0);
    swarm::set_node_limits(NodeLimits::default()).unwrap();
    // Long enough for an abandoned agent left running to have finished its start and saved.
    lunatic::sleep(SLOW_START * 2);
    let again = SlowStarter::get_or_start("too-slow").unwrap();
    assert_eq!(again.starts().unwrap(), 1, "only this start got to the end");
    service.stop();
}

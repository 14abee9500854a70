//! Agents reached through NATS: `<namespace>.<kind>.<key>.<handler>`, JSON arguments and replies,
//! against the real nats-server the harness starts (see `tests/support/nats.rs`).

use std::time::Duration;

use swarm::nats::{serve_agents, NatsClient};
use swarm::prelude::*;
use swarm_tests::nats::{connect, server, unique};
use swarm_tests::{Account, Counter, Echo};

const TIMEOUT: Duration = Duration::from_secs(5);

fn ask(client: &NatsClient, subject: &str, payload: &str) -> serde_json::Value {
    let reply = client
        .request(subject, payload.as_bytes(), TIMEOUT)
        .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("the reply is JSON")
}

#[lunatic::test]
fn requests_and_messages_reach_agents_by_subject() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-agents")).unwrap();
    let client = connect(&url);
    let ns = unique("agents");
    let service = serve_agents::<Counter>(&client, &ns, 2).unwrap();
    assert_eq!(service.subject(), format!("{ns}.counter.*.*"));

    let add = format!("{ns}.counter.n1.add");
    assert_eq!(
        ask(&client, &add, r#"{"n": 2}"#),
        serde_json::json!({"ok": {"Ok": 2}})
    );
    assert_eq!(
        ask(&client, &add, r#"{"n": 3}"#),
        serde_json::json!({"ok": {"Ok": 5}})
    );
    // A fire-and-forget handler is delivered; the publisher that asked for a reply gets null.
    assert_eq!(
        ask(&client, &format!("{ns}.counter.n1.bump"), ""),
        serde_json::json!({"ok": null})
    );
    // A handler without arguments takes an empty payload or {}.
    assert_eq!(
        ask(&client, &format!("{ns}.counter.n1.total"), ""),
        serde_json::json!({"ok": 6})
    );
    assert_eq!(
        ask(&client, &format!("{ns}.counter.n1.total"), "{}"),
        serde_json::json!({"ok": 6})
    );
    // The same agent as from Rust: one live instance per key.
    assert_eq!(Counter::lookup("n1").unwrap().total().unwrap(), 6);
    // The handler's own error is data.
    let overflow = ask(&client, &add, &format!(r#"{{"n": {}}}"#, u64::MAX));
    assert_eq!(
        overflow,
        serde_json::json!({"ok": {"Err": {"Overflow": {"total": 6, "add": u64::MAX}}}})
    );
    service.stop();
    client.close();
}

#[lunatic::test]
fn bad_requests_get_an_error_reply_and_crash_nothing() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-agents")).unwrap();
    let client = connect(&url);
    let ns = unique("bad");
    let _service = serve_agents::<Counter>(&client, &ns, 1).unwrap();
    let kind = |reply: serde_json::Value| {
        reply["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let message = |reply: &serde_json::Value| {
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let reply = ask(&client, &format!("{ns}.counter.k~1.total"), "");
    assert_eq!(kind(reply.clone()), "invalid_key");
    assert!(
        message(&reply).contains("character '~' at byte 1"),
        "{reply}"
    );

    let reply = ask(&client, &format!("{ns}.counter.k1.nope"), "");
    assert_eq!(kind(reply.clone()), "unknown_handler");
    assert!(
        message(&reply).contains("its handlers: add, total, name, bump"),
        "{reply}"
    );

    for bad in [
        r#"{"n": "two"}"#,
        r#"{"m": 2}"#,
        "not json",
        "[2]",
        r#"{"n": 2"#,
    ] {
        let reply = ask(&client, &format!("{ns}.counter.k1.add"), bad);
        assert_eq!(kind(reply.clone()), "bad_arguments", "{bad}: {reply}");
    }
    let reply = ask(
        &client,
        &format!("{ns}.counter.k1.crash"),
        r#"{"why": "test"}"#,
    );
    assert_eq!(kind(reply.clone()), "call_failed");
    assert!(
        message(&reply).contains("the handler panicked: asked to crash: test"),
        "{reply}"
    );

    // After all that, the same worker still serves, and the agent came back from its crash.
    assert_eq!(
        ask(&client, &format!("{ns}.counter.k1.add"), r#"{"n": 1}"#),
        serde_json::json!({"ok": {"Ok": 1}})
    );
    client.close();
}

#[lunatic::test]
fn start_failures_and_kinds_without_keys_are_reported() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-agents")).unwrap();
    let client = connect(&url);
    let ns = unique("start");
    let _accounts = serve_agents::<Account>(&client, &ns, 1).unwrap();
    let reply = ask(
        &client,
        &format!("{ns}.account.13.deposit"),
        r#"{"amount": 5}"#,
    );
    assert_eq!(reply["error"]["kind"], "start_failed", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account 13 is closed"),
        "{reply}"
    );
    assert_eq!(
        ask(
            &client,
            &format!("{ns}.account.7.deposit"),
            r#"{"amount": 5}"#
        ),
        serde_json::json!({"ok": 5})
    );
    let reply = ask(
        &client,
        &format!("{ns}.account.x7.deposit"),
        r#"{"amount": 5}"#,
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid u64"),
        "{reply}"
    );

    // An agent kind without a key has no subject per instance to reach.
    let _echo = serve_agents::<Echo>(&client, &ns, 1).unwrap();
    let reply = ask(&client, &format!("{ns}.echo.any.echo"), r#"{"text": "hi"}"#);
    assert_eq!(reply["error"]["kind"], "invalid_key", "{reply}");
    client.close();
}

#[lunatic::test]
fn a_request_that_waited_past_its_deadline_is_dropped_unapplied() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-agents-expiry")).unwrap();
    let client = connect(&url);
    let ns = unique("expiry");
    let _service = serve_agents::<Counter>(&client, &ns, 1).unwrap();
    let sleep = format!("{ns}.counter.slow.sleep");
    let add = format!("{ns}.counter.slow.add");
    // Two 3 s sleeps in a row, then an add: the add reaches the agent 6 s after it was sent, past
    // the front door's 5 s deadline. It must not run: its caller is told so (applied: false), and
    // the total stays 0. The second sleep started in time: it runs and is answered.
    let callers = [
        (&sleep, r#"{"ms": 3000}"#),
        (&sleep, r#"{"ms": 3000}"#),
        (&add, r#"{"n": 5}"#),
    ];
    let mut answers = Vec::new();
    let replies: Vec<_> = callers
        .iter()
        .enumerate()
        .map(|(i, (subject, body))| {
            let reply = format!("{ns}.reply.{i}");
            let subscription = client.subscribe(&reply).unwrap();
            client
                .publish_with_reply(subject, &reply, body.as_bytes())
                .unwrap();
            // In this order into the agent's mailbox.
            lunatic::sleep(Duration::from_millis(50));
            subscription
        })
        .collect();
    for subscription in &replies {
        let reply = subscription
            .next_timeout(Duration::from_secs(15))
            .expect("every request is answered");
        answers.push(serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap());
    }
    assert_eq!(answers[0], serde_json::json!({"ok": 3000}));
    assert_eq!(answers[1], serde_json::json!({"ok": 3000}));
    assert_eq!(answers[2]["error"]["kind"], "call_failed", "{}", answers[2]);
    assert_eq!(answers[2]["error"]["applied"], false, "{}", answers[2]);
    let message = answers[2]["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired"), "{message}");
    assert_eq!(
        ask(&client, &format!("{ns}.counter.slow.total"), ""),
        serde_json::json!({"ok": 0})
    );
}

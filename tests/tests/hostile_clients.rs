//! The NATS front door against a hostile client: every request gets an answer within its timeout
//! (a precise error for bad input), nothing crashes, and the node serves as before afterwards.
//! Against the real nats-server the harness starts (see `tests/support/nats.rs`).

use std::io::{Read, Write};
use std::time::Duration;

use lunatic::net::TcpStream;
use swarm::nats::{serve_agents, AgentService, NatsClient};
use swarm::prelude::*;
use swarm_tests::nats::{connect, server, unique};
use swarm_tests::Notes;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Door {
    client: NatsClient,
    ns: String,
    service: AgentService,
}

impl Door {
    fn open(url: &str, name: &str) -> Door {
        swarm::set_default_store(StoreConfig::memory("hostile-clients")).unwrap();
        let client = connect(url);
        let ns = unique(name);
        let service = serve_agents::<Notes>(&client, &ns, 2).unwrap();
        Door {
            client,
            ns,
            service,
        }
    }

    /// Asks `notes.<key>.<handler>`; panics unless an answer comes within the timeout.
    fn ask(&self, key: &str, handler: &str, payload: &[u8]) -> serde_json::Value {
        self.ask_within(key, handler, payload, TIMEOUT)
    }

    fn ask_within(
        &self,
        key: &str,
        handler: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> serde_json::Value {
        let subject = format!("{}.notes.{key}.{handler}", self.ns);
        let reply = self
            .client
            .request(&subject, payload, timeout)
            .unwrap_or_else(|err| panic!("no answer to {subject} within {timeout:?}: {err}"));
        serde_json::from_slice(&reply.payload).unwrap_or_else(|err| {
            panic!(
                "the answer to {subject} is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&reply.payload)
            )
        })
    }

    /// The node still serves: two posts are counted one after the other.
    fn still_serves(&self, key: &str) {
        let post = || self.ask(key, "post", br#"{"text": "still here"}"#)["ok"].as_u64();
        let first = post().expect("a post is answered with the count of notes");
        assert_eq!(post(), Some(first + 1));
    }
}

fn error_of(answer: &serde_json::Value) -> (&str, &str) {
    let error = &answer["error"];
    (
        error["kind"].as_str().unwrap_or_else(|| panic!("{answer}")),
        error["message"].as_str().unwrap_or_default(),
    )
}

#[lunatic::test]
fn every_bad_request_gets_a_precise_error_in_time_and_the_node_still_serves() {
    let Some(url) = server("URL") else { return };
    let door = Door::open(&url, "hostile");
    door.still_serves("k1");
    let deep = format!("{{\"text\": {}", "[".repeat(100_000));
    let long_key = "k".repeat(129);
    let cases: Vec<(&str, &str, Vec<u8>, &str, &str)> = vec![
        // (key, handler, payload, error kind, part of the message)
        (
            "k1",
            "post",
            br#"{"text": "#.to_vec(),
            "bad_arguments",
            "expected value",
        ),
        (
            "k1",
            "post",
            br#"{"text": 5}"#.to_vec(),
            "bad_arguments",
            "invalid type: integer `5`",
        ),
        (
            "k1",
            "post",
            b"[1, 2]".to_vec(),
            "bad_arguments",
            "JSON object",
        ),
        (
            "k1",
            "post",
            b"\"text\"".to_vec(),
            "bad_arguments",
            "JSON object",
        ),
        (
            "k1",
            "post",
            vec![0xff, 0xfe, 0x00],
            "bad_arguments",
            "JSON object",
        ),
        (
            "k1",
            "post",
            b"{\"text\": \"\xff\"}".to_vec(),
            "bad_arguments",
            "invalid unicode",
        ),
        (
            "k1",
            "post",
            b"{}".to_vec(),
            "bad_arguments",
            "missing field `text`",
        ),
        (
            "k1",
            "post",
            br#"{"text": "hi", "colour": "red"}"#.to_vec(),
            "bad_arguments",
            "unknown field `colour`",
        ),
        (
            "k1",
            "history",
            br#"{"page": 2}"#.to_vec(),
            "bad_arguments",
            "unknown field `page`",
        ),
        (
            "k1",
            "blob",
            br#"{"bytes": -1}"#.to_vec(),
            "bad_arguments",
            "invalid value",
        ),
        (
            "k1",
            "post",
            deep.into_bytes(),
            "bad_arguments",
            "invalid type: sequence",
        ),
        (
            "bad%key",
            "post",
            br#"{"text": "x"}"#.to_vec(),
            "invalid_key",
            "'%'",
        ),
        (
            &long_key,
            "post",
            br#"{"text": "x"}"#.to_vec(),
            "invalid_key",
            "128",
        ),
        (
            "k1",
            "nope",
            b"{}".to_vec(),
            "unknown_handler",
            "its handlers: post, history",
        ),
        (
            "k1",
            "Post",
            b"{}".to_vec(),
            "unknown_handler",
            "no handler `Post`",
        ),
    ];
    for (key, handler, payload, kind, part) in &cases {
        let answer = door.ask(key, handler, payload);
        let (got_kind, message) = error_of(&answer);
        assert_eq!(got_kind, *kind, "{key}.{handler}: {answer}");
        assert!(
            message.contains(part),
            "{key}.{handler}: {message:?} lacks {part:?}"
        );
    }

    // A handler that panics with a message of 2 MB: the error says so, in a reply that fits, and
    // the call was not applied.
    let answer = door.ask("k1", "panic_with", br#"{"bytes": 2000000}"#);
    assert_eq!(error_of(&answer).0, "call_failed", "{answer}");
    assert_eq!(answer["error"]["applied"], false, "{answer}");
    assert!(
        answer.to_string().len() < 2_000,
        "{} bytes",
        answer.to_string().len()
    );
    // An answer that cannot be encoded: the handler ran, so the call was applied.
    let answer = door.ask("k1", "unencodable", b"");
    assert_eq!(error_of(&answer).0, "call_failed", "{answer}");
    assert!(
        error_of(&answer).1.contains("refuses to be encoded"),
        "{answer}"
    );
    assert_eq!(answer["error"]["applied"], true, "{answer}");

    // A payload of exactly the server's max_payload is a legal request.
    let max = door.client.max_payload() as usize;
    let filler = "y".repeat(max - br#"{"text":""}"#.len());
    let at_limit = format!(r#"{{"text":"{filler}"}}"#);
    assert_eq!(at_limit.len(), max);
    // A megabyte through JSON in a debug build of the guest, on a shared machine: give it time.
    let answer = door.ask_within("big", "post", at_limit.as_bytes(), TIMEOUT * 4);
    assert_eq!(answer, serde_json::json!({"ok": 1}));
    door.still_serves("k1");
    door.still_serves("fresh");
    door.service.stop();
}

#[lunatic::test]
fn an_answer_too_large_for_the_server_gets_a_small_error_that_says_it_was_applied() {
    let Some(url) = server("URL") else { return };
    let door = Door::open(&url, "too-large");
    let max = door.client.max_payload() as usize;
    // Two posts that each fit, then a history that does not.
    let note = "n".repeat(max * 6 / 10);
    for expected in [1, 2] {
        let post = serde_json::json!({ "text": note }).to_string();
        assert_eq!(
            door.ask("room", "post", post.as_bytes()),
            serde_json::json!({ "ok": expected })
        );
    }
    let answer = door.ask("room", "history", b"");
    let (kind, message) = error_of(&answer);
    assert_eq!(kind, "reply_too_large", "{answer}");
    assert!(message.contains("the call was applied"), "{message}");
    assert_eq!(answer["error"]["applied"], true);
    assert_eq!(answer["error"]["max_payload"], max);
    let size = answer["error"]["size"].as_u64().unwrap() as usize;
    assert!(size > max && size > 2 * note.len(), "size {size}");

    // An answer just under the limit arrives whole; one just over does not, and says why.
    let fits = max - br#"{"ok":""}"#.len();
    let answer = door.ask("room", "blob", format!(r#"{{"bytes": {fits}}}"#).as_bytes());
    assert_eq!(answer["ok"].as_str().map(str::len), Some(fits));
    let answer = door.ask(
        "room",
        "blob",
        format!(r#"{{"bytes": {}}}"#, fits + 1).as_bytes(),
    );
    assert_eq!(error_of(&answer).0, "reply_too_large", "{answer}");
    assert_eq!(answer["error"]["size"], max + 1);
    door.still_serves("room");
    door.service.stop();
}

#[lunatic::test]
fn a_burst_of_2000_requests_all_get_answers() {
    let Some(url) = server("URL") else { return };
    let door = Door::open(&url, "burst");
    let inbox = unique("burst-inbox");
    let replies = door.client.subscribe(&format!("{inbox}.*")).unwrap();
    door.client.flush().unwrap();
    const BURST: usize = 2_000;
    for n in 0..BURST {
        // Good and bad requests mixed, over 50 keys.
        let (handler, payload): (&str, &[u8]) = match n % 4 {
            0 => ("post", br#"{"text": "burst"}"#),
            1 => ("history", b""),
            2 => ("post", b"{not json"),
            _ => ("nope", b"{}"),
        };
        let subject = format!("{}.notes.b{}.{handler}", door.ns, (n / 4) % 50);
        door.client
            .publish_with_reply(&subject, &format!("{inbox}.{n}"), payload)
            .unwrap();
    }
    let mut answered = vec![false; BURST];
    for _ in 0..BURST {
        let reply = replies
            .next_timeout(Duration::from_secs(30))
            .expect("every request of the burst is answered");
        let n: usize = reply.subject.rsplit('.').next().unwrap().parse().unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        let expected_ok = n % 4 < 2;
        assert_eq!(
            answer.get("ok").is_some(),
            expected_ok,
            "request {n}: {answer}"
        );
        answered[n] = true;
    }
    assert!(answered.iter().all(|&a| a));
    // 500 posts over 50 keys: 10 each, plus one from still_serves.
    door.still_serves("b0");
    assert_eq!(
        door.ask("b7", "history", b"")["ok"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    door.service.stop();
}

/// Publishes one message from a raw TCP connection, as a client that ignores the protocol's
/// rules could; returns once the server has processed it (PONG).
fn raw_publish(url: &str, protocol: &str) {
    let addr = url.trim_start_matches("nats://");
    let mut stream = TcpStream::connect_timeout(addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .write_all(
            format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\n{protocol}PING\r\n")
                .as_bytes(),
        )
        .unwrap();
    while !String::from_utf8_lossy(&seen).contains("PONG") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[lunatic::test]
fn requests_whose_reply_subject_cannot_be_answered_crash_nothing() {
    let Some(url) = server("URL") else { return };
    let door = Door::open(&url, "bad-reply");
    let subject = format!("{}.notes.r1.post", door.ns);
    let body = r#"{"text": "from a rogue client"}"#;
    // Reply subjects the front door cannot publish to (wildcards), each sent many times.
    for reply in ["rogue.*", "rogue.>", "a.*.b"] {
        let mut protocol = String::new();
        for _ in 0..50 {
            protocol.push_str(&format!(
                "PUB {subject} {reply} {}\r\n{body}\r\n",
                body.len()
            ));
        }
        raw_publish(&url, &protocol);
    }
    // The posts were applied (the agent got them), and the node answers normal callers.
    let applied = || {
        door.ask("r1", "history", b"")["ok"]
            .as_array()
            .unwrap()
            .len()
    };
    assert!(
        swarm_tests::eventually(TIMEOUT, || applied() == 150),
        "{} posts applied",
        applied()
    );
    door.still_serves("r1");
    door.still_serves("r2");
    door.service.stop();
}

#[lunatic::test]
fn the_front_door_serves_again_after_its_nats_server_restarts() {
    let Some(url) = server("R2_URL") else { return };
    let door = Door::open(&url, "restart");
    for n in 1..=3 {
        assert_eq!(
            door.ask("survivor", "post", br#"{"text": "before"}"#),
            serde_json::json!({ "ok": n })
        );
    }
    swarm_tests::nats::control("stop r2");
    // While the server is down a request fails quickly; it does not hang.
    let subject = format!("{}.notes.survivor.history", door.ns);
    let started = std::time::Instant::now();
    assert!(door
        .client
        .request(&subject, b"", Duration::from_millis(300))
        .is_err());
    assert!(started.elapsed() < TIMEOUT);
    swarm_tests::nats::control("start r2");
    // Reconnected and re-subscribed: the agent answers, with every acknowledged post.
    let history = swarm_tests::nats::eventually(Duration::from_secs(15), || {
        door.client
            .request(&subject, b"", Duration::from_millis(500))
            .ok()
    })
    .expect("the front door answers again after the restart");
    let history: serde_json::Value = serde_json::from_slice(&history.payload).unwrap();
    assert_eq!(history["ok"].as_array().unwrap().len(), 3, "{history}");
    door.still_serves("survivor");
    door.service.stop();
}

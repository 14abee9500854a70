//! The NATS client inside Lunatic against real nats-servers (started by
//! `tests/support/nats_harness.py` through `scripts/test`), over TCP and over WebSocket.
//!
//! Each scenario is a function taking the server URL; the `#[lunatic::test]`s run it once per
//! transport. Every wait is bounded.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process, Tag};
use serde::{Deserialize, Serialize};
use swarm::nats::{Headers, NatsClient, NatsError};
use swarm_tests::nats::{connect, control, eventually, options, server, unique};

const WAIT: Duration = Duration::from_secs(5);

/// What helper processes tell the test.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Ready,
    Count(u64),
    Request(Result<Vec<u8>, String>, u64),
}

/// A responder in its own process: answers each request on `subject` with `<prefix><payload>`
/// (headers echoed), until the client is closed or 60 s pass.
fn spawn_responder(client: &NatsClient, subject: &str, prefix: &str, parent: Process<Report>) {
    Process::spawn(
        (
            client.clone(),
            subject.to_owned(),
            prefix.to_owned(),
            parent,
        ),
        |(client, subject, prefix, parent), _: Mailbox<()>| {
            let sub = client.subscribe(&subject).unwrap();
            report(&parent, Report::Ready);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                match sub.next_timeout(Duration::from_millis(200)) {
                    Ok(msg) => {
                        let mut answer = prefix.clone().into_bytes();
                        answer.extend_from_slice(&msg.payload);
                        let reply = msg.reply_to.clone().unwrap();
                        match &msg.headers {
                            Some(h) => client.publish_with_headers(&reply, h, answer).unwrap(),
                            None => client.publish(&reply, answer).unwrap(),
                        }
                    }
                    Err(NatsError::TimedOut { .. }) => {}
                    Err(_) => break,
                }
            }
        },
    );
}

/// Reports travel with a tag of their own: an untagged receive would also take (and lose) the
/// tagged messages of the test's own subscriptions.
fn report(parent: &Process<Report>, r: Report) {
    parent.tag_send(Tag::special(64).unwrap(), r);
}

fn receive_report(mailbox: &Mailbox<Report>, timeout: Duration) -> Result<Report, String> {
    mailbox
        .tag_receive_timeout(&[Tag::special(64).unwrap()], timeout)
        .map_err(|e| format!("{e:?}"))
}

fn expect_ready(mailbox: &Mailbox<Report>) {
    match receive_report(mailbox, WAIT) {
        Ok(Report::Ready) => {}
        other => panic!("helper not ready: {other:?}"),
    }
}

fn pub_sub(url: &str) {
    let client = connect(url);
    let subject = unique("pubsub");
    let sub = client.subscribe(&format!("{subject}.*")).unwrap();
    let payloads: [&[u8]; 4] = [b"hello", b"", b"with\r\nCRLF\r\n", &[0xff, 0x00, 0xfe]];
    for (i, p) in payloads.iter().enumerate() {
        client.publish(&format!("{subject}.{i}"), p).unwrap();
    }
    client.flush().unwrap();
    for (i, p) in payloads.iter().enumerate() {
        let msg = sub.next_timeout(WAIT).unwrap();
        assert_eq!(msg.subject, format!("{subject}.{i}"));
        assert_eq!(&msg.payload, p);
        assert_eq!(msg.reply_to, None);
    }
    assert!(matches!(
        sub.next_timeout(Duration::from_millis(100)),
        Err(NatsError::TimedOut { .. })
    ));
    // After unsubscribing nothing more arrives; another subscription still gets messages.
    let other = client.subscribe(&format!("{subject}.*")).unwrap();
    sub.unsubscribe();
    client.publish(&format!("{subject}.x"), "after").unwrap();
    assert_eq!(other.next_timeout(WAIT).unwrap().payload, b"after");
    assert_eq!(client.status().unwrap().subscriptions, 1);
    client.close();
}

#[lunatic::test]
fn publish_subscribe_unsubscribe_over_tcp() {
    if let Some(url) = server("URL") {
        pub_sub(&url);
    }
}

#[lunatic::test]
fn publish_subscribe_unsubscribe_over_websocket() {
    if let Some(url) = server("WS_URL") {
        pub_sub(&url);
    }
}

fn queue_groups(url: &str) {
    let client = connect(url);
    let subject = unique("queue");
    let mailbox = unsafe { Mailbox::<Report>::new() };
    let parent = mailbox.this();
    const MEMBERS: usize = 3;
    const MESSAGES: u64 = 300;
    for _ in 0..MEMBERS {
        Process::spawn(
            (client.clone(), subject.clone(), parent),
            |(client, subject, parent), _: Mailbox<()>| {
                let sub = client.queue_subscribe(&subject, "workers").unwrap();
                report(&parent, Report::Ready);
                // Until the group has been quiet for 3 s (longer before the first one): a member
                // that left early would take the messages routed to it with it.
                let mut count = 0;
                let quiet = |n| Duration::from_millis(if n == 0 { 10_000 } else { 3_000 });
                while sub.next_timeout(quiet(count)).is_ok() {
                    count += 1;
                }
                report(&parent, Report::Count(count));
            },
        );
    }
    for _ in 0..MEMBERS {
        expect_ready(&mailbox);
    }
    // A plain subscriber next to the group sees every message.
    let all = client.subscribe(&subject).unwrap();
    for i in 0..MESSAGES {
        client.publish(&subject, i.to_string()).unwrap();
    }
    client.flush().unwrap();
    let mut counts = Vec::new();
    for _ in 0..MEMBERS {
        match receive_report(&mailbox, Duration::from_secs(10)) {
            Ok(Report::Count(n)) => counts.push(n),
            other => panic!("no count: {other:?}"),
        }
    }
    assert_eq!(counts.iter().sum::<u64>(), MESSAGES, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n > 0),
        "every member got some: {counts:?}"
    );
    for i in 0..MESSAGES {
        let got = all.next_timeout(WAIT).unwrap().payload;
        assert_eq!(
            String::from_utf8_lossy(&got),
            i.to_string(),
            "{:?}",
            client.status()
        );
    }
    client.close();
}

#[lunatic::test]
fn queue_groups_spread_messages_over_tcp() {
    if let Some(url) = server("URL") {
        queue_groups(&url);
    }
}

#[lunatic::test]
fn queue_groups_spread_messages_over_websocket() {
    if let Some(url) = server("WS_URL") {
        queue_groups(&url);
    }
}

fn request_reply(url: &str) {
    let client = connect(url);
    let subject = unique("svc");
    let mailbox = unsafe { Mailbox::<Report>::new() };
    spawn_responder(&client, &subject, "re:", mailbox.this());
    expect_ready(&mailbox);
    for i in 0..50 {
        let reply = client.request(&subject, format!("{i}"), WAIT).unwrap();
        assert_eq!(reply.payload, format!("re:{i}").as_bytes());
    }
    // With headers, both ways.
    let mut h = Headers::new();
    h.append("Trace-Id", "abc-123").unwrap();
    h.append("Trace-Id", "second").unwrap();
    let reply = client
        .request_with_headers(&subject, &h, "h", WAIT)
        .unwrap();
    assert_eq!(reply.payload, b"re:h");
    let got = reply.headers.expect("headers came back");
    assert_eq!(
        got.get_all("Trace-Id").collect::<Vec<_>>(),
        ["abc-123", "second"]
    );
    // Concurrent requesters in other processes, on the same connection's muxed inbox.
    const REQUESTERS: u64 = 8;
    for n in 0..REQUESTERS {
        Process::spawn(
            (client.clone(), subject.clone(), mailbox.this(), n),
            |(client, subject, parent, n), _: Mailbox<()>| {
                for i in 0..20 {
                    let r = client
                        .request(&subject, format!("{n}-{i}"), WAIT)
                        .map(|m| m.payload)
                        .map_err(|e| e.to_string());
                    let ok = matches!(&r, Ok(p) if p == format!("re:{n}-{i}").as_bytes());
                    if !ok {
                        report(&parent, Report::Request(r, n));
                        return;
                    }
                }
                report(&parent, Report::Request(Ok(b"all".to_vec()), n));
            },
        );
    }
    for _ in 0..REQUESTERS {
        match receive_report(&mailbox, Duration::from_secs(20)) {
            Ok(Report::Request(Ok(p), _)) => assert_eq!(p, b"all"),
            other => panic!("requester failed: {other:?}"),
        }
    }
    assert_eq!(client.status().unwrap().pending_requests, 0);
    client.close();
}

#[lunatic::test]
fn request_reply_over_tcp() {
    if let Some(url) = server("URL") {
        request_reply(&url);
    }
}

#[lunatic::test]
fn request_reply_over_websocket() {
    if let Some(url) = server("WS_URL") {
        request_reply(&url);
    }
}

fn timeouts_and_no_responders(url: &str) {
    let client = connect(url);
    let subject = unique("silent");
    // Nobody subscribes: the server answers 503 at once, reported as its own error.
    let started = Instant::now();
    match client.request(&subject, "x", Duration::from_secs(5)) {
        Err(NatsError::NoResponders { subject: s }) => assert_eq!(s, subject),
        other => panic!("expected no responders, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A subscriber that never answers: the request times out after the time given.
    let _silent = client.subscribe(&subject).unwrap();
    let started = Instant::now();
    match client.request(&subject, "x", Duration::from_millis(300)) {
        Err(NatsError::TimedOut { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // The timed-out request is forgotten.
    assert_eq!(client.status().unwrap().pending_requests, 0);
    client.close();
}

#[lunatic::test]
fn request_timeouts_and_no_responders_over_tcp() {
    if let Some(url) = server("URL") {
        timeouts_and_no_responders(&url);
    }
}

#[lunatic::test]
fn request_timeouts_and_no_responders_over_websocket() {
    if let Some(url) = server("WS_URL") {
        timeouts_and_no_responders(&url);
    }
}

fn payload_limits(url: &str) {
    let client = connect(url);
    let max = client.max_payload();
    assert_eq!(max, 1024 * 1024, "nats-server's default");
    let subject = unique("big");
    let sub = client.subscribe(&subject).unwrap();
    // Exactly max_payload passes and arrives whole.
    let at_max: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    client.publish(&subject, &at_max).unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, at_max);
    // One byte more is refused before sending, with both sizes in the error.
    let over = vec![7u8; max as usize + 1];
    let err = client.publish(&subject, &over).unwrap_err();
    match &err {
        NatsError::PayloadTooLarge(e) => {
            assert_eq!((e.size, e.max_payload), (max + 1, max));
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&(max + 1).to_string()) && text.contains(&max.to_string()),
        "{text}"
    );
    assert!(matches!(
        client.request(&subject, &over, WAIT),
        Err(NatsError::PayloadTooLarge(_))
    ));
    // Headers count: header block + payload at max passes, one more byte does not.
    let mut h = Headers::new();
    h.append("K", "v").unwrap();
    let fits = vec![1u8; max as usize - h.wire_len()];
    client.publish_with_headers(&subject, &h, &fits).unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload.len(), fits.len());
    let too_big = vec![1u8; fits.len() + 1];
    assert!(matches!(
        client.publish_with_headers(&subject, &h, &too_big),
        Err(NatsError::PayloadTooLarge(_))
    ));
    // The connection was never cut by the server.
    client.flush().unwrap();
    assert_eq!(client.status().unwrap().reconnects, 0);
    client.close();
}

#[lunatic::test]
fn payloads_at_and_over_max_payload_over_tcp() {
    if let Some(url) = server("URL") {
        payload_limits(&url);
    }
}

#[lunatic::test]
fn payloads_at_and_over_max_payload_over_websocket() {
    if let Some(url) = server("WS_URL") {
        payload_limits(&url);
    }
}

fn bad_input(url: &str) {
    let client = connect(url);
    for subject in [
        "a b",
        "",
        "a..b",
        ".a",
        "a.",
        "a\r\nPUB x 1",
        "a\tb",
        "a.*",
        "a.>",
    ] {
        let err = client.publish(subject, "x").unwrap_err();
        assert!(matches!(err, NatsError::Encode(_)), "{subject:?}: {err:?}");
    }
    for subject in ["a b", "a..b", "a.>.b", "foo\nUNSUB 1", "foo*"] {
        let err = client.subscribe(subject).unwrap_err();
        assert!(matches!(err, NatsError::Encode(_)), "{subject:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    for queue in ["q 1", "q\r\n", ""] {
        assert!(
            client.queue_subscribe("ok.subject", queue).is_err(),
            "{queue:?}"
        );
    }
    let mut h = Headers::new();
    assert!(h.append("Bad Name:", "v").is_err());
    assert!(h.append("Name", "line\r\nInjected: 1").is_err());
    assert!(matches!(
        client.request("a b", "x", WAIT),
        Err(NatsError::Encode(_))
    ));
    // Wildcards are fine where NATS allows them, and nothing above reached the server.
    let sub = client.subscribe("t.*.wild.>").unwrap();
    client.publish("t.x.wild.y.z", "ok").unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().subject, "t.x.wild.y.z");
    let status = client.status().unwrap();
    assert_eq!((status.reconnects, status.last_error), (0, None));
    client.close();
}

#[lunatic::test]
fn bad_subjects_queues_and_headers_are_refused_over_tcp() {
    if let Some(url) = server("URL") {
        bad_input(&url);
    }
}

#[lunatic::test]
fn bad_subjects_queues_and_headers_are_refused_over_websocket() {
    if let Some(url) = server("WS_URL") {
        bad_input(&url);
    }
}

fn headers(url: &str) {
    let client = connect(url);
    let subject = unique("hdr");
    let sub = client.subscribe(&subject).unwrap();
    let mut h = Headers::new();
    h.append("Content-Type", "application/json").unwrap();
    h.append("X-Multi", "1").unwrap();
    h.append("X-Multi", "2").unwrap();
    client.publish_with_headers(&subject, &h, "{}").unwrap();
    client
        .publish_with_headers(&subject, &Headers::new(), "")
        .unwrap();
    let msg = sub.next_timeout(WAIT).unwrap();
    assert_eq!(msg.payload, b"{}");
    let got = msg.headers.unwrap();
    assert_eq!(got.get("Content-Type"), Some("application/json"));
    assert_eq!(got.get_all("X-Multi").collect::<Vec<_>>(), ["1", "2"]);
    let msg = sub.next_timeout(WAIT).unwrap();
    assert!(msg.payload.is_empty());
    assert!(msg.headers.unwrap().is_empty());
    client.close();
}

#[lunatic::test]
fn headers_over_tcp() {
    if let Some(url) = server("URL") {
        headers(&url);
    }
}

#[lunatic::test]
fn headers_over_websocket() {
    if let Some(url) = server("WS_URL") {
        headers(&url);
    }
}

#[lunatic::test]
fn token_and_user_password_auth() {
    let (Some(token_url), Some(userpass_url)) = (server("TOKEN_URL"), server("USERPASS_URL"))
    else {
        return;
    };
    let client = NatsClient::connect(options(&token_url).token("s3cret-token")).unwrap();
    client.flush().unwrap();
    client.close();
    let err = NatsClient::connect(options(&token_url).token("wrong")).unwrap_err();
    assert!(err.to_string().contains("Authorization Violation"), "{err}");
    assert!(
        NatsClient::connect(options(&token_url)).is_err(),
        "no credentials"
    );

    let client =
        NatsClient::connect(options(&userpass_url).user_password("alice", "wonder")).unwrap();
    let subject = unique("auth");
    let sub = client.subscribe(&subject).unwrap();
    client.publish(&subject, "in").unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"in");
    drop(sub);
    client.close();
    let err =
        NatsClient::connect(options(&userpass_url).user_password("alice", "nope")).unwrap_err();
    assert!(matches!(err, NatsError::Connect { .. }), "{err:?}");
}

#[lunatic::test]
fn connect_moves_on_to_the_next_server_and_reports_failures() {
    let Some(url) = server("URL") else { return };
    // Nothing listens on port 1: the client goes on to the real server.
    let opts = swarm::nats::ConnectOptions::new(["nats://127.0.0.1:1", url.as_str()])
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let client = NatsClient::connect(opts).unwrap();
    client.flush().unwrap();
    client.close();
    // All servers down: an error naming the last one, within the connect timeouts.
    let started = Instant::now();
    let err = NatsClient::connect(options("nats://127.0.0.1:1")).unwrap_err();
    assert!(
        matches!(&err, NatsError::Connect { server, .. } if server.contains("127.0.0.1:1")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[lunatic::test]
fn a_closed_client_reports_closed_and_ends_subscriptions() {
    let Some(url) = server("URL") else { return };
    let client = connect(&url);
    let sub = client.subscribe(&unique("closed")).unwrap();
    let other_handle = client.clone();
    client.close();
    assert!(other_handle.is_closed());
    assert_eq!(other_handle.publish("a", "x"), Err(NatsError::Closed));
    assert_eq!(other_handle.flush(), Err(NatsError::Closed));
    assert!(matches!(
        other_handle.request("a", "x", WAIT),
        Err(NatsError::Closed)
    ));
    let started = Instant::now();
    assert_eq!(sub.next(), None);
    assert!(matches!(sub.next_timeout(WAIT), Err(NatsError::Closed)));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The server restarts in the middle of traffic: requests waiting fail (no hang), the client
/// reconnects, every subscription works again, and no helper process crashed.
fn restart(name: &str, url: &str) {
    let client =
        NatsClient::connect(options(url).ping_interval(Duration::from_secs(2), 2)).unwrap();
    let subject = unique("restart");
    let mailbox = unsafe { Mailbox::<Report>::new() };
    spawn_responder(&client, &format!("{subject}.svc"), "re:", mailbox.this());
    expect_ready(&mailbox);
    let sub = client.subscribe(&format!("{subject}.events")).unwrap();
    let _silent = client.subscribe(&format!("{subject}.silent")).unwrap();
    assert_eq!(
        client
            .request(&format!("{subject}.svc"), "1", WAIT)
            .unwrap()
            .payload,
        b"re:1"
    );

    // A request that waits (nobody answers) when the server goes away gets an error, quickly.
    let waiter = Process::spawn(
        (client.clone(), format!("{subject}.silent"), mailbox.this()),
        |(client, subject, parent), _: Mailbox<()>| {
            let started = Instant::now();
            let r = client
                .request(&subject, "x", Duration::from_secs(30))
                .map(|m| m.payload)
                .map_err(|e| e.to_string());
            report(
                &parent,
                Report::Request(r, started.elapsed().as_millis() as u64),
            );
        },
    );
    lunatic::sleep(Duration::from_millis(200));
    // Traffic in flight while the server goes down.
    for i in 0..100 {
        client
            .publish(&format!("{subject}.events"), format!("before-{i}"))
            .unwrap();
    }
    control(&format!("stop {name}"));
    match receive_report(&mailbox, Duration::from_secs(10)) {
        Ok(Report::Request(Err(e), ms)) => {
            assert!(e.contains("lost"), "{e}");
            assert!(ms < 10_000, "{ms} ms");
        }
        other => panic!("the waiting request should fail: {other:?}"),
    }
    // While the server is down, calls fail or buffer; none hang.
    let started = Instant::now();
    for _ in 0..20 {
        let _ = client.publish(&format!("{subject}.events"), "during");
        let r = client.request(&format!("{subject}.svc"), "x", Duration::from_millis(200));
        assert!(r.is_err(), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    control(&format!("start {name}"));

    // Reconnected: requests work again through the restored subscription of the responder.
    let reply = eventually(Duration::from_secs(15), || {
        client
            .request(&format!("{subject}.svc"), "2", Duration::from_millis(500))
            .ok()
    })
    .expect("requests work again after the restart");
    assert_eq!(reply.payload, b"re:2");
    // Our own subscription is back too (messages from before the outage may or may not arrive).
    while sub.try_next().is_some() {}
    lunatic::sleep(Duration::from_millis(100));
    while sub.try_next().is_some() {}
    client
        .publish(&format!("{subject}.events"), "after")
        .unwrap();
    let got = eventually(Duration::from_secs(5), || {
        sub.next_timeout(Duration::from_millis(100))
            .ok()
            .filter(|m| m.payload == b"after")
    });
    assert!(got.is_some(), "the subscription works after the restart");
    let status = client.status().unwrap();
    assert!(status.reconnects >= 1, "{status:?}");
    assert_eq!(status.state, swarm::nats::ConnState::Connected);

    // A quick restart (kill and start again at once) in the middle of a stream of requests.
    control(&format!("restart {name}"));
    let reply = eventually(Duration::from_secs(15), || {
        client
            .request(&format!("{subject}.svc"), "3", Duration::from_millis(500))
            .ok()
    })
    .expect("requests work again after the second restart");
    assert_eq!(reply.payload, b"re:3");
    assert!(!waiter.is_alive(), "the waiter finished");
    client.close();
}

#[lunatic::test]
fn server_restart_over_tcp() {
    if let Some(url) = server("R1_URL") {
        restart("r1", &url);
    }
}

#[lunatic::test]
fn server_restart_over_websocket() {
    if let Some(url) = server("R2_WS_URL") {
        restart("r2", &url);
    }
}

/// Messages and headers both ways with a client in another language: the nats-py peer of the
/// harness (see `tests/support/nats_harness.py`).
#[lunatic::test]
fn exchanges_messages_and_headers_with_a_python_nats_py_client() {
    let Some(url) = server("URL") else { return };
    if server("PY_PEER").is_none() {
        return;
    }
    let client = connect(&url);
    // Request from Rust, answered by Python, headers carried both ways.
    let mut h = Headers::new();
    h.append("X-Request-Id", "r-42").unwrap();
    let payload: &[u8] = b"bytes \xff\x00 and\r\nCRLF";
    let reply = client
        .request_with_headers("xlang.py.echo", &h, payload, WAIT)
        .unwrap();
    assert_eq!(reply.payload, [b"py:".as_slice(), payload].concat());
    let headers = reply.headers.expect("Python answered with headers");
    assert_eq!(headers.get("X-Request-Id"), Some("r-42"));
    assert_eq!(headers.get("X-Answered-By"), Some("nats-py"));
    // Publish from Rust, Python publishes it again to a subject we subscribe to.
    let id = unique("x").replace('.', "_");
    let sub = client.subscribe(&format!("xlang.rust.{id}")).unwrap();
    let mut h = Headers::new();
    h.append("Content-Type", "text/plain").unwrap();
    for i in 0..10 {
        client
            .publish_with_headers(&format!("xlang.py.forward.{id}"), &h, format!("m{i}"))
            .unwrap();
    }
    for i in 0..10 {
        let msg = sub.next_timeout(WAIT).unwrap();
        assert_eq!(msg.payload, format!("m{i}").as_bytes());
        let got = msg.headers.expect("headers from Python");
        assert_eq!(got.get("Content-Type"), Some("text/plain"));
        assert_eq!(got.get("X-Seen-By"), Some("nats-py"));
    }
    client.close();
}

/// The client PINGs on its own (here every 100 ms) and counts the server's PONGs: with answers
/// coming, the connection is never declared stale, and no reconnect happens. (Ten PINGs may be
/// out: a busy machine can stall the client's processes for a few hundred milliseconds, and a
/// server that never answered would still be caught within the 2 s.)
#[lunatic::test]
fn client_pings_are_answered_and_keep_the_connection() {
    let Some(url) = server("URL") else { return };
    let client =
        NatsClient::connect(options(&url).ping_interval(Duration::from_millis(100), 10)).unwrap();
    lunatic::sleep(Duration::from_millis(2000));
    let status = client.status().unwrap();
    assert_eq!(status.state, swarm::nats::ConnState::Connected);
    assert_eq!((status.reconnects, status.last_error), (0, None));
    client.flush().unwrap();
    client.close();
}

/// Many messages in bursts, taken with short timeouts that often give up between bursts (after
/// which Lunatic puts the next delivery behind later ones): every message arrives, in order.
#[lunatic::test]
fn a_subscription_hands_out_every_message_in_order_under_load() {
    let Some(url) = server("URL") else { return };
    let client = connect(&url);
    let publisher = connect(&url);
    let subject = unique("order");
    let sub = client.subscribe(&subject).unwrap();
    const TOTAL: u32 = 20_000;
    Process::spawn(
        (publisher.clone(), subject.clone()),
        |(publisher, subject): (NatsClient, String), _: Mailbox<()>| {
            for burst in 0..(TOTAL / 500) {
                for i in 0..500 {
                    publisher
                        .publish(&subject, (burst * 500 + i).to_be_bytes())
                        .unwrap();
                }
                lunatic::sleep(Duration::from_millis(3));
            }
        },
    );
    let started = Instant::now();
    let (mut next, mut gave_up) = (0u32, 0u32);
    while next < TOTAL && started.elapsed() < Duration::from_secs(30) {
        match sub.next_timeout(Duration::from_millis(1)) {
            Ok(msg) => {
                let n = u32::from_be_bytes(msg.payload[..4].try_into().unwrap());
                assert_eq!(n, next, "out of order after {gave_up} waits that gave up");
                next += 1;
            }
            Err(NatsError::TimedOut { .. }) => {
                // Deliveries that come now find the runtime's slot for the wait that gave up:
                // the first goes behind the ones after it.
                gave_up += 1;
                lunatic::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, TOTAL, "{gave_up} waits gave up");
    publisher.close();
    client.close();
}

/// A subscription's messages stay in its process' mailbox whatever else the process does: a
/// `next_timeout` that gave up leaves nothing behind that a later call to an agent would take
/// out as the late reply of an abandoned request.
#[lunatic::test]
fn a_next_that_timed_out_leaves_the_subscription_alone() {
    let Some(url) = server("URL") else { return };
    let client = connect(&url);
    let subject = unique("kept");
    let sub = client.subscribe(&subject).unwrap();
    for _ in 0..3 {
        let quiet = sub.next_timeout(Duration::from_millis(20));
        assert!(
            matches!(quiet, Err(NatsError::TimedOut { .. })),
            "{quiet:?}"
        );
    }
    client.publish(&subject, "kept").unwrap();
    // The message is in this mailbox once the flush returns (the reader delivers it before it
    // hands on the PONG).
    client.flush().unwrap();
    let echo = swarm_tests::Echo::start().unwrap();
    assert_eq!(echo.echo("x".into()).unwrap().0, "x");
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"kept");
    client.close();
}

/// A subscriber process that ends without unsubscribing (killed, or its `Subscription`
/// forgotten) is noticed and its subscription removed from the connection.
#[lunatic::test]
fn subscriptions_of_ended_processes_are_removed() {
    let Some(url) = server("URL") else { return };
    let client = connect(&url);
    let subject = unique("gone");
    let mailbox = unsafe { Mailbox::<Report>::new() };
    Process::spawn(
        (client.clone(), subject.clone(), mailbox.this()),
        |(client, subject, parent), _: Mailbox<()>| {
            let sub = client.subscribe(&subject).unwrap();
            std::mem::forget(sub);
            report(&parent, Report::Ready);
        },
    );
    expect_ready(&mailbox);
    let gone = eventually(Duration::from_secs(5), || {
        (client.status().unwrap().subscriptions == 0).then_some(())
    });
    assert!(gone.is_some(), "{:?}", client.status());
    // Publishing to it is harmless.
    client.publish(&subject, "x").unwrap();
    client.flush().unwrap();
    client.close();
}

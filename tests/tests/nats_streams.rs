//! Agents on a JetStream stream: `#[handler(stream = .., subject = ..)]` consumes the stream
//! through a durable consumer, acks each message only after its agent saved it, and a redelivery
//! (the consumer killed before its ack, an ack later than `ack_wait`, a replay) is not applied
//! twice. Against the harness's JetStream server (`SWARM_NATS_JS_URL`). Its own test binary: it
//! serves metrics (node-wide) and reads counts from them.

use std::io::{Read, Write};
use std::time::Duration;

use lunatic::{Mailbox, Process};
use serde::{Deserialize, Serialize};
use swarm::metrics::{serve, MetricsConfig};
use swarm::nats::{
    serve_streams, DeliverFrom, DurableConfig, JetStream, JsError, NatsClient, Replay, StorageType,
    StreamConfig, StreamOptions, StreamService,
};
use swarm::prelude::*;
use swarm::runtime::host;
use swarm_tests::nats::{connect, eventually, server};

/// The stream the agents below consume (names in the DSL are literals: one stream for the file).
const STREAM: &str = "STRMTEST";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub n: u64,
    /// When set, the handler says it runs (`running`) and waits until the test lets it go
    /// (`released`), at most this long.
    #[serde(default)]
    pub hold_ms: u64,
    /// The handler panics if it runs before this time (ms since the epoch): a failure that
    /// passes, as a store's outage would.
    #[serde(default)]
    pub fail_until_ms: u64,
}

/// The name a held handler registers while it runs for `account`.
fn running(account: &str) -> String {
    format!("strm-running-{account}")
}

/// The name the test registers to let a held handler for `account` go on.
fn released(account: &str) -> String {
    format!("strm-released-{account}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An account's entries. Write-behind with a save an hour away: only a stream message's own save
/// (before its ack) can keep its change across a crash.
#[agent(kind = "strm-ledger", persistence = "write_behind", save_every = "1h")]
pub struct Ledger {
    #[key]
    account: String,
    #[persist]
    entries: Vec<u64>,
    /// How many times the handler ran: one per message if nothing is applied twice.
    #[persist]
    runs: u64,
}

#[agent]
impl Ledger {
    #[handler(stream = "STRMTEST", subject = "strmtest.ledger.{key}")]
    pub fn entry(&mut self, entry: Entry) {
        assert!(now_ms() >= entry.fail_until_ms, "failing on purpose");
        if entry.hold_ms > 0 {
            host::registry_put(&running(&self.account), host::this());
            let until = std::time::Instant::now() + Duration::from_millis(entry.hold_ms);
            while host::registry_get(&released(&self.account)).is_none()
                && std::time::Instant::now() < until
            {
                lunatic::sleep(Duration::from_millis(5));
            }
        }
        self.entries.push(entry.n);
        self.runs += 1;
    }

    #[handler]
    pub fn state(&self) -> (Vec<u64>, u64) {
        (self.entries.clone(), self.runs)
    }
}

/// A kind without persisted fields: its stream marks alone are kept in the store, so that a
/// message it applied is not applied again after a restart (its events not sent again).
#[agent(kind = "strm-tally")]
pub struct Tally {
    #[key]
    key: String,
    /// How many times the handler ran since the agent started.
    runs: u64,
}

#[agent]
impl Tally {
    #[handler(stream = "STRMTEST", subject = "strmtest.tally.{key}")]
    pub fn count(&mut self, entry: Entry) {
        self.runs += entry.n.min(1);
    }

    #[handler]
    pub fn runs(&self) -> u64 {
        self.runs
    }
}

/// A kind only started twice at once (its own stream: the test above deletes and makes STRMTEST).
#[agent(kind = "strm-racer")]
pub struct Racer {
    #[key]
    key: String,
}

#[agent]
impl Racer {
    #[handler(stream = "STRMRACE", subject = "strmrace.{key}")]
    pub fn seen(&mut self, _entry: Entry) {}
}

/// `GET /metrics` on `addr`: the body.
fn metrics(addr: &str) -> String {
    let mut stream = lunatic::net::TcpStream::connect(addr).expect("the listener accepts");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Redeliveries an agent skipped (counted as `replayed` calls), and the consumer's outcomes.
fn counts(addr: &str) -> (f64, f64, f64, f64) {
    let text = metrics(addr);
    (
        sample(
            &text,
            r#"swarm_calls_total{kind="strm-ledger",handler="entry",outcome="replayed"}"#,
        ),
        sample(
            &text,
            r#"swarm_subject_messages_total{kind="strm-ledger",handler="entry",outcome="delivered"}"#,
        ),
        sample(
            &text,
            r#"swarm_subject_messages_total{kind="strm-ledger",handler="entry",outcome="malformed"}"#,
        ),
        sample(
            &text,
            r#"swarm_subject_messages_total{kind="strm-ledger",handler="entry",outcome="invalid_key"}"#,
        ),
    )
}

fn put(js: &JetStream, account: &str, n: u64, hold_ms: u64) -> u64 {
    put_entry(
        js,
        account,
        Entry {
            n,
            hold_ms,
            fail_until_ms: 0,
        },
    )
}

fn put_entry(js: &JetStream, account: &str, entry: Entry) -> u64 {
    let payload = serde_json::to_vec(&entry).unwrap();
    js.publish(&format!("strmtest.ledger.{account}"), None, &payload, None)
        .expect("stored")
        .sequence
}

fn state(account: &str) -> Option<(Vec<u64>, u64)> {
    Ledger::get_or_start(account).ok()?.state().ok()
}

/// Waits until `account` has `n` entries; its state then.
/// (A bound, not a figure: after a durable is made again, its replay skips every earlier message
/// one round trip at a time, which a busy machine makes slow.)
fn until_entries(account: &str, n: usize) -> (Vec<u64>, u64) {
    eventually(Duration::from_secs(30), || {
        state(account).filter(|(entries, _)| entries.len() >= n)
    })
    .unwrap_or_else(|| panic!("{account} has {n} entries: {:?}", state(account)))
}

/// Now, to the second, as RFC 3339 in UTC (days to a civil date: H. Hinnant's algorithm).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn fresh_stream(client: &NatsClient) -> JetStream {
    let js = JetStream::new(client.clone());
    match js.delete_stream(STREAM) {
        Ok(()) | Err(JsError::NoSuchStream { .. }) => {}
        Err(err) => panic!("delete {STREAM}: {err}"),
    }
    js.create_stream(&StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new(STREAM, ["strmtest.>"])
    })
    .expect("the stream is made");
    js
}

#[lunatic::test]
fn stream_messages_are_acked_after_the_save_and_never_applied_twice() {
    let Some(url) = server("JS_URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-streams")).unwrap();
    let client = connect(&url);
    swarm::set_node_nats(client.clone()).unwrap();
    let addr = serve(MetricsConfig::listen("127.0.0.1:0")).expect("metrics are served");
    let js = fresh_stream(&client);
    let options = StreamOptions {
        ack_wait: Duration::from_secs(1),
        ..StreamOptions::default()
    };

    // 1. In order, each once; malformed messages and bad keys never reach an agent.
    for n in 1..=5 {
        put(&js, "a", n, 0);
    }
    js.publish("strmtest.ledger.a", None, b"{\"n\": \"six\"}", None)
        .unwrap();
    js.publish("strmtest.ledger.bad~key", None, b"{\"n\": 6}", None)
        .unwrap();
    put(&js, "b", 1, 0);
    // Two: the second leaves the (empty) fields as they were, and its mark is saved all the same.
    for _ in 0..2 {
        js.publish("strmtest.tally.t", None, b"{\"n\": 1}", None)
            .unwrap();
    }
    let service = serve_streams::<Ledger>(&client, options.clone()).unwrap();
    let tally = serve_streams::<Tally>(&client, options.clone()).unwrap();
    assert_eq!(service.consumers(), ["swarm-strm-ledger-entry"]);
    // Not twice on one node: two consumers would share the durable's messages.
    let twice = serve_streams::<Ledger>(&client, options.clone());
    assert!(
        matches!(&twice, Err(err) if err.to_string().contains("consumed on this node already")),
        "{twice:?}"
    );
    assert_eq!(until_entries("a", 5), (vec![1, 2, 3, 4, 5], 5));
    assert_eq!(until_entries("b", 1), (vec![1], 1));
    // Counted (the consumer sends its counts at least once a second; a killed one loses what it
    // counted since).
    let refused = eventually(Duration::from_secs(5), || {
        let (_, delivered, malformed, invalid) = counts(&addr);
        // More when a busy machine let `ack_wait` pass before an ack (each skipped, none applied).
        (delivered >= 6.0).then_some((malformed, invalid))
    });
    assert_eq!(refused, Some((1.0, 1.0)));

    // 2. Saved before the ack, whatever the strategy: a killed agent comes back with it all.
    Ledger::lookup("a").unwrap().kill();
    assert_eq!(state("a"), Some((vec![1, 2, 3, 4, 5], 5)));

    // 3. A crash before the ack: the consumer is killed while the agent runs the handler; the
    //    agent saves, nobody acks. The consumer started again gets the message again (after
    //    ack_wait), and the agent's mark skips it.
    put(&js, "c", 7, 10_000);
    // Killed while the agent runs the handler: once the handler said it runs (the agent being up
    // is not enough: the consumer may not have handed it the message yet); the handler is let go
    // once the consumer is gone.
    assert!(
        eventually(Duration::from_secs(10), || host::registry_get(&running(
            "c"
        )))
        .is_some(),
        "the message reached no agent"
    );
    service.kill();
    host::registry_put(&released("c"), host::this());
    let service = serve_streams::<Ledger>(&client, options.clone()).unwrap();
    // Until the redelivery came: skipped (counted `replayed`), or applied a second time.
    let _ = eventually(Duration::from_secs(15), || {
        let (replayed, ..) = counts(&addr);
        let runs = state("c").map_or(0, |(_, runs)| runs);
        (replayed >= 1.0 || runs >= 2).then_some(())
    });
    let (replayed, ..) = counts(&addr);
    println!("killed before its ack: redeliveries skipped by the agent: {replayed}");
    assert_eq!(state("c"), Some((vec![7], 1)), "applied twice");
    // Delivered again and skipped (more than once if a busy machine let `ack_wait` pass again
    // before the agent answered; each skipped, none applied).
    assert!(
        replayed >= 1.0,
        "the unacked message was not delivered again"
    );

    // 4. The consumer killed mid-stream (as a crash would): the message it was waiting on is
    //    applied and saved but not acked; the consumer started again gets it again, and every
    //    message is applied once.
    let (skipped_before, ..) = counts(&addr);
    for n in 0..20 {
        put(&js, "d", n, 40);
    }
    lunatic::sleep(Duration::from_millis(300));
    service.kill();
    let applied_at_kill = state("d").map_or(0, |(entries, _)| entries.len());
    let service = serve_streams::<Ledger>(&client, options.clone()).unwrap();
    let (entries, runs) = until_entries("d", 20);
    assert_eq!(entries, (0..20).collect::<Vec<u64>>());
    assert_eq!(runs, 20, "a message was applied twice");

    // 4b. A handler that fails (it panics on its first delivery) holds back its key's later
    //     messages until it is applied: 2 must not be applied before 1 (the mark would then make
    //     1's redelivery look applied, and 1 would be lost).
    put_entry(
        &js,
        "e",
        Entry {
            n: 1,
            hold_ms: 0,
            fail_until_ms: now_ms() + 300,
        },
    );
    let last = put(&js, "e", 2, 0);
    assert_eq!(
        until_entries("e", 2),
        (vec![1, 2], 2),
        "out of order or lost"
    );

    // 4c. The consumer killed while messages of a key wait, started again at once (well within
    //     `ack_wait`, 2.5 s here: a node that restarts before it), and more published for that
    //     key once the dead consumer's pull is over: the one it was handling comes again before
    //     anything after it (skipped: applied), and the rest follow in order.
    service.kill();
    let service = serve_streams::<Ledger>(
        &client,
        StreamOptions {
            replay: Replay::FromSequence(last + 1),
            ack_wait: Duration::from_millis(2_500),
            ..options.clone()
        },
    )
    .unwrap();
    put(&js, "f", 0, 600);
    put(&js, "f", 1, 0);
    put(&js, "f", 2, 0);
    lunatic::sleep(Duration::from_millis(300));
    service.kill();
    let service = serve_streams::<Ledger>(
        &client,
        StreamOptions {
            ack_wait: Duration::from_millis(2_500),
            ..options.clone()
        },
    )
    .unwrap();
    lunatic::sleep(Duration::from_millis(1_300));
    put(&js, "f", 3, 0);
    assert_eq!(
        until_entries("f", 4),
        (vec![0, 1, 2, 3], 4),
        "out of order or lost"
    );

    // 4d. A message that keeps failing is given up on after `max_deliver` deliveries (2 here):
    //     logged, counted (`gave_up`), terminated; the key's next message then comes.
    service.kill();
    let service = serve_streams::<Ledger>(
        &client,
        StreamOptions {
            max_deliver: 2,
            ..options.clone()
        },
    )
    .unwrap();
    put_entry(
        &js,
        "g",
        Entry {
            n: 1,
            hold_ms: 0,
            fail_until_ms: now_ms() + 3_600_000,
        },
    );
    put(&js, "g", 2, 0);
    assert_eq!(until_entries("g", 1), (vec![2], 1));
    let outcome = |name: &str| {
        sample(
            &metrics(&addr),
            &format!(
                r#"swarm_subject_messages_total{{kind="strm-ledger",handler="entry",outcome="{name}"}}"#
            ),
        )
    };
    let gave_up = eventually(Duration::from_secs(10), || {
        Some(outcome("gave_up")).filter(|&n| n >= 1.0)
    });
    assert_eq!(gave_up, Some(1.0));

    lunatic::sleep(Duration::from_millis(1_200));
    let (skipped_after, ..) = counts(&addr);
    println!(
        "consumer killed after {applied_at_kill} of 20 applied, then once more; redeliveries \
         skipped: {}",
        skipped_after - skipped_before
    );

    // 5. Replay from a sequence: every message again; the agents (started again from the store,
    //    marks and all) apply none of them twice. (Killed: everything is acked by now.)
    service.kill();
    for account in ["a", "b", "c", "d", "e", "f", "g"] {
        Ledger::lookup(account).unwrap().kill();
    }
    let service = serve_streams::<Ledger>(
        &client,
        StreamOptions {
            replay: Replay::FromSequence(1),
            ..options.clone()
        },
    )
    .unwrap();
    let total = 5 + 1 + 1 + 20 + 2 + 4 + 2;
    let all_skipped = eventually(Duration::from_secs(10), || {
        let (skipped, ..) = counts(&addr);
        (skipped - skipped_after >= total as f64).then_some(skipped - skipped_after)
    });
    println!("replay from sequence 1: redeliveries skipped {all_skipped:?} of {total}");
    assert!(all_skipped.is_some());
    assert_eq!(state("a"), Some((vec![1, 2, 3, 4, 5], 5)));
    assert_eq!(state("d").map(|(_, runs)| runs), Some(20));

    // 5b. The same for a kind without persisted fields: its mark was saved all the same.
    assert_eq!(Tally::get_or_start("t").unwrap().runs().unwrap(), 2);
    tally.kill();
    Tally::lookup("t").unwrap().kill();
    let tally = serve_streams::<Tally>(
        &client,
        StreamOptions {
            replay: Replay::FromSequence(1),
            ..options.clone()
        },
    )
    .unwrap();
    let replayed = eventually(Duration::from_secs(5), || {
        let text = metrics(&addr);
        let skipped = sample(
            &text,
            r#"swarm_calls_total{kind="strm-tally",handler="count",outcome="replayed"}"#,
        );
        let runs = Tally::lookup("t").and_then(|t| t.runs().ok()).unwrap_or(0);
        (skipped >= 2.0 || runs >= 1).then_some(())
    });
    assert!(replayed.is_some(), "the replay did not reach the tally");
    assert_eq!(
        Tally::get_or_start("t").unwrap().runs().unwrap(),
        0,
        "applied again after a restart"
    );
    tally.kill();

    // 6. Replay from a time: only what was stored from then on comes (one message, new to its
    //    agent), none of the earlier ones (no more skipped redeliveries).
    service.stop();
    lunatic::sleep(Duration::from_millis(1_100));
    let since = rfc3339_now();
    put(&js, "b", 2, 0);
    let (skipped_before_time, ..) = counts(&addr);
    let service = serve_streams::<Ledger>(
        &client,
        StreamOptions {
            replay: Replay::FromTime(since.clone()),
            // Longer than this step waits: `b`'s new message, however late its ack, is not
            // delivered again, so any skipped redelivery is an earlier message.
            ack_wait: Duration::from_secs(5),
            ..options
        },
    )
    .unwrap();
    assert_eq!(until_entries("b", 2), (vec![1, 2], 2));
    lunatic::sleep(Duration::from_millis(1_200));
    let (skipped_after_time, ..) = counts(&addr);
    println!(
        "replay from {since}: redeliveries skipped {}",
        skipped_after_time - skipped_before_time
    );
    assert_eq!(
        skipped_after_time, skipped_before_time,
        "earlier messages replayed from {since}"
    );

    // 7. Resume finds the durable made with other settings (another filter, many messages out):
    //    it is updated to the handler's, not used as it is (it would deliver nothing of this
    //    subject, or out of order).
    service.kill();
    let mut stale = DurableConfig::new("swarm-strm-ledger-entry");
    stale.filter_subject = "strmtest.other.>".into();
    stale.deliver_from = DeliverFrom::New;
    drop(js.recreate_durable_consumer(STREAM, &stale).unwrap());
    let service = serve_streams::<Ledger>(&client, options.clone()).unwrap();
    put(&js, "b", 3, 0);
    assert_eq!(until_entries("b", 3), (vec![1, 2, 3], 3));

    // 8. The durable deleted under its running consumer: found missing and made again (from the
    //    stream's start: the marks skip the rest), and the stream goes on.
    js.delete_consumer(STREAM, "swarm-strm-ledger-entry")
        .unwrap();
    lunatic::sleep(Duration::from_millis(100));
    put(&js, "b", 4, 0);
    assert_eq!(until_entries("b", 4), (vec![1, 2, 3, 4], 4));
    service.stop();
    js.delete_stream(STREAM).unwrap();
    client.close();
}

/// `serve_streams` refuses a kind consumed on this node already, even when the two calls come at
/// the same instant: the check and the registration are one step. (A check, then a registration
/// once the consumer had made its durable, let all of them through: each then applied some of the
/// stream's messages, out of order.)
#[lunatic::test]
fn a_kind_served_twice_at_the_same_instant_is_consumed_once() {
    let Some(url) = server("JS_URL") else { return };
    let client = connect(&url);
    let js = JetStream::new(client.clone());
    match js.delete_stream("STRMRACE") {
        Ok(()) | Err(JsError::NoSuchStream { .. }) => {}
        Err(err) => panic!("delete STRMRACE: {err}"),
    }
    js.create_stream(&StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new("STRMRACE", ["strmrace.>"])
    })
    .expect("the stream is made");
    type Started = Result<StreamService, String>;
    // SAFETY: this process receives only the racers' answers.
    let this = unsafe { Process::<Started>::this() };
    let mailbox: Mailbox<Started> = unsafe { Mailbox::new() };
    for round in 0..5 {
        // Four callers, each waiting for the word; then the word to all of them at once.
        let racers: Vec<Process<()>> = (0..4)
            .map(|_| {
                Process::spawn(
                    (this, client.clone()),
                    |(parent, client), go: Mailbox<()>| {
                        go.receive();
                        parent.send(
                            serve_streams::<Racer>(&client, StreamOptions::default())
                                .map_err(|err| err.to_string()),
                        );
                    },
                )
            })
            .collect();
        lunatic::sleep(Duration::from_millis(100));
        for racer in &racers {
            racer.send(());
        }
        let answers: Vec<Started> = (0..4)
            .map(|_| mailbox.receive_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        let served: Vec<&StreamService> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
        for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
            assert!(
                refused.contains("consumed on this node already"),
                "round {round}: {refused}"
            );
        }
        assert_eq!(
            served.len(),
            1,
            "round {round}: served {} times at once",
            served.len()
        );
        for service in served {
            service.kill();
        }
    }
    js.delete_stream("STRMRACE").unwrap();
    client.close();
}

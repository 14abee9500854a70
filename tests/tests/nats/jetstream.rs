//! JetStream and KV buckets in the Lunatic NATS client, against real nats-servers started by
//! `tests/support/nats_harness.py` (through `scripts/test`):
//!
//! - `SWARM_NATS_JS_URL`: JetStream on; `SWARM_NATS_JS_R_URL`: the same, restartable;
//! - `SWARM_NATS_JS_NOPERM_URL`: JetStream on, but the user may not publish to `$JS.API.>` or
//!   `$KV.>`;
//! - `SWARM_NATS_URL`: no JetStream at all.
//!
//! Every stream and bucket has a name of its own (tests run concurrently) and is deleted at the
//! end. Every wait is bounded. Each test closes its client at the end: Lunatic's test runner
//! would otherwise wait for the connection's processes for seconds.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process, Tag};
use swarm::nats::{
    Headers, JetStream, JsError, KvBucket, KvConfig, KvEntry, KvOperation, KvWatch, StorageType,
    StreamConfig,
};
use swarm_tests::nats::{connect, control, eventually, server, unique};

/// What refusals and a watch's entries must come within (the calls are given 5 s): room for a
/// loaded machine, well short of a timeout.
const PROMPT: Duration = Duration::from_millis(2_500);

/// JetStream on the server `SWARM_NATS_<key>`; `None` (skipped) without the harness.
fn jetstream(key: &str) -> Option<JetStream> {
    let url = server(key)?;
    Some(JetStream::new(connect(&url)))
}

/// A stream or bucket name no other test or run uses (letters, digits and `_`).
fn fresh_name(what: &str) -> String {
    unique(what).replace('.', "_")
}

/// A memory bucket (nothing on disk) with `history` values per key.
fn memory_bucket(js: &JetStream, what: &str, history: u8) -> KvBucket {
    let config = KvConfig {
        history,
        storage: StorageType::Memory,
        ..KvConfig::new(fresh_name(what))
    };
    js.create_kv(&config)
        .unwrap_or_else(|e| panic!("create bucket {:?}: {e}", config.bucket))
}

/// The next entry of `watch`, which must come within `within`.
fn next_entry(watch: &mut KvWatch, within: Duration) -> KvEntry {
    match watch.next_timeout(within) {
        Ok(Some(entry)) => entry,
        other => panic!("no entry within {within:?}: {other:?}"),
    }
}

/// (key, value, operation) of an entry, for comparing sequences of them.
fn seen(entry: &KvEntry) -> (String, String, KvOperation) {
    (
        entry.key.clone(),
        String::from_utf8_lossy(&entry.value).into_owned(),
        entry.operation,
    )
}

fn put(key: &str, value: &str) -> (String, String, KvOperation) {
    (key.to_owned(), value.to_owned(), KvOperation::Put)
}

fn gone(key: &str, operation: KvOperation) -> (String, String, KvOperation) {
    (key.to_owned(), String::new(), operation)
}

#[lunatic::test]
fn streams_are_created_read_and_deleted() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let stream = fresh_name("orders");
    let subjects = format!("js.{stream}.>");
    let config = StreamConfig {
        storage: StorageType::Memory,
        allow_direct: true,
        ..StreamConfig::new(&stream, [subjects.as_str()])
    };
    let info = js.create_stream(&config).unwrap();
    assert_eq!(info.config.name, stream);
    assert_eq!(info.config.subjects, [subjects.as_str()]);
    assert!(info.config.allow_direct);
    assert_eq!(info.state.messages, 0);
    // The same configuration again: the stream that is there.
    assert_eq!(js.create_stream(&config).unwrap().config, info.config);
    // Another one under the same name: refused, naming the request.
    match js.create_stream(&StreamConfig {
        max_msgs: 10,
        ..config.clone()
    }) {
        Err(JsError::Api {
            err_code: 10058,
            description,
            ..
        }) => assert!(description.contains(&stream), "{description}"),
        other => panic!("a different configuration: {other:?}"),
    }
    assert_eq!(js.stream_info(&stream).unwrap().config, info.config);

    js.delete_stream(&stream).unwrap();
    assert_eq!(
        js.stream_info(&stream),
        Err(JsError::NoSuchStream {
            stream: stream.clone()
        })
    );
    assert_eq!(
        js.delete_stream(&stream),
        Err(JsError::NoSuchStream {
            stream: stream.clone()
        })
    );
    assert!(matches!(
        js.stream_info("a.b"),
        Err(JsError::InvalidConfig { .. })
    ));
    js.client().close();
}
#[lunatic::test]
fn publishes_are_acknowledged_and_conditional_ones_checked() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let stream = fresh_name("events");
    let config = StreamConfig {
        storage: StorageType::Memory,
        allow_direct: true,
        ..StreamConfig::new(&stream, [format!("js.{stream}.>")])
    };
    js.create_stream(&config).unwrap();
    let subject = format!("js.{stream}.a");

    let ack = js.publish(&subject, None, b"one", None).unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.duplicate),
        (stream.as_str(), 1, false)
    );
    let mut headers = Headers::new();
    headers.append("X-Tag", "second").unwrap();
    let ack = js
        .publish(&subject, Some(&headers), b"two", Some(1))
        .unwrap();
    assert_eq!(ack.sequence, 2);
    // Written at a stale sequence: refused, saying what is there now.
    let stale = js.publish(&subject, None, b"three", Some(1));
    assert_eq!(
        stale,
        Err(JsError::WrongLastSequence {
            subject: subject.clone(),
            expected: 1,
            current: Some(2)
        })
    );
    assert!(stale.unwrap_err().to_string().contains(&subject));
    assert!(matches!(
        js.publish(&subject, None, b"first?", Some(0)),
        Err(JsError::WrongLastSequence { expected: 0, .. })
    ));
    // 0 on a subject without messages: accepted.
    let other = format!("js.{stream}.b");
    assert_eq!(js.publish(&other, None, b"b", Some(0)).unwrap().sequence, 3);

    // The leader's copy and a replica's (one server: the same), with the message's own headers.
    let leader = js
        .last_for_subject(&stream, &subject, false)
        .unwrap()
        .unwrap();
    assert_eq!(
        (leader.sequence, leader.payload.as_slice()),
        (2, &b"two"[..])
    );
    assert_eq!(leader.subject, subject);
    assert_eq!(
        leader.headers.as_ref().and_then(|h| h.get("X-Tag")),
        Some("second")
    );
    let direct = js
        .last_for_subject(&stream, &subject, true)
        .unwrap()
        .unwrap();
    assert_eq!(direct, leader);
    let nothing = format!("js.{stream}.nothing");
    assert_eq!(js.last_for_subject(&stream, &nothing, false), Ok(None));
    assert_eq!(js.last_for_subject(&stream, &nothing, true), Ok(None));
    assert_eq!(js.stream_info(&stream).unwrap().state.last_seq, 3);

    // Nobody stores this subject: nothing was stored, and the error says so.
    let nowhere = format!("js.nowhere.{stream}");
    assert_eq!(
        js.publish(&nowhere, None, b"x", None),
        Err(JsError::NoStream {
            subject: nowhere.clone()
        })
    );
    js.delete_stream(&stream).unwrap();
    assert!(matches!(
        js.last_for_subject(&stream, &subject, false),
        Err(JsError::NoSuchStream { .. })
    ));
    match js.last_for_subject(&stream, &subject, true) {
        Err(JsError::Api {
            code: 503,
            description,
            ..
        }) => {
            assert!(description.contains(&stream), "{description}")
        }
        other => panic!("a direct get from a deleted stream: {other:?}"),
    }
    js.client().close();
}
#[lunatic::test]
fn kv_writes_are_compare_and_set() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "cas", 5);
    let name = bucket.name().to_owned();
    // Opening it again, by configuration or by name.
    let same = KvConfig {
        history: 5,
        storage: StorageType::Memory,
        ..KvConfig::new(&name)
    };
    assert_eq!(js.create_kv(&same).unwrap().name(), name);
    assert_eq!(js.kv(&name).unwrap().name(), name);
    match js.create_kv(&KvConfig { history: 2, ..same }) {
        Err(JsError::Api {
            err_code: 10058, ..
        }) => {}
        other => panic!("a bucket with another configuration: {other:?}"),
    }

    let first = bucket.create("k", b"v1").unwrap();
    assert_eq!(
        bucket.create("k", b"again"),
        Err(JsError::KeyExists {
            key: "k".into(),
            revision: first
        })
    );
    let second = bucket.update("k", b"v2", first).unwrap();
    assert!(second > first);
    // A writer that read `first` loses, and learns what is there.
    let subject = format!("$KV.{name}.k");
    assert_eq!(
        bucket.update("k", b"stale", first),
        Err(JsError::WrongLastSequence {
            subject: subject.clone(),
            expected: first,
            current: Some(second)
        })
    );
    let entry = bucket.get_from_leader("k").unwrap().unwrap();
    assert_eq!(
        (entry.value.as_slice(), entry.revision, entry.operation),
        (&b"v2"[..], second, KvOperation::Put)
    );
    assert_eq!(
        (entry.bucket.as_str(), entry.key.as_str()),
        (name.as_str(), "k")
    );
    assert_eq!(bucket.get("k").unwrap(), Some(entry));

    let third = bucket.put("k", b"v3").unwrap();
    assert!(matches!(
        bucket.delete("k", Some(second)),
        Err(JsError::WrongLastSequence { .. })
    ));
    let deleted = bucket.delete("k", Some(third)).unwrap();
    assert_eq!(bucket.get("k").unwrap(), None);
    assert_eq!(bucket.get_from_leader("k").unwrap(), None);
    // Deleted: it can be created again, over the delete.
    let again = bucket.create("k", b"v4").unwrap();
    assert!(again > deleted);

    // Headers travel with the value; KV's own are refused.
    let mut headers = Headers::new();
    headers.append("X-Owner", "node-1").unwrap();
    let fifth = bucket
        .update_with_headers("k", &headers, b"v5", again)
        .unwrap();
    let entry = bucket.get_from_leader("k").unwrap().unwrap();
    assert_eq!(entry.revision, fifth);
    assert_eq!(
        entry.headers.as_ref().and_then(|h| h.get("X-Owner")),
        Some("node-1")
    );
    bucket.create_with_headers("h", &headers, b"x").unwrap();
    let entry = bucket.get("h").unwrap().unwrap();
    assert_eq!(
        entry.headers.as_ref().and_then(|h| h.get("X-Owner")),
        Some("node-1")
    );
    let mut forged = Headers::new();
    forged.append("KV-Operation", "DEL").unwrap();
    assert!(matches!(
        bucket.update_with_headers("k", &forged, b"x", fifth),
        Err(JsError::InvalidConfig { .. })
    ));

    js.delete_kv(&name).unwrap();
    js.client().close();
}
#[lunatic::test]
fn of_racing_writers_at_one_revision_exactly_one_wins() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "race", 1);
    let read = bucket.put("owner", b"nobody").unwrap();
    // Writers in processes of their own, on the one connection, all at the revision read.
    const WRITERS: u32 = 8;
    let mailbox = unsafe { Mailbox::<Result<u64, JsError>>::new() };
    let tag = Tag::special(64).unwrap();
    for n in 0..WRITERS {
        Process::spawn(
            (bucket.clone(), mailbox.this(), n, read),
            |(bucket, parent, n, read), _: Mailbox<()>| {
                let written = bucket.update("owner", format!("node-{n}").as_bytes(), read);
                parent.tag_send(Tag::special(64).unwrap(), written);
            },
        );
    }
    let results: Vec<Result<u64, JsError>> = (0..WRITERS)
        .map(|_| {
            mailbox
                .tag_receive_timeout(&[tag], Duration::from_secs(5))
                .expect("every writer answers")
        })
        .collect();
    let won: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(lost, JsError::WrongLastSequence { expected, current: Some(c), .. }
                if *expected == read && *c == won[0]),
            "{lost:?}"
        );
    }
    let winner = bucket.get_from_leader("owner").unwrap().unwrap();
    assert_eq!(winner.revision, won[0]);
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}

#[lunatic::test]
fn purge_drops_a_key_s_history() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "purge", 10);
    let stream = format!("KV_{}", bucket.name());
    for value in ["1", "2", "3"] {
        bucket.put("p", value.as_bytes()).unwrap();
    }
    bucket.put("kept", b"k").unwrap();
    assert_eq!(js.stream_info(&stream).unwrap().state.messages, 4);
    let purged = bucket.purge("p", None).unwrap();
    assert_eq!(bucket.get("p").unwrap(), None);
    // Only the purge is left of `p`; `kept` is untouched.
    assert_eq!(js.stream_info(&stream).unwrap().state.messages, 2);
    let marker = js
        .last_for_subject(&stream, &format!("$KV.{}.p", bucket.name()), false)
        .unwrap()
        .unwrap();
    assert_eq!(marker.sequence, purged);
    assert_eq!(
        marker.headers.as_ref().and_then(|h| h.get("KV-Operation")),
        Some("PURGE")
    );
    assert!(matches!(
        bucket.purge("kept", Some(1)),
        Err(JsError::WrongLastSequence { .. })
    ));
    let created = bucket.create("p", b"new").unwrap();
    assert!(created > purged);
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}
#[lunatic::test]
fn keys_lists_the_live_keys() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "keys", 3);
    assert_eq!(bucket.keys().unwrap(), Vec::<String>::new());
    for key in ["b.c", "a", "d", "e"] {
        bucket.put(key, b"v").unwrap();
    }
    bucket.put("a", b"v2").unwrap();
    bucket.delete("d", None).unwrap();
    bucket.purge("e", None).unwrap();
    assert_eq!(bucket.keys().unwrap(), ["a", "b.c"]);
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}
#[lunatic::test]
fn a_watch_sees_the_current_entries_then_every_change_in_order() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "watch", 5);
    bucket.put("a", b"1").unwrap();
    bucket.put("b", b"1").unwrap();
    bucket.put("a", b"2").unwrap();
    bucket.delete("b", None).unwrap();

    let mut watch = bucket.watch(">").unwrap();
    assert!(!watch.caught_up());
    let snapshot = [
        next_entry(&mut watch, PROMPT),
        next_entry(&mut watch, PROMPT),
    ];
    assert_eq!(
        snapshot.iter().map(seen).collect::<Vec<_>>(),
        [put("a", "2"), gone("b", KvOperation::Delete)]
    );
    assert!(watch.caught_up());
    assert!(snapshot[0].revision < snapshot[1].revision);

    let c = bucket.put("c", b"1").unwrap();
    bucket.update("a", b"3", snapshot[0].revision).unwrap();
    bucket.delete("a", None).unwrap();
    bucket.purge("c", Some(c)).unwrap();
    let changes: Vec<KvEntry> = (0..4).map(|_| next_entry(&mut watch, PROMPT)).collect();
    assert_eq!(
        changes.iter().map(seen).collect::<Vec<_>>(),
        [
            put("c", "1"),
            put("a", "3"),
            gone("a", KvOperation::Delete),
            gone("c", KvOperation::Purge),
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].revision < w[1].revision));
    assert_eq!(changes[0].revision, c);
    assert_eq!(watch.next_timeout(Duration::from_millis(200)), Ok(None));
    assert_eq!(watch.resets(), 0);

    // A filter: only the keys it matches.
    bucket.put("user.1", b"u1").unwrap();
    bucket.put("other", b"o").unwrap();
    let mut users = bucket.watch("user.*").unwrap();
    assert_eq!(seen(&next_entry(&mut users, PROMPT)), put("user.1", "u1"));
    assert!(users.caught_up());
    bucket.put("other", b"o2").unwrap();
    bucket.put("user.2", b"u2").unwrap();
    assert_eq!(seen(&next_entry(&mut users, PROMPT)), put("user.2", "u2"));
    // An empty match: caught up at once.
    let nobody = bucket.watch("nobody.>").unwrap();
    assert!(nobody.caught_up());
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}
#[lunatic::test]
fn a_watch_answers_flow_control() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    // 3 MiB of values: the server asks for flow control past 1 MiB outstanding, and stops
    // delivering at 2 MiB until it is answered.
    let bucket = memory_bucket(&js, "flow", 1);
    let value = vec![b'x'; 64 * 1024];
    let keys: Vec<String> = (0..48).map(|i| format!("big.{i:02}")).collect();
    for key in &keys {
        bucket.put(key, &value).unwrap();
    }
    let mut watch = bucket.watch(">").unwrap();
    let mut seen_keys = Vec::new();
    while !watch.caught_up() {
        let entry = next_entry(&mut watch, PROMPT);
        assert_eq!(entry.value.len(), value.len());
        seen_keys.push(entry.key);
    }
    assert_eq!(seen_keys, keys);
    assert_eq!(watch.resets(), 0);
    assert_eq!(bucket.keys().unwrap(), keys);
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}

#[lunatic::test]
fn an_expired_key_reaches_a_watcher_as_a_delete() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let config = KvConfig {
        max_age: Some(Duration::from_secs(1)),
        limit_markers: Some(Duration::from_secs(1)),
        storage: StorageType::Memory,
        ..KvConfig::new(fresh_name("leases"))
    };
    let bucket = js.create_kv(&config).unwrap();
    let info = js.stream_info(&format!("KV_{}", config.bucket)).unwrap();
    assert_eq!(
        info.config.subject_delete_marker_ttl,
        Some(Duration::from_secs(1))
    );
    let revision = bucket.put("node-1", b"lease").unwrap();
    let mut watch = bucket.watch(">").unwrap();
    assert_eq!(
        seen(&next_entry(&mut watch, PROMPT)),
        put("node-1", "lease")
    );
    // Removed by max_age about a second after the put: the server's marker comes as a purge.
    let expired = next_entry(&mut watch, Duration::from_secs(4));
    assert_eq!(expired.key, "node-1");
    assert_eq!(expired.operation, KvOperation::Purge);
    assert!(expired.revision > revision);
    assert_eq!(
        expired
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Marker-Reason")),
        Some("MaxAge")
    );
    assert_eq!(bucket.get_from_leader("node-1").unwrap(), None);
    // And the key can be claimed again, over the marker.
    bucket.create("node-1", b"lease-2").unwrap();
    js.delete_kv(&config.bucket).unwrap();
    js.client().close();
}
#[lunatic::test]
fn a_watch_survives_a_server_restart() {
    let Some(url) = server("JS_R_URL") else {
        return;
    };
    let js = JetStream::new(connect(&url)).with_timeout(Duration::from_secs(1));
    let bucket = js.create_kv(&KvConfig::new(fresh_name("restart"))).unwrap();
    bucket.put("before", b"1").unwrap();
    let mut watch = bucket.watch(">").unwrap();
    assert_eq!(seen(&next_entry(&mut watch, PROMPT)), put("before", "1"));

    // The server forgets the watch's consumer (it was in memory); the bucket is on disk.
    control("restart js_r");
    let written = eventually(Duration::from_secs(5), || bucket.put("after", b"2").ok())
        .expect("the bucket takes writes again after the restart");
    // A put is retried when the restarting server lost its ack: an earlier one may be stored too.
    let entry = loop {
        let entry = next_entry(&mut watch, Duration::from_secs(6));
        assert_eq!(seen(&entry), put("after", "2"));
        if entry.revision >= written {
            break entry;
        }
    };
    assert_eq!(entry.revision, written);
    assert!(watch.resets() >= 1, "the watch made a new consumer");
    js.delete_kv(bucket.name()).unwrap();
    js.client().close();
}
#[lunatic::test]
fn a_missing_bucket_is_named() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let name = fresh_name("missing");
    let err = js.kv(&name).unwrap_err();
    assert_eq!(
        err,
        JsError::NoSuchBucket {
            bucket: name.clone()
        }
    );
    assert!(err.to_string().contains(&name), "{err}");
    assert!(matches!(
        js.delete_kv(&name),
        Err(JsError::NoSuchBucket { .. })
    ));
    // A handle whose bucket was deleted meanwhile.
    let bucket = memory_bucket(&js, "deleted", 1);
    bucket.put("k", b"v").unwrap();
    js.delete_kv(bucket.name()).unwrap();
    let missing = JsError::NoSuchBucket {
        bucket: bucket.name().to_owned(),
    };
    assert_eq!(bucket.put("k", b"v"), Err(missing.clone()));
    assert_eq!(bucket.get("k"), Err(missing.clone()));
    assert_eq!(bucket.get_from_leader("k"), Err(missing.clone()));
    assert_eq!(bucket.create("k", b"v"), Err(missing.clone()));
    assert!(matches!(bucket.watch(">"), Err(e) if e == missing));
    js.client().close();
}
#[lunatic::test]
fn a_user_without_permission_is_told_at_once() {
    let Some(js) = jetstream("JS_NOPERM_URL") else {
        return;
    };
    let started = Instant::now();
    assert_eq!(
        js.stream_info("orders"),
        Err(JsError::PermissionDenied {
            subject: "$JS.API.STREAM.INFO.orders".into()
        })
    );
    assert_eq!(
        js.create_kv(&KvConfig::new("profiles")),
        Err(JsError::PermissionDenied {
            subject: "$JS.API.STREAM.CREATE.KV_profiles".into()
        })
    );
    assert_eq!(
        js.publish("$KV.profiles.alice", None, b"x", Some(0)),
        Err(JsError::PermissionDenied {
            subject: "$KV.profiles.alice".into()
        })
    );
    assert!(started.elapsed() < PROMPT * 3, "{:?}", started.elapsed());
    js.client().close();
}
#[lunatic::test]
fn without_jetstream_calls_say_it_is_not_enabled() {
    let Some(js) = jetstream("URL") else {
        return;
    };
    let started = Instant::now();
    assert_eq!(js.stream_info("orders"), Err(JsError::NotEnabled));
    assert_eq!(js.kv("profiles"), Err(JsError::NotEnabled));
    assert_eq!(
        js.create_kv(&KvConfig::new("profiles")),
        Err(JsError::NotEnabled)
    );
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    js.client().close();
}
#[lunatic::test]
fn bad_keys_are_refused_before_anything_is_sent() {
    let Some(js) = jetstream("JS_URL") else {
        return;
    };
    let bucket = memory_bucket(&js, "badkeys", 1);
    // With the connection closed, anything sent would fail with `Closed`: only checks made
    // before sending can answer `InvalidKey`.
    js.client().close();
    for key in ["", ".a", "a.", "a..b", "a b", "a*", "a.>", "ä"] {
        assert!(
            matches!(bucket.put(key, b"v"), Err(JsError::InvalidKey { key: ref k, .. }) if k == key),
            "{key:?}"
        );
        assert!(
            matches!(bucket.get(key), Err(JsError::InvalidKey { .. })),
            "{key:?}"
        );
        assert!(
            matches!(bucket.update(key, b"v", 1), Err(JsError::InvalidKey { .. })),
            "{key:?}"
        );
    }
    assert!(matches!(
        bucket.watch("a*.b"),
        Err(JsError::InvalidKey { .. })
    ));
    assert!(matches!(
        js.create_kv(&KvConfig::new("a.b")),
        Err(JsError::InvalidConfig { .. })
    ));
    assert!(matches!(
        bucket.put("fine", b"v"),
        Err(JsError::Nats(swarm::nats::NatsError::Closed))
    ));
    let cleanup = jetstream("JS_URL").expect("the same server");
    cleanup.delete_kv(bucket.name()).unwrap();
    cleanup.client().close();
}

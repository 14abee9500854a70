//! Keys, the registry (one live agent per key), stored records (format, corruption, writes only
//! when persisted state changed) and start-up failures.

use swarm::prelude::*;
use swarm::KeyError;
use swarm_tests::{scratch_dir, Account, Counter};

#[lunatic::test]
fn a_bad_key_is_refused_with_the_character_and_its_position() {
    let err = Counter::get_or_start("lo bby").unwrap_err();
    assert_eq!(
        err,
        StartError::InvalidKey(KeyError::BadCharacter {
            kind: "counter".into(),
            key: "lo bby".into(),
            character: ' ',
            position: 2
        })
    );
    assert!(
        err.to_string()
            .contains("character ' ' at byte 2 is not allowed"),
        "{err}"
    );
    for bad in ["", "a.b", "a*", "x>", "../etc", "new\nline"] {
        assert!(
            matches!(Counter::get_or_start(bad), Err(StartError::InvalidKey(_))),
            "{bad:?}"
        );
        assert!(Counter::lookup(bad).is_none());
    }
}

#[lunatic::test]
fn lookup_finds_only_live_agents() {
    let store = StoreConfig::memory("lookup");
    assert!(Counter::lookup("nobody").is_none());
    let counter = Counter::launcher()
        .store(store)
        .get_or_start("somebody")
        .unwrap();
    let found = Counter::lookup("somebody").unwrap();
    assert_eq!(found, counter);
    counter.kill();
    while counter.is_alive() {
        lunatic::sleep(std::time::Duration::from_millis(1));
    }
    assert!(Counter::lookup("somebody").is_none());
}

#[lunatic::test]
fn concurrent_get_or_start_yields_one_agent(mailbox: lunatic::Mailbox<u64>) {
    let this = mailbox.this();
    let racers = 16;
    for _ in 0..racers {
        lunatic::Process::spawn_link(this, |parent, _: lunatic::Mailbox<()>| {
            let counter = Counter::launcher()
                .store(StoreConfig::memory("race"))
                .get_or_start("contended")
                .unwrap();
            counter.add(1).unwrap().unwrap();
            parent.send(counter.process_id().expect("a local agent"));
        });
    }
    let ids: Vec<u64> = (0..racers).map(|_| mailbox.receive()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let counter = Counter::lookup("contended").unwrap();
    assert_eq!(
        counter.total().unwrap(),
        racers as u64,
        "every racer reached the same agent"
    );
}

#[lunatic::test]
fn integer_keys_and_a_failing_on_start_hook() {
    let store = StoreConfig::memory("accounts");
    let account = Account::launcher()
        .store(store.clone())
        .get_or_start(7u64)
        .unwrap();
    assert_eq!(account.key(), "7");
    assert_eq!(account.id().unwrap(), 7);
    assert_eq!(account.deposit(-5).unwrap(), -5);
    let err = Account::launcher()
        .store(store)
        .get_or_start(13u64)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent `account` key \"13\": the on_start hook failed: account 13 is closed"
    );
    assert!(Account::lookup(13u64).is_none());
}

#[lunatic::test]
fn records_are_versioned_json_at_kind_slash_key() {
    let dir = scratch_dir("records");
    let config = StoreConfig::file(&dir);
    let counter = Counter::launcher()
        .store(config.clone())
        .get_or_start("r1")
        .unwrap();
    counter.add(12).unwrap().unwrap();
    let store = config.open().unwrap();
    assert_eq!(store.list("counter/").unwrap(), vec!["counter/r1"]);
    let record = store.get("counter/r1").unwrap().unwrap();
    assert_eq!(&record[..6], b"SWRM\x01\x01");
    assert_eq!(
        std::str::from_utf8(&record[6..]).unwrap(),
        r#"{"total":12,"stops":0}"#
    );
}

#[lunatic::test]
fn a_corrupt_record_stops_the_agent_from_starting_and_is_left_untouched() {
    for (config, label) in [
        (StoreConfig::memory("corrupt"), "memory"),
        (StoreConfig::file(scratch_dir("corrupt-file")), "file"),
        (
            StoreConfig::sqlite(scratch_dir("corrupt-sqlite"), "c.db"),
            "sqlite",
        ),
    ] {
        let store = config.open().unwrap();
        let garbage = b"SWRM\x01\x01{\"total\": \"not a number\"}".to_vec();
        store.put("counter/broken", &garbage).unwrap();
        let err = Counter::launcher()
            .store(config.clone())
            .get_or_start("broken")
            .unwrap_err();
        match &err {
            StartError::CorruptRecord {
                kind,
                key,
                storage_key,
                reason,
            } => {
                assert_eq!(
                    (kind.as_str(), key.as_str(), storage_key.as_str()),
                    ("counter", "broken", "counter/broken")
                );
                assert!(reason.contains("do not decode"), "{reason}");
            }
            other => panic!("{label}: expected CorruptRecord, got {other:?}"),
        }
        assert!(err.to_string().contains("refuses to start"), "{err}");
        assert_eq!(
            store.get("counter/broken").unwrap(),
            Some(garbage),
            "{label}: the bytes stay"
        );

        store.put("counter/alien", b"not even a header").unwrap();
        let err = Counter::launcher()
            .store(config.clone())
            .get_or_start("alien")
            .unwrap_err();
        assert!(
            err.to_string().contains("not a swarm record"),
            "{label}: {err}"
        );

        store.put("counter/future", b"SWRM\x09\x01{}").unwrap();
        let err = Counter::launcher()
            .store(config)
            .get_or_start("future")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("record format version 9 is not supported"),
            "{label}: {err}"
        );
    }
}

#[lunatic::test]
fn a_handler_that_changes_no_persisted_field_writes_nothing() {
    let config = StoreConfig::memory("elide");
    let store = config.open().unwrap();
    let counter = Counter::launcher().store(config).get_or_start("e").unwrap();
    counter.add(1).unwrap().unwrap();
    // Replace the record behind the agent's back with a marker: any write would overwrite it.
    let marker = b"SWRM\x01\x01{\"total\":999,\"stops\":0}".to_vec();
    store.put("counter/e", &marker).unwrap();
    assert_eq!(
        counter.touch().unwrap(),
        2,
        "&mut self, ephemeral field only"
    );
    assert_eq!(counter.total().unwrap(), 1, "&self");
    assert_eq!(
        store.get("counter/e").unwrap(),
        Some(marker),
        "nothing was written"
    );
    counter.add(1).unwrap().unwrap();
    assert_eq!(
        store.get("counter/e").unwrap().unwrap(),
        b"SWRM\x01\x01{\"total\":2,\"stops\":0}".to_vec(),
        "a change is written through before the reply"
    );
}

#[lunatic::test]
fn stores_refuse_keys_they_cannot_hold() {
    for config in [
        StoreConfig::memory("keys"),
        StoreConfig::file(scratch_dir("keys-file")),
        StoreConfig::sqlite(scratch_dir("keys-sqlite"), "k.db"),
    ] {
        let store = config.open().unwrap();
        for bad in ["", "a//b", "../x", "a b", "a/"] {
            assert!(
                matches!(
                    store.put(bad, b"x"),
                    Err(swarm::StoreError::InvalidKey { .. })
                ),
                "{config:?} {bad:?}"
            );
        }
        store.put("k/a", b"1").unwrap();
        store.put("k/b", b"2").unwrap();
        store.put("kx/c", b"3").unwrap();
        assert_eq!(store.list("k/").unwrap(), vec!["k/a", "k/b"], "{config:?}");
        store.delete("k/a").unwrap();
        assert_eq!(store.get("k/a").unwrap(), None);
    }
}

#[lunatic::test]
fn a_sqlite_database_stays_inside_its_directory() {
    for file in ["../escape.db", "/etc/x.db", "a/b.db", "", ".."] {
        let Err(err) = StoreConfig::sqlite(scratch_dir("sandbox"), file).open() else {
            panic!("{file:?} was accepted")
        };
        assert!(
            matches!(err, swarm::StoreError::Config(_)),
            "{file:?}: {err}"
        );
    }
}

#[lunatic::test]
fn an_agent_may_get_or_start_other_agents_while_it_starts() {
    let started = std::time::Instant::now();
    let greeter = swarm_tests::Greeter::get_or_start("ada").unwrap();
    assert_eq!(greeter.greet().unwrap(), 1);
    assert_eq!(greeter.greet().unwrap(), 2);
    assert!(Counter::lookup("ada-greetings").is_some());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no deadlock: {:?}",
        started.elapsed()
    );
}

#[lunatic::test]
fn an_agent_that_gets_or_starts_itself_while_it_starts_gets_an_error_at_once() {
    let started = std::time::Instant::now();
    let err = swarm_tests::Narcissus::get_or_start("echo").unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot get or start itself while it starts"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

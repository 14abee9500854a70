//! The cluster on one node, against the JetStream-enabled nats-server of the harness
//! (`SWARM_NATS_JS_URL`): the NATS KV store's compare-and-set and fencing, a node that joins,
//! serves through the front door and restores an agent's state from KV, refuses corrupt
//! directory entries and state records without touching them, and drains.
//!
//! Several nodes, killed, paused and drained as real OS processes, are the fault tests of
//! `tests/support/cluster_faults.py`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::cluster::{join, Cluster, ClusterConfig, ServeOptions};
use swarm::nats::{JetStream, NatsClient};
use swarm::prelude::*;
use swarm::StoreError;
use swarm_tests::nats::{connect, options, server, unique};

const TIMEOUT: Duration = Duration::from_secs(5);

/// An append-only list (the fault tests' agent, here too).
#[agent(kind = "ledger")]
pub struct Ledger {
    #[key]
    id: String,
    #[persist]
    entries: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appended {
    pub len: u64,
}

#[agent]
impl Ledger {
    #[handler]
    pub fn append(&mut self, value: u64) -> Appended {
        self.entries.push(value);
        Appended {
            len: self.entries.len() as u64,
        }
    }

    #[handler]
    pub fn entries(&self) -> Vec<u64> {
        self.entries.clone()
    }
}

/// A register, served by one test only (the node-wide mark that a kind is the cluster's is
/// shared by every test of this file: they all run on one Lunatic node).
#[agent(kind = "register")]
pub struct Register {
    #[key]
    id: String,
    #[persist]
    value: u64,
}

#[agent]
impl Register {
    #[handler]
    pub fn set(&mut self, value: u64) -> u64 {
        std::mem::replace(&mut self.value, value)
    }
}

/// Lines, and how many orderly stops it has seen (its passivations).
#[agent(kind = "memo")]
pub struct Memo {
    #[key]
    id: String,
    #[persist]
    lines: Vec<String>,
    #[persist]
    stops: u32,
}

#[agent]
impl Memo {
    #[handler]
    pub fn add(&mut self, line: String) -> usize {
        self.lines.push(line);
        self.lines.len()
    }

    #[handler]
    pub fn stops(&self) -> u32 {
        self.stops
    }

    #[on_stop]
    fn stopped(&mut self) {
        self.stops += 1;
    }
}

/// A namespace (and bucket suffix) no other test or run uses: subject-token characters only.
fn namespace(name: &str) -> String {
    unique(name).replace('.', "_")
}

fn ask(client: &NatsClient, subject: &str, payload: &str) -> serde_json::Value {
    let reply = client
        .request(subject, payload.as_bytes(), TIMEOUT)
        .unwrap_or_else(|err| panic!("request to {subject}: {err}"));
    serde_json::from_slice(&reply.payload).expect("the reply is JSON")
}

fn join_node(url: &str, ns: &str, name: &str) -> Cluster {
    let config = ClusterConfig::new(options(url), ns, name)
        .unwrap()
        .lease_ttl(Duration::from_secs(3))
        .unwrap();
    join(config).unwrap_or_else(|err| panic!("join {ns}: {err}"))
}

#[lunatic::test]
fn the_kv_store_fences_an_earlier_holder() {
    let Some(url) = server("JS_URL") else { return };
    swarm::set_node_nats(connect(&url)).unwrap();
    let config = StoreConfig::nats_kv(format!("fence_{}", namespace("kv")));
    let first = config.open().unwrap();
    assert_eq!(first.load_as_owner("ledger/a").unwrap(), None);
    first.put("ledger/a", b"one").unwrap();

    // A second holder takes the key over: it reads what the first wrote, and fences it.
    let second = config.open().unwrap();
    assert_eq!(
        second.load_as_owner("ledger/a").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    match first.put("ledger/a", b"stale") {
        Err(StoreError::Conflict { key, reason }) => {
            assert_eq!(key, "ledger/a");
            assert!(reason.contains("stale"), "{reason}");
        }
        other => panic!("the stale holder's write must be refused, got {other:?}"),
    }
    second.put("ledger/a", b"two").unwrap();
    assert_eq!(
        config.open().unwrap().get("ledger/a").unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

#[lunatic::test]
fn every_kv_write_is_a_compare_and_set() {
    let Some(url) = server("JS_URL") else { return };
    swarm::set_node_nats(connect(&url)).unwrap();
    let config = StoreConfig::nats_kv(format!("cas_{}", namespace("kv")));
    let (a, b) = (config.open().unwrap(), config.open().unwrap());
    // Neither has read the key: both create it, and only one can.
    a.put("k/x", b"a").unwrap();
    assert!(matches!(
        b.put("k/x", b"b"),
        Err(StoreError::Conflict { .. })
    ));
    // Both read revision n; the first write wins, the second is refused.
    assert_eq!(b.get("k/x").unwrap().as_deref(), Some(&b"a"[..]));
    a.put("k/x", b"a2").unwrap();
    assert!(matches!(
        b.put("k/x", b"b2"),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(a.get("k/x").unwrap().as_deref(), Some(&b"a2"[..]));
    assert_eq!(a.list("k/").unwrap(), vec!["k/x".to_owned()]);
}

/// What a saving process of `concurrent_kv_saves_...` tells the test.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Saver {
    /// Its key is loaded (and fenced) as owner: it waits for the go.
    Ready(usize),
    /// Its saves, in order: `Ok(())` when acknowledged, or the error's text.
    Done(usize, Vec<Result<(), String>>),
}

/// Many processes (as many agents) save at once through the node's one NATS connection: every
/// save is a compare-and-set that JetStream acknowledges, the saves of all of them are in
/// flight together, and one stale holder among them is refused on every try while nobody
/// else's save fails.
#[lunatic::test]
fn concurrent_kv_saves_are_each_acknowledged_and_a_stale_holder_is_refused_alone() {
    use lunatic::{Mailbox, Process};
    const SAVERS: usize = 48;
    const SAVES: usize = 25;
    let Some(url) = server("JS_URL") else { return };
    swarm::set_node_nats(connect(&url)).unwrap();
    let config = StoreConfig::nats_kv(format!("many_{}", namespace("kv")));
    // The stale holder: it owned `w/stale` and saved once, then another holder took it over.
    let stale_key = "w/stale";
    // SAFETY: this process receives only the savers' reports.
    let mailbox: Mailbox<Saver> = unsafe { Mailbox::new() };
    let parent = mailbox.this();
    let spawn_saver = |i: usize, key: String| {
        Process::spawn(
            (config.clone(), parent, i, key),
            |(config, parent, i, key): (StoreConfig, Process<Saver>, usize, String),
             mailbox: Mailbox<bool>| {
                let store = config.open().unwrap();
                store.load_as_owner(&key).unwrap();
                if i == SAVERS {
                    store.put(&key, b"saved before the take-over").unwrap();
                }
                parent.send(Saver::Ready(i));
                mailbox.receive();
                let saves = (0..SAVES)
                    .map(|n| {
                        store
                            .put(&key, format!("{key} #{n}").as_bytes())
                            .map_err(|err| err.to_string())
                    })
                    .collect();
                parent.send(Saver::Done(i, saves));
            },
        )
    };
    let mut savers: Vec<Process<bool>> = (0..SAVERS)
        .map(|i| spawn_saver(i, format!("w/{i}")))
        .collect();
    savers.push(spawn_saver(SAVERS, stale_key.to_owned()));
    for _ in 0..=SAVERS {
        match mailbox.receive_timeout(Duration::from_secs(30)) {
            Ok(Saver::Ready(_)) => {}
            other => panic!("a saver did not get ready: {other:?}"),
        }
    }
    let new_holder = config.open().unwrap();
    assert_eq!(
        new_holder.load_as_owner(stale_key).unwrap().as_deref(),
        Some(&b"saved before the take-over"[..])
    );
    for saver in &savers {
        saver.send(true);
    }
    for _ in 0..=SAVERS {
        match mailbox.receive_timeout(Duration::from_secs(60)) {
            Ok(Saver::Done(i, saves)) if i == SAVERS => {
                assert_eq!(saves.len(), SAVES);
                for refused in saves {
                    let reason = refused.expect_err("a fenced holder's save must be refused");
                    assert!(reason.contains("stale"), "{reason}");
                }
            }
            Ok(Saver::Done(i, saves)) => {
                assert_eq!(saves.len(), SAVES);
                for (n, saved) in saves.into_iter().enumerate() {
                    saved.unwrap_or_else(|err| panic!("w/{i}'s save #{n} failed: {err}"));
                }
            }
            other => panic!("a saver did not finish: {other:?}"),
        }
    }
    // Read back from the stream's leader by another holder: each key holds its last save.
    let reader = config.open().unwrap();
    for i in 0..SAVERS {
        let key = format!("w/{i}");
        let last = format!("{key} #{}", SAVES - 1);
        assert_eq!(
            reader.get(&key).unwrap().as_deref(),
            Some(last.as_bytes()),
            "{key}"
        );
    }
    assert_eq!(
        reader.get(stale_key).unwrap().as_deref(),
        Some(&b"saved before the take-over"[..]),
        "no refused save of the stale holder may show"
    );
    new_holder.put(stale_key, b"the new holder's").unwrap();
}

#[lunatic::test]
fn a_node_serves_through_the_front_door_and_restores_state_from_kv() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("serve");
    let cluster = join_node(&url, &ns, "solo");
    let _served = cluster.serve::<Ledger>(2).unwrap();
    let client = connect(&url);
    let append = format!("{ns}.ledger.serve-a.append");
    assert_eq!(
        ask(&client, &append, r#"{"value": 7}"#),
        serde_json::json!({"ok": {"len": 1}})
    );
    assert_eq!(
        ask(&client, &append, r#"{"value": 8}"#),
        serde_json::json!({"ok": {"len": 2}})
    );
    // The agent dies; the next call starts it again here (the directory names this node) with
    // its state from KV.
    Ledger::launcher()
        .lookup("serve-a")
        .expect("the agent runs here")
        .kill();
    assert_eq!(
        ask(&client, &format!("{ns}.ledger.serve-a.entries"), "{}"),
        serde_json::json!({"ok": [7, 8]})
    );
    let stats = cluster.stats().unwrap();
    assert_eq!(stats["activations"], 2, "{stats}");
    assert_eq!(stats["node_name"], "solo", "{stats}");
    // The same figures in the services API's STATS, for stock NATS tooling.
    let reply = client
        .request(&format!("$SRV.STATS.swarm-{ns}"), b"", TIMEOUT)
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let data = &stats["endpoints"][0]["data"];
    assert_eq!(data["cluster"]["activations"], 2, "{stats}");
    assert_eq!(data["cluster"]["node_id"], cluster.node_id(), "{stats}");

    // The directory names this node's id; the state is in the namespace's bucket.
    let js = JetStream::new(client.clone());
    let entry = js
        .kv(&format!("SWARM_DIR_{ns}"))
        .unwrap()
        .get_from_leader("ledger/serve-a")
        .unwrap()
        .expect("a directory entry");
    let owner: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(owner["node"], cluster.node_id(), "{owner}");
    let node = js
        .kv(&format!("SWARM_NODES_{ns}"))
        .unwrap()
        .get_from_leader(cluster.node_id())
        .unwrap()
        .expect("the node's lease");
    assert!(!node.value.is_empty());
}

#[lunatic::test]
fn corrupt_entries_are_refused_by_key_and_left_as_they_are() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("corrupt");
    let cluster = join_node(&url, &ns, "c1");
    let _served = cluster.serve::<Ledger>(1).unwrap();
    let client = connect(&url);
    let js = JetStream::new(client.clone());

    let directory = js.kv(&format!("SWARM_DIR_{ns}")).unwrap();
    directory.put("ledger/corrupt-dir", b"{not json").unwrap();
    let reply = ask(
        &client,
        &format!("{ns}.ledger.corrupt-dir.append"),
        r#"{"value": 1}"#,
    );
    assert_eq!(reply["error"]["kind"], "corrupt_directory", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("ledger/corrupt-dir"), "{message}");
    assert_eq!(
        directory
            .get_from_leader("ledger/corrupt-dir")
            .unwrap()
            .unwrap()
            .value,
        b"{not json"
    );

    let state = js.kv(&format!("SWARM_STATE_{ns}")).unwrap();
    state.put("ledger/corrupt-state", b"\x00garbage").unwrap();
    let reply = ask(
        &client,
        &format!("{ns}.ledger.corrupt-state.append"),
        r#"{"value": 1}"#,
    );
    assert_eq!(reply["error"]["kind"], "start_failed", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("ledger/corrupt-state"), "{message}");
    assert_eq!(
        state
            .get_from_leader("ledger/corrupt-state")
            .unwrap()
            .unwrap()
            .value,
        b"\x00garbage"
    );
}

#[lunatic::test]
fn a_drain_releases_every_directory_entry_and_the_lease() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("drain");
    let cluster = join_node(&url, &ns, "d1");
    let served = cluster.serve::<Ledger>(1).unwrap();
    let client = connect(&url);
    for key in ["drain-a", "drain-b", "drain-c"] {
        let reply = ask(
            &client,
            &format!("{ns}.ledger.{key}.append"),
            r#"{"value": 1}"#,
        );
        assert_eq!(reply["ok"]["len"], 1, "{reply}");
    }
    cluster.drain().unwrap();
    let js = JetStream::new(client.clone());
    let directory = js.kv(&format!("SWARM_DIR_{ns}")).unwrap();
    for key in ["drain-a", "drain-b", "drain-c"] {
        assert_eq!(
            directory.get_from_leader(&format!("ledger/{key}")).unwrap(),
            None
        );
        assert!(Ledger::launcher().lookup(key).is_none(), "{key} stopped");
    }
    let nodes = js.kv(&format!("SWARM_NODES_{ns}")).unwrap();
    assert_eq!(nodes.get_from_leader(cluster.node_id()).unwrap(), None);
    for service in served {
        service.stop();
    }
    // The state stayed: a node that joins next serves it (the drained node's subscriptions go
    // within a second of its workers' end; until then a request may find nobody).
    let next = join_node(&url, &ns, "d2");
    let _served = next.serve::<Ledger>(1).unwrap();
    let entries = format!("{ns}.ledger.drain-a.entries");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client
            .request(&entries, b"{}", Duration::from_secs(1))
            .ok()
            .and_then(|reply| serde_json::from_slice::<serde_json::Value>(&reply.payload).ok());
        if reply == Some(serde_json::json!({"ok": [1]})) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the next node did not serve the drained agent: {reply:?}"
        );
        lunatic::sleep(Duration::from_millis(100));
    }
}

#[lunatic::test]
fn a_handle_on_a_cluster_node_reaches_the_cluster_s_agent() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("handle");
    let cluster = join_node(&url, &ns, "h1");
    let _served = cluster.serve::<Register>(1).unwrap();
    let client = connect(&url);
    // Claimed for this node through the directory, its state in the cluster's bucket.
    let register = Register::get_or_start("r1").unwrap();
    assert_eq!(register.set(5).unwrap(), 0);
    assert_eq!(
        ask(&client, &format!("{ns}.register.r1.set"), r#"{"value": 6}"#),
        serde_json::json!({"ok": 5})
    );
    let js = JetStream::new(client.clone());
    let entry = js
        .kv(&format!("SWARM_DIR_{ns}"))
        .unwrap()
        .get_from_leader("register/r1")
        .unwrap()
        .expect("a directory entry");
    let owner: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(owner["node"], cluster.node_id(), "{owner}");

    // A key another node owns is not started here. That node's lease is live but it does not
    // answer: the error names it, and tells the caller to call again (an owner that answers gives
    // a handle that reaches it there: tests/support/cluster_faults.py, `handles`).
    let directory = js.kv(&format!("SWARM_DIR_{ns}")).unwrap();
    let nodes = js.kv(&format!("SWARM_NODES_{ns}")).unwrap();
    nodes
        .put(
            "elsewhere-1",
            br#"{"name":"elsewhere","incarnation":1,"agents":0,"capacity":10}"#,
        )
        .unwrap();
    directory
        .put(
            "register/r2",
            br#"{"node":"elsewhere-1","incarnation":1,"epoch":1}"#,
        )
        .unwrap();
    let err = Register::get_or_start("r2").unwrap_err().to_string();
    assert!(err.contains("elsewhere-1"), "{err}");
    assert!(err.contains("does not answer"), "{err}");
    assert!(Register::launcher().lookup("r2").is_none());
}

#[lunatic::test]
fn a_user_without_jetstream_permission_cannot_join_and_is_told_why() {
    let Some(url) = server("JS_NOPERM_URL") else {
        return;
    };
    let ns = namespace("noperm");
    let config = ClusterConfig::new(options(&url), &ns, "n1").unwrap();
    let err = join(config).unwrap_err().to_string();
    assert!(err.contains(&format!("SWARM_NODES_{ns}")), "{err}");
    assert!(err.to_lowercase().contains("permission"), "{err}");
}

#[lunatic::test]
fn a_missing_directory_bucket_is_named_in_the_error() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("nobucket");
    let cluster = join_node(&url, &ns, "m1");
    let _served = cluster.serve::<Ledger>(1).unwrap();
    let client = connect(&url);
    JetStream::new(client.clone())
        .delete_kv(&format!("SWARM_DIR_{ns}"))
        .unwrap();
    let reply = ask(
        &client,
        &format!("{ns}.ledger.nobucket-a.append"),
        r#"{"value": 1}"#,
    );
    assert_eq!(reply["error"]["kind"], "unavailable", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("SWARM_DIR_{ns}")), "{message}");
    assert!(message.contains("ledger/nobucket-a"), "{message}");
    assert!(
        Ledger::launcher().lookup("nobucket-a").is_none(),
        "nothing started"
    );
}

/// Serves `Memo` with one worker, passivated after 1 s without a message (long enough that a busy
/// machine's stall between two calls of a test does not passivate it in between).
fn serve_idle_memos(cluster: &Cluster) -> Vec<swarm::nats::AgentService> {
    cluster
        .serve_with::<Memo>(ServeOptions {
            workers: 1,
            idle: Some(Duration::from_secs(1)),
            ..ServeOptions::default()
        })
        .unwrap()
}

#[lunatic::test]
fn an_idle_agent_passivates_releases_its_entry_and_comes_back_on_its_next_call() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("idle");
    let cluster = join_node(&url, &ns, "p1");
    let _served = serve_idle_memos(&cluster);
    let client = connect(&url);
    let add = format!("{ns}.memo.m1.add");
    assert_eq!(
        ask(&client, &add, r#"{"line": "a"}"#),
        serde_json::json!({"ok": 1})
    );
    let directory = JetStream::new(client.clone())
        .kv(&format!("SWARM_DIR_{ns}"))
        .unwrap();
    assert!(directory.get_from_leader("memo/m1").unwrap().is_some());

    // Idle for 1 s: it stops (saving what #[on_stop] changed), and the lease's next renewal
    // (every TTL/3 = 1 s) releases its directory entry.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while Memo::launcher().lookup("m1").is_some()
        || directory.get_from_leader("memo/m1").unwrap().is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle agent did not passivate and release its entry within 15 s"
        );
        lunatic::sleep(Duration::from_millis(50));
    }

    // The next call activates it again, with its state: the line, and the stop it saved.
    assert_eq!(
        ask(&client, &add, r#"{"line": "b"}"#),
        serde_json::json!({"ok": 2})
    );
    assert_eq!(
        ask(&client, &format!("{ns}.memo.m1.stops"), "{}"),
        serde_json::json!({"ok": 1})
    );
    assert_eq!(cluster.stats().unwrap()["activations"], 2);
}

#[lunatic::test]
fn a_handle_names_a_key_and_follows_its_agent_when_it_ends() {
    let Some(url) = server("JS_URL") else { return };
    let ns = namespace("follow");
    let cluster = join_node(&url, &ns, "f1");
    let _served = serve_idle_memos(&cluster);
    let memo = Memo::get_or_start("m1").unwrap();
    assert_eq!(memo.add("a".into()).unwrap(), 1);
    let first = memo.process_id().expect("activated on this node");

    // Killed: the same handle's next call finds it gone, looks it up in the cluster (nobody holds
    // it) and activates it again, with its state.
    memo.kill();
    assert_eq!(memo.add("b".into()).unwrap(), 2);
    let second = memo.process_id().expect("activated on this node again");
    assert_ne!(first, second);

    // Passivated after 1 s without a message (agents a handle activates are passivated as
    // the kind is served): the handle's next call activates it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while Memo::launcher().lookup("m1").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle agent did not passivate within 15 s"
        );
        lunatic::sleep(Duration::from_millis(50));
    }
    assert!(!memo.is_alive());
    assert_eq!(memo.add("c".into()).unwrap(), 3);
    assert_eq!(
        memo.stops().unwrap(),
        1,
        "the passivation ran #[on_stop], and saved it"
    );
    assert_eq!(cluster.stats().unwrap()["activations"], 3);

    // Stopped through the handle: not running until the next call.
    memo.shutdown().unwrap();
    assert!(!memo.is_alive());
    assert_eq!(memo.add("d".into()).unwrap(), 4);
}

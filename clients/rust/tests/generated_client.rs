//! The client `#[agent]` generates natively, against a real nats-server and a real Lunatic node
//! serving the same agent definitions (`examples/agents_node.rs`).
//!
//! Needs `SWARM_NATS_URL` (scripts/test's harness sets it) and the node's wasm in
//! `SWARM_AGENTS_NODE_WASM` (scripts/test builds it); without them the tests say so and pass,
//! unless `SWARM_NATS_REQUIRED` is set, as in scripts/test, where they fail instead.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use swarm::client::Client;
use swarm::prelude::*;
use swarm_demo_agents::{ChatError, ChatRoom, Post};

/// A Lunatic node serving the demo's agents in its own namespace; killed when dropped.
struct Node {
    child: Child,
    namespace: String,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _already_gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// The harness's NATS URL, or `None` (with a note) when the tests cannot run here.
fn nats_url() -> Option<String> {
    match std::env::var("SWARM_NATS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("SWARM_NATS_REQUIRED").is_some() => {
            panic!("SWARM_NATS_REQUIRED is set but SWARM_NATS_URL is not")
        }
        Err(_) => {
            eprintln!("skipped: no SWARM_NATS_URL (scripts/test runs these against a real server)");
            None
        }
    }
}

fn unique_namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("native-{test}-{}-{nanos:x}", std::process::id())
}

/// Starts a node and waits (bounded) for its ready line.
fn start_node(url: &str, test: &str) -> Node {
    start_node_in(url, &unique_namespace(test), None)
}

/// Starts a node serving `namespace`, with its agents' records in files under `store` (a memory
/// store without), and waits (bounded) for its ready line.
fn start_node_in(url: &str, namespace: &str, store: Option<&std::path::Path>) -> Node {
    let wasm = std::env::var("SWARM_AGENTS_NODE_WASM").unwrap_or_else(|_| {
        panic!(
            "SWARM_AGENTS_NODE_WASM names the node to call (build it with `cargo build -p \
             swarm-examples --example agents_node --target wasm32-wasip1`)"
        )
    });
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let namespace = namespace.to_owned();
    let mut command = Command::new(repo.join("scripts/lunatic-runner"));
    if let Some(store) = store {
        command.env("SWARM_STORE_DIR", store);
    }
    let mut child = command
        .arg(&wasm)
        .env("SWARM_NATS_URL", url)
        .env("SWARM_NAMESPACE", &namespace)
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("scripts/lunatic-runner starts (scripts/setup installs lunatic)");
    let stdout = child.stdout.take().expect("piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("swarm-agents-node ready") {
                let _receiver_may_be_gone = ready_tx.send(());
            }
        }
    });
    let node = Node {
        child,
        namespace,
        url: url.to_owned(),
    };
    ready_rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the node prints its ready line within 90 s");
    node
}

async fn client_of(node: &Node) -> Client {
    Client::connect(&node.url, &node.namespace)
        .await
        .expect("the harness's server takes a connection")
}

/// Calls (bounded) until the fire-and-forget `join` of `who` has reached the room: the node's
/// workers may serve a later request first.
async fn wait_for_member(room: &swarm_demo_agents::ChatRoomClient, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !room.members().await.unwrap().iter().any(|m| m == who) {
        assert!(Instant::now() < deadline, "{who} never joined");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn typed_calls_return_the_handlers_own_answers_and_errors() {
    let Some(url) = nats_url() else { return };
    let node = start_node(&url, "answers");
    let client = client_of(&node).await;
    let lobby = ChatRoom::client(&client).key("lobby");

    lobby.join("ada".to_owned()).await.unwrap();
    wait_for_member(&lobby, "ada").await;
    assert_eq!(lobby.post("ada".into(), "hello".into()).await, Ok(Ok(1)));
    assert_eq!(lobby.post("ada".into(), "again".into()).await, Ok(Ok(2)));
    // The handler's own error is data, inside Ok.
    assert_eq!(
        lobby.post("bob".into(), "let me in".into()).await,
        Ok(Err(ChatError::NotAMember("bob".into())))
    );
    assert_eq!(
        lobby.history().await.unwrap(),
        vec![
            Post {
                author: "ada".into(),
                text: "hello".into()
            },
            Post {
                author: "ada".into(),
                text: "again".into()
            },
        ]
    );

    // A crash in the handler is a typed failure of the call; the saved history stays.
    let crashed = lobby
        .post("ada".into(), "segfault".into())
        .await
        .unwrap_err();
    assert_eq!(crashed.target.to_string(), "chat-room/lobby.post");
    assert!(
        matches!(&crashed.reason, CallFailure::Panicked(why) if why.contains("word filter")),
        "{crashed:?}"
    );
    assert_eq!(crashed.reason.applied(), Some(false));
    assert_eq!(lobby.history().await.unwrap().len(), 2);

    // Another key is another agent.
    let other = ChatRoom::client(&client).key("other");
    assert_eq!(other.history().await.unwrap(), vec![]);

    // 256 calls in flight on one connection all get their own answers.
    let calls: Vec<_> = (0..256)
        .map(|i| {
            let room = ChatRoom::client(&client).key(format!("room{}", i % 16));
            tokio::spawn(async move { room.members().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(vec![]));
    }
}

/// The same kind as the node runs, as a newer version of the agent would declare it: a handler
/// the node does not have, one with another argument list, one with another answer type.
mod newer {
    use super::*;

    #[agent(kind = "chat-room")]
    pub struct ChatRoom {
        #[key]
        room: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Summary {
        pub posts: u64,
    }

    #[agent]
    impl ChatRoom {
        #[handler]
        pub fn rename(&mut self, to: String) -> bool {
            self.room = to;
            true
        }

        #[handler]
        pub fn post(&mut self, author: String, text: String, pinned: bool) -> usize {
            let _ = (author, text, pinned);
            0
        }

        #[handler]
        pub fn history(&self) -> Summary {
            Summary { posts: 0 }
        }
    }
}

#[tokio::test]
async fn the_front_doors_refusals_are_typed_failures() {
    let Some(url) = nats_url() else { return };
    let node = start_node(&url, "refusals");
    let client = client_of(&node).await;
    let room = newer::ChatRoom::client(&client).key("lobby");

    let unknown = room.rename("hall".into()).await.unwrap_err();
    assert!(
        matches!(&unknown.reason, CallFailure::UnknownHandler(why) if why.contains("rename")),
        "{unknown:?}"
    );
    let bad = room
        .post("ada".into(), "hi".into(), true)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad.reason, CallFailure::BadArguments(why) if why.contains("pinned")),
        "{bad:?}"
    );
    assert_eq!(bad.reason.applied(), Some(false));
    // The node answered, in another shape than this version's reply type.
    let mismatch = room.history().await.unwrap_err();
    assert!(
        matches!(&mismatch.reason, CallFailure::Unencodable(why) if why.contains("another version")),
        "{mismatch:?}"
    );

    // An invalid key never leaves the process.
    let invalid = ChatRoom::client(&client)
        .key("no spaces")
        .history()
        .await
        .unwrap_err();
    assert!(
        matches!(&invalid.reason, CallFailure::InvalidKey(why) if why.contains("' '")),
        "{invalid:?}"
    );
    assert_eq!(invalid.target.to_string(), "chat-room/no spaces.history");
}

#[tokio::test]
async fn no_node_and_a_silent_node_are_told_apart() {
    let Some(url) = nats_url() else { return };
    let namespace = unique_namespace("silent");

    // Nobody serves the namespace: NATS says so at once.
    let client = Client::connect(&url, &namespace).await.unwrap();
    let began = Instant::now();
    let nobody = ChatRoom::client(&client)
        .key("lobby")
        .history()
        .await
        .unwrap_err();
    assert!(
        matches!(nobody.reason, CallFailure::NoResponders(_)),
        "{nobody:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "no responders is immediate"
    );

    // Something takes the request and never answers: the call's own timeout.
    let nats = async_nats::connect(&url).await.unwrap();
    let mut silent = nats
        .subscribe(format!("{namespace}.chat-room.*.*"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let hold = tokio::spawn(async move { silent.next().await });
    let timeout = Duration::from_millis(300);
    let silent_room = ChatRoom::client(&client).timeout(timeout).key("lobby");
    // nats-server may take a moment to show another connection's new subscription to this
    // one (a request right after it still met "no responders" in about 1 of 4 runs here).
    let deadline = Instant::now() + Duration::from_secs(5);
    let waited = loop {
        let failure = silent_room.history().await.unwrap_err();
        if !matches!(failure.reason, CallFailure::NoResponders(_)) || Instant::now() > deadline {
            break failure;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waited.reason, CallFailure::TimedOut(timeout));
    assert_eq!(waited.reason.applied(), None);
    let held = hold
        .await
        .unwrap()
        .expect("the silent responder got the request");
    assert_eq!(
        held.subject.as_str(),
        format!("{namespace}.chat-room.lobby.history")
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&held.payload).unwrap(),
        serde_json::json!({})
    );

    // A namespace that cannot start a subject is refused before connecting.
    let err = Client::connect(&url, "bad namespace").await.unwrap_err();
    assert!(
        err.to_string().contains("cannot start a NATS subject"),
        "{err}"
    );
}

/// A request sent twice with one `Swarm-Request-Id` (a retry after a lost answer) is applied once
/// and answered the same both times; after the node is killed and started again on the same
/// store, the id is still known (saved with the state) and the call is still not applied again.
#[tokio::test]
async fn a_call_retried_with_its_request_id_is_applied_once() {
    let Some(url) = nats_url() else { return };
    // Relative: the node (under Lunatic) reaches only its working directory, which is this
    // test's (an absolute /tmp path landed in ./tmp there, and was never removed).
    let store = PathBuf::from("tmp").join(unique_namespace("ids-store"));
    let namespace = unique_namespace("ids");
    let node = start_node_in(&url, &namespace, Some(&store));
    let nats = async_nats::connect(&url).await.unwrap();
    let client = Client::new(nats.clone(), &namespace).unwrap();
    let room = ChatRoom::client(&client).key("ids");
    room.join("ada".into()).await.unwrap();
    wait_for_member(&room, "ada").await;

    let post = |id: &'static str, text: &'static str| {
        let nats = nats.clone();
        let subject = format!("{namespace}.chat-room.ids.post");
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Swarm-Request-Id", id);
            let body = serde_json::json!({"author": "ada", "text": text}).to_string();
            // A connection made before the node subscribed may meet "no responders" for a
            // moment (see no_node_and_a_silent_node_are_told_apart).
            let deadline = Instant::now() + Duration::from_secs(5);
            let reply = loop {
                match nats
                    .request_with_headers(subject.clone(), headers.clone(), body.clone().into())
                    .await
                {
                    Err(err)
                        if err.kind() == async_nats::RequestErrorKind::NoResponders
                            && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    reply => break reply.unwrap(),
                }
            };
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let first = post("call-1", "once").await;
    assert_eq!(first, serde_json::json!({"ok": {"Ok": 1}}));
    // The same id again (even with other arguments): the first answer, nothing applied.
    assert_eq!(post("call-1", "once").await, first);
    assert_eq!(post("call-1", "twice?").await, first);
    assert_eq!(
        post("call-2", "another").await,
        serde_json::json!({"ok": {"Ok": 2}})
    );
    assert_eq!(room.history().await.unwrap().len(), 2);
    // An id that is not visible ASCII is refused, not ignored.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Swarm-Request-Id", "has space");
    let refused = nats
        .request_with_headers(
            format!("{namespace}.chat-room.ids.post"),
            headers,
            r#"{"author": "ada", "text": "x"}"#.into(),
        )
        .await
        .unwrap();
    let refused: serde_json::Value = serde_json::from_slice(&refused.payload).unwrap();
    assert_eq!(refused["error"]["kind"], "bad_request_id", "{refused}");

    // The node dies; a new one on the same store knows the ids it saved with the state.
    drop(node);
    let _node = start_node_in(&url, &namespace, Some(&store));
    let client = Client::new(nats.clone(), &namespace).unwrap();
    let again = post("call-1", "once").await;
    assert_eq!(again["error"]["reason"], "already_applied", "{again}");
    assert_eq!(again["error"]["applied"], true, "{again}");
    let history = ChatRoom::client(&client)
        .key("ids")
        .history()
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    std::fs::remove_dir_all(&store).ok();
}

//! Events a handler publishes leave only with its saved change: a core event (`publish`) once the
//! save kept the change, never when the save is refused; a stream event (`publish_to_stream`)
//! stored before the save, so that it may outlive a refused save, and a retry's copy (same id) is
//! dropped by the stream. Against the harness's JetStream server (`SWARM_NATS_JS_URL`), agents on
//! a NATS KV store, whose fencing refuses a stale owner's save. Its own test binary: it sets the
//! node's default store.

use std::time::Duration;

use swarm::nats::{
    publish, publish_to_stream, JetStream, JsError, NatsClient, StorageType, StreamConfig,
    Subscription,
};
use swarm::prelude::*;
use swarm_tests::nats::{connect, server, unique};

/// The stream the accounts' stream events go to.
const STREAM: &str = "EVTTEST";

/// Write-through: each deposit is saved before its caller is answered.
#[agent(kind = "evt-account")]
pub struct Account {
    #[key]
    id: String,
    #[persist]
    balance: u64,
}

#[agent]
impl Account {
    #[handler]
    pub fn deposit(&mut self, n: u64) -> u64 {
        self.balance += n;
        publish(&format!("evttest.plain.{}", self.id), &n).expect("kept");
        publish_to_stream(
            &format!("evttest.stream.{}", self.id),
            &format!("deposit-{}-{n}", self.id),
            &n,
        )
        .expect("kept");
        self.balance
    }
}

/// Write-behind: answered at once, saved 3 s after its first unsaved change.
#[agent(kind = "evt-behind", persistence = "write_behind", save_every = "3s")]
pub struct Behind {
    #[key]
    id: String,
    #[persist]
    total: u64,
}

#[agent]
impl Behind {
    #[handler]
    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        publish(&format!("evttest.behind.{}", self.id), &n).expect("kept");
        self.total
    }

    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Changes nothing: its event waits only for the changes before it that are not saved yet.
    #[handler]
    pub fn ping(&self, n: u64) {
        publish(&format!("evttest.behind.{}", self.id), &n).expect("kept");
    }
}

/// What an event that is due must come within: room for a loaded machine.
const DUE: Duration = Duration::from_secs(3);

/// The next event on `subscription` within `wait`, as the number it carries.
fn next(subscription: &Subscription, wait: Duration) -> Option<u64> {
    let message = subscription.next_timeout(wait).ok()?;
    Some(serde_json::from_slice(&message.payload).expect("a number"))
}

fn stored(js: &JetStream) -> u64 {
    js.stream_info(STREAM).expect("the stream").state.messages
}

fn fresh_stream(client: &NatsClient) -> JetStream {
    let js = JetStream::new(client.clone());
    match js.delete_stream(STREAM) {
        Ok(()) | Err(JsError::NoSuchStream { .. }) => {}
        Err(err) => panic!("delete {STREAM}: {err}"),
    }
    js.create_stream(&StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new(STREAM, ["evttest.stream.>"])
    })
    .expect("the stream is made");
    js
}

#[lunatic::test]
fn events_leave_only_with_their_saved_change() {
    let Some(url) = server("JS_URL") else { return };
    let client = connect(&url);
    swarm::set_node_nats(client.clone()).unwrap();
    let store = StoreConfig::nats_kv(format!("events_{}", unique("kv").replace('.', "_")));
    swarm::set_default_store(store.clone()).unwrap();
    let js = fresh_stream(&client);
    let plain = client.subscribe("evttest.plain.>").unwrap();

    // 1. Saved: both events out, the core one before the caller is answered.
    let account = Account::get_or_start("a").unwrap();
    assert_eq!(account.deposit(1).unwrap(), 1);
    assert_eq!(next(&plain, DUE), Some(1));
    assert_eq!(stored(&js), 1);

    // 2. The save refused: another holder took the record over (a NATS KV CAS on the revision
    //    this agent last wrote fails). The call fails `Moved`; its core event is dropped with the
    //    change; its stream event was stored before the save (as documented), once.
    let other = store.open().unwrap();
    assert!(other.load_as_owner("evt-account/a").unwrap().is_some());
    let refused = account.deposit(2);
    assert!(
        matches!(&refused, Err(err) if matches!(err.reason, CallFailure::Moved(_))),
        "{refused:?}"
    );
    assert_eq!(
        next(&plain, Duration::from_millis(800)),
        None,
        "the event of a change whose save was refused went out"
    );
    assert_eq!(stored(&js), 2);

    // 3. The call retried: the agent starts again from the record (fencing `other` in turn), runs
    //    the deposit again, saves it, and sends its core event now; its stream event, published
    //    again under the same id, is dropped by the stream as a duplicate.
    let account = Account::get_or_start("a").unwrap();
    assert_eq!(account.deposit(2).unwrap(), 3);
    assert_eq!(next(&plain, DUE), Some(2));
    assert_eq!(stored(&js), 2, "the retry's stream event was stored twice");
    assert_eq!(next(&plain, Duration::from_millis(300)), None);

    // 4. Write-behind: the core event waits for the save that keeps its change (3 s later),
    //    so a crash before that save, which loses the change, loses its event too.
    let behind = client.subscribe("evttest.behind.>").unwrap();
    let agent = Behind::get_or_start("b").unwrap();
    // Nothing unsaved: a handler that changes nothing sends at once.
    agent.ping(1).unwrap();
    assert_eq!(next(&behind, DUE), Some(1));
    assert_eq!(agent.add(5).unwrap(), 5);
    // Behind an unsaved change, it waits for that change's save, and goes after its event.
    agent.ping(2).unwrap();
    assert_eq!(
        next(&behind, Duration::from_millis(300)),
        None,
        "sent before its change was saved"
    );
    assert_eq!(next(&behind, Duration::from_secs(3) + DUE), Some(5));
    assert_eq!(next(&behind, DUE), Some(2));
    assert_eq!(agent.add(7).unwrap(), 12);
    Behind::lookup("b").unwrap().kill();
    assert_eq!(
        next(&behind, Duration::from_millis(1_500)),
        None,
        "the event of a change the crash lost went out"
    );
    assert_eq!(Behind::get_or_start("b").unwrap().total().unwrap(), 5);

    js.delete_stream(STREAM).unwrap();
    client.close();
}

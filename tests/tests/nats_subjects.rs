//! Agents on NATS subjects: handlers bound with `#[handler(subject = "..")]` get what is published
//! there, the agent picked by the subject's `{key}` token; agents publish events from their
//! handlers; malformed payloads and bad keys are counted and logged, never delivered. Against the
//! real nats-server the harness starts (see `tests/support/nats.rs`). Its own test binary: it
//! serves metrics (node-wide) and reads the counts from them.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::metrics::{serve, MetricsConfig};
use swarm::nats::{publish, serve_subjects, EventError};
use swarm::prelude::*;
use swarm_tests::nats::{connect, eventually, server};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    pub order: String,
    pub customer: String,
    pub qty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
}

/// Stock of one SKU: takes orders placed on `subjtest.orders.<sku>.placed`, tells the customer.
#[agent(kind = "subj-stock")]
pub struct Stock {
    #[key]
    sku: String,
    #[persist]
    orders: Vec<String>,
    #[persist]
    reserved: u32,
}

#[agent]
impl Stock {
    #[handler(subject = "subjtest.orders.{key}.placed")]
    pub fn placed(&mut self, order: Placed) {
        self.orders.push(order.order.clone());
        self.reserved += order.qty;
        let note = Note {
            text: format!("{} x{} reserved for {}", self.sku, order.qty, order.order),
        };
        publish(&format!("subjtest.notify.{}", order.customer), &note)
            .expect("the event is published");
    }

    /// Publishes, then panics: the event must not go out.
    #[handler(subject = "subjtest.orders.{key}.poison")]
    pub fn poison(&mut self, order: Placed) {
        publish(
            &format!("subjtest.notify.{}", order.customer),
            &Note {
                text: "from a handler that panicked".into(),
            },
        )
        .expect("kept until the handler returns");
        panic!("poisoned order {}", order.order);
    }

    #[handler]
    pub fn orders(&self) -> (Vec<String>, u32) {
        (self.orders.clone(), self.reserved)
    }
}

/// A customer's inbox: takes the notes on `subjtest.notify.<customer>`.
#[agent(kind = "subj-inbox")]
pub struct Inbox {
    #[key]
    customer: String,
    #[persist]
    notes: Vec<String>,
}

#[agent]
impl Inbox {
    #[handler(subject = "subjtest.notify.{key}")]
    // A raw identifier as the argument: the payload is decoded as the field `type`.
    pub fn notified(&mut self, r#type: Note) {
        self.notes.push(r#type.text);
    }

    #[handler]
    pub fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// `GET path` on `addr`: the body.
fn get(addr: &str, path: &str) -> String {
    let mut stream = lunatic::net::TcpStream::connect(addr).expect("the listener accepts");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: node\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn subject_count(addr: &str, kind: &str, handler: &str, outcome: &str) -> Option<f64> {
    sample(
        &get(addr, "/metrics"),
        &format!(
            "swarm_subject_messages_total{{kind=\"{kind}\",handler=\"{handler}\",outcome=\"{outcome}\"}}"
        ),
    )
}

#[lunatic::test]
fn events_reach_keyed_agents_and_malformed_ones_are_counted_never_delivered() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("nats-subjects")).unwrap();
    let client = connect(&url);
    // Without a connection for events, publishing says so.
    assert_eq!(
        publish("subjtest.nowhere", &1),
        Err(EventError::NoConnection)
    );
    swarm::set_node_nats(client.clone()).unwrap();
    let addr = serve(MetricsConfig::listen("127.0.0.1:0")).expect("metrics are served");
    let stock = serve_subjects::<Stock>(&client).unwrap();
    assert_eq!(
        stock.subjects(),
        ["subjtest.orders.*.placed", "subjtest.orders.*.poison"]
    );
    let inbox = serve_subjects::<Inbox>(&client).unwrap();
    assert_eq!(inbox.subjects(), ["subjtest.notify.*"]);

    // Refused before anything is sent: a wildcard, an event that is not JSON.
    assert!(matches!(
        publish("subjtest.orders.*.placed", &1),
        Err(EventError::Subject { .. })
    ));
    let not_json: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    assert!(matches!(
        publish("subjtest.x", &not_json),
        Err(EventError::Unencodable { .. })
    ));

    let order = |id: &str, customer: &str, qty: u32| Placed {
        order: id.into(),
        customer: customer.into(),
        qty,
    };
    // Outside a handler, `publish` sends at once.
    publish("subjtest.orders.sku-1.placed", &order("o1", "ada", 2)).unwrap();
    // Malformed payloads and bad keys, in between good messages.
    for bad in [
        &b"not json"[..],
        br#"{"order": "o2", "customer": "ada"}"#, // qty missing
        br#"{"order": 5, "customer": "ada", "qty": 1}"#,
        br#"{"order": "o2", "customer": "ada", "qty": 1} {"#, // trailing bytes
        br#"{"order": "o2", "customer": "ada", "qty": -1}"#,
        b"",
    ] {
        client.publish("subjtest.orders.sku-1.placed", bad).unwrap();
    }
    let good = serde_json::to_vec(&order("o9", "bob", 1)).unwrap();
    client
        .publish("subjtest.orders.bad~key.placed", &good)
        .unwrap();
    client
        .publish(
            &format!("subjtest.orders.{}.placed", "k".repeat(129)),
            &good,
        )
        .unwrap();
    publish("subjtest.orders.sku-1.placed", &order("o3", "bob", 5)).unwrap();
    publish("subjtest.orders.sku-2.placed", &order("o4", "ada", 1)).unwrap();

    let sku1 = eventually(Duration::from_secs(5), || {
        let agent = Stock::lookup("sku-1")?;
        let (orders, reserved) = agent.orders().ok()?;
        (orders.len() == 2).then_some((orders, reserved))
    })
    .expect("sku-1 takes its two good orders");
    assert_eq!(sku1, (vec!["o1".to_owned(), "o3".to_owned()], 7));
    // The agents' events reached the inboxes through the subject. (Sorted: the two notes come
    // from two agents, sku-1 and sku-2, which run side by side, so either may publish first.)
    let mut ada = eventually(Duration::from_secs(5), || {
        let notes = Inbox::lookup("ada")?.notes().ok()?;
        (notes.len() == 2).then_some(notes)
    })
    .expect("ada gets two notes");
    ada.sort();
    assert_eq!(
        ada,
        [
            "sku-1 x2 reserved for o1".to_owned(),
            "sku-2 x1 reserved for o4".to_owned()
        ]
    );
    let bob = eventually(Duration::from_secs(5), || {
        let notes = Inbox::lookup("bob")?.notes().ok()?;
        (!notes.is_empty()).then_some(notes)
    })
    .expect("bob gets a note");
    assert_eq!(bob, ["sku-1 x5 reserved for o3".to_owned()]);
    // A handler that publishes and then panics publishes nothing. (Sent once sku-2 has applied
    // o4: messages of two subjects have no order between them, and one handed to an agent that
    // crashes before running it goes with it.)
    publish("subjtest.orders.sku-2.poison", &order("o5", "cyd", 1)).unwrap();
    let crashed = eventually(Duration::from_secs(5), || {
        let text = get(&addr, "/metrics");
        sample(
            &text,
            r#"swarm_calls_total{kind="subj-stock",handler="poison",outcome="panicked"}"#,
        )
    });
    assert_eq!(crashed, Some(1.0), "the poisoned handler ran and panicked");
    lunatic::sleep(Duration::from_millis(300));
    assert!(
        Inbox::lookup("cyd").is_none(),
        "a panicking handler's event went out"
    );
    assert_eq!(
        Stock::get_or_start("sku-2").unwrap().orders().unwrap(),
        (vec!["o4".to_owned()], 1)
    );

    // Counted: subscribers send their counts at least once a second.
    let counted = eventually(Duration::from_secs(5), || {
        let malformed = subject_count(&addr, "subj-stock", "placed", "malformed")?;
        let invalid = subject_count(&addr, "subj-stock", "placed", "invalid_key")?;
        let delivered = subject_count(&addr, "subj-stock", "placed", "delivered")?;
        // The inbox's subscriber sends its counts on its own clock.
        let notified = subject_count(&addr, "subj-inbox", "notified", "delivered")?;
        (malformed == 6.0 && invalid == 2.0 && delivered == 3.0 && notified == 3.0)
            .then_some((malformed, invalid, delivered))
    });
    let text = get(&addr, "/metrics");
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("swarm_subject_messages_total"))
        .collect();
    println!("subject counts: {lines:#?}");
    assert!(counted.is_some(), "{lines:#?}");
    assert_eq!(
        subject_count(&addr, "subj-inbox", "notified", "delivered"),
        Some(3.0),
        "{lines:#?}"
    );
    assert_eq!(
        eventually(Duration::from_secs(3), || subject_count(
            &addr,
            "subj-stock",
            "poison",
            "delivered"
        )),
        Some(1.0)
    );

    // After all that the subscriber still delivers.
    publish("subjtest.orders.sku-1.placed", &order("o6", "ada", 1)).unwrap();
    let after = eventually(Duration::from_secs(5), || {
        let (orders, _) = Stock::lookup("sku-1")?.orders().ok()?;
        (orders.len() == 3).then_some(orders)
    });
    assert_eq!(after.map(|orders| orders[2].clone()), Some("o6".to_owned()));

    // Stopped: what is published now reaches nobody.
    stock.stop();
    inbox.stop();
    publish("subjtest.orders.sku-1.placed", &order("o7", "ada", 1)).unwrap();
    lunatic::sleep(Duration::from_millis(300));
    assert_eq!(Stock::lookup("sku-1").unwrap().orders().unwrap().0.len(), 3);
    client.close();
}

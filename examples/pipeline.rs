//! A pipeline of agents, orders -> inventory -> notifications, connected by subjects on one
//! JetStream stream, that survives a node killed mid-stream with nothing lost and nothing applied
//! twice (`tests/support/pipeline_faults.py` SIGKILLs it and checks).
//!
//! - An order placed is a message on `pipe.orders.<order>.placed` in the stream `PIPELINE`
//!   (published by anyone, with `Nats-Msg-Id` = the order's id). The `order` agent of that id takes
//!   it and publishes a reservation on `pipe.inventory.<sku>.reserve`.
//! - The `inventory` agent of the SKU takes the reservation, counts the units, and publishes a
//!   notice on `pipe.notify.<customer>`.
//! - The `notifications` agent of the customer takes the notice and keeps it.
//!
//! Every hop is a subject of the one stream, consumed by a durable consumer per handler
//! (`#[handler(stream = .., subject = ..)]`): a message is acked only after its agent saved the
//! change, with the message's stream sequence (a redelivery after a crash is skipped), and the
//! events a handler publishes reach the stream before that save, each with a message id that a
//! second run of the same handler gives again (the stream drops the repeat). Each agent keeps a
//! list, not a set, so anything applied twice would show.
//!
//! The node also serves the three kinds on `<ns>.<kind>.<key>.<handler>` to read their state.
//! Environment: `SWARM_NATS_URL` (default `nats://127.0.0.1:4222`), `SWARM_NAMESPACE` (default
//! `pipe`), `SWARM_DATA_DIR` (the file store, default `pipeline-data`), `SWARM_ACK_WAIT_MS`
//! (default 2000). It prints `pipeline-node ready` once every consumer runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::nats::{
    publish_to_stream, serve_agents, serve_streams, ConnectOptions, JetStream, NatsClient,
    StreamConfig, StreamOptions,
};
use swarm::prelude::*;

/// The one stream: every subject of the pipeline.
const STREAM: &str = "PIPELINE";

/// An order, as placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order: String,
    pub sku: String,
    pub customer: String,
    pub qty: u32,
}

/// Units of a SKU to reserve for an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reserve {
    pub order: String,
    pub customer: String,
    pub qty: u32,
}

/// What a customer is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub order: String,
    pub sku: String,
    pub qty: u32,
}

/// One order.
#[agent(kind = "order")]
pub struct Order {
    #[key]
    id: String,
    #[persist]
    status: String,
    /// How many times `placed` ran: 1, unless something was applied twice.
    #[persist]
    runs: u32,
}

#[agent]
impl Order {
    #[handler(stream = "PIPELINE", subject = "pipe.orders.{key}.placed")]
    pub fn placed(&mut self, order: OrderPlaced) {
        self.status = "placed".into();
        self.runs += 1;
        let reserve = Reserve {
            order: order.order.clone(),
            customer: order.customer,
            qty: order.qty,
        };
        // Refused only for a subject or id that cannot be (a bug): the message comes again.
        publish_to_stream(
            &format!("pipe.inventory.{}.reserve", order.sku),
            &format!("reserve-{}", order.order),
            &reserve,
        )
        .expect("the reservation is published");
    }

    #[handler]
    pub fn status(&self) -> (String, u32) {
        (self.status.clone(), self.runs)
    }
}

/// The stock of one SKU: the orders it reserved units for.
#[agent(kind = "inventory")]
pub struct Inventory {
    #[key]
    sku: String,
    #[persist]
    orders: Vec<String>,
    #[persist]
    units: u64,
}

#[agent]
impl Inventory {
    #[handler(stream = "PIPELINE", subject = "pipe.inventory.{key}.reserve")]
    pub fn reserve(&mut self, reserve: Reserve) {
        self.orders.push(reserve.order.clone());
        self.units += u64::from(reserve.qty);
        let notice = Notice {
            order: reserve.order.clone(),
            sku: self.sku.clone(),
            qty: reserve.qty,
        };
        publish_to_stream(
            &format!("pipe.notify.{}", reserve.customer),
            &format!("notify-{}", reserve.order),
            &notice,
        )
        .expect("the notice is published");
    }

    #[handler]
    pub fn reserved(&self) -> (Vec<String>, u64) {
        (self.orders.clone(), self.units)
    }
}

/// A customer's notices.
#[agent(kind = "notifications")]
pub struct Notifications {
    #[key]
    customer: String,
    #[persist]
    orders: Vec<String>,
}

#[agent]
impl Notifications {
    #[handler(stream = "PIPELINE", subject = "pipe.notify.{key}")]
    pub fn notify(&mut self, notice: Notice) {
        self.orders.push(notice.order);
    }

    #[handler]
    pub fn sent(&self) -> Vec<String> {
        self.orders.clone()
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn connect(url: &str) -> NatsClient {
    let options = ConnectOptions::new([url])
        .unwrap_or_else(|err| panic!("SWARM_NATS_URL {url:?}: {err}"))
        .connect_timeout(Duration::from_secs(2));
    NatsClient::connect(options).unwrap_or_else(|err| panic!("connect to {url}: {err}"))
}

fn main() {
    let url = env("SWARM_NATS_URL", "nats://127.0.0.1:4222");
    let namespace = env("SWARM_NAMESPACE", "pipe");
    let ack_wait = env("SWARM_ACK_WAIT_MS", "2000")
        .parse()
        .map(Duration::from_millis)
        .expect("SWARM_ACK_WAIT_MS is a number of milliseconds");
    swarm::set_default_store(StoreConfig::file(env("SWARM_DATA_DIR", "pipeline-data")))
        .expect("the file store opens");
    let client = connect(&url);
    swarm::set_node_nats(client.clone()).expect("the node takes the connection");
    // The stream is made once (the same configuration again is no change).
    JetStream::new(client.clone())
        .create_stream(&StreamConfig::new(STREAM, ["pipe.>"]))
        .expect("the stream PIPELINE");
    let options = StreamOptions {
        ack_wait,
        ..StreamOptions::default()
    };
    let _read = (
        serve_agents::<Order>(&client, &namespace, 1).expect("orders served"),
        serve_agents::<Inventory>(&client, &namespace, 1).expect("inventory served"),
        serve_agents::<Notifications>(&client, &namespace, 1).expect("notifications served"),
    );
    let _consuming = (
        serve_streams::<Order>(&client, options.clone()).expect("orders consumed"),
        serve_streams::<Inventory>(&client, options.clone()).expect("inventory consumed"),
        serve_streams::<Notifications>(&client, options).expect("notifications consumed"),
    );
    println!("pipeline-node ready");
    loop {
        lunatic::sleep(Duration::from_secs(3600));
    }
}

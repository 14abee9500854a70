//! Handlers bound to NATS subjects (and one to a JetStream stream): the key from a token, the
//! payload as the one argument. The kind still builds without swarm's `nats` feature (nothing
//! subscribes then), and its handlers are still called like any other.

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placed {
    pub order: String,
    pub qty: u32,
}

#[agent(kind = "stock")]
pub struct Stock {
    #[key]
    sku: String,
    #[persist]
    reserved: u32,
}

#[agent]
impl Stock {
    #[handler(subject = "shop.orders.{key}.placed")]
    pub fn placed(&mut self, order: Placed) {
        self.reserved += order.qty;
    }

    #[handler(stream = "ORDERS", subject = "shop.orders.{key}.cancelled")]
    pub fn cancelled(&mut self, order: Placed) {
        self.reserved -= order.qty;
    }

    #[handler(subject = "shop.*.{key}.>")]
    pub fn anything(&self, _event: Vec<u8>) {}

    #[handler]
    pub fn reserved(&self) -> u32 {
        self.reserved
    }
}

#[allow(dead_code)]
fn usage() -> Result<(), CallError> {
    let stock = Stock::get_or_start("sku-1").expect("started");
    stock.placed(Placed {
        order: "o1".into(),
        qty: 2,
    })?;
    let _: u32 = stock.reserved()?;
    Ok(())
}

fn main() {}

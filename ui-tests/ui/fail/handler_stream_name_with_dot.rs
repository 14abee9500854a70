use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Placed {
    pub qty: u32,
}

#[agent]
pub struct Stock {
    #[key]
    sku: String,
    reserved: u32,
}

#[agent]
impl Stock {
    #[handler(stream = "shop.orders", subject = "shop.orders.{key}.placed")]
    pub fn placed(&mut self, order: Placed) {
        self.reserved += order.qty;
    }
}

fn main() {}

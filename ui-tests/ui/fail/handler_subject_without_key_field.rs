use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Placed {
    pub qty: u32,
}

#[agent]
#[derive(Default)]
pub struct Stock {
    reserved: u32,
}

#[agent]
impl Stock {
    #[handler(subject = "shop.orders.{key}.placed")]
    pub fn placed(&mut self, order: Placed) {
        self.reserved += order.qty;
    }
}

fn main() {}

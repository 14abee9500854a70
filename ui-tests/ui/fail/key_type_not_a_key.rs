use swarm::prelude::*;

#[agent]
pub struct Sensor {
    #[key]
    id: f64,
    #[persist]
    readings: Vec<f64>,
}

#[agent]
impl Sensor {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

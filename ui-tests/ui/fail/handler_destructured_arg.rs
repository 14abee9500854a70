use swarm::prelude::*;

#[agent]
pub struct Plotter {
    #[key]
    name: String,
    points: Vec<(i32, i32)>,
}

#[agent]
impl Plotter {
    #[handler]
    pub fn plot(&mut self, (x, y): (i32, i32)) {
        self.points.push((x, y));
    }
}

fn main() {}

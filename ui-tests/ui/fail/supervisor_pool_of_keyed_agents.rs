use swarm::prelude::*;

#[agent]
pub struct Room {
    #[key]
    name: String,
}

#[agent]
impl Room {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

#[agent]
pub struct Helper {
    served: u64,
}

#[agent]
impl Helper {
    #[handler]
    pub fn help(&mut self) -> u64 {
        self.served += 1;
        self.served
    }
}

supervisor! {
    pub Service: one_for_one {
        rooms: pool(Room, 3),
    }
}

fn main() {}

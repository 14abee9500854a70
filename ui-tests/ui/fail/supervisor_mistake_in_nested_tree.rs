// One mistake inside a supervision tree (a misspelt strategy in the inner supervisor) is one
// error: the inner supervisor still stands in as its parent's child, and the code that starts
// the tree and asks for its children still resolves.
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

supervisor! {
    pub Rooms: one_for_eventually {
        lobby: Room("lobby"),
    }
}

supervisor! {
    pub Service: one_for_one(max_restarts = 3, within_secs = 10) {
        rooms: Rooms,
    }
}

#[allow(dead_code)]
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let service = Service::start()?;
    let rooms: RoomsRef = service.rooms()?;
    let _: bool = rooms.lobby()?.ping()?;
    Ok(())
}

fn main() {}

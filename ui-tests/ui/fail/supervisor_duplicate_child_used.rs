// Two children with one name is one error, even where the code calls the child's accessor: the
// stand-in supervisor keeps the first child of each name.
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
    pub Rooms: one_for_one {
        lobby: Room("lobby"),
        lobby: Room("annex"),
    }
}

#[allow(dead_code)]
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let rooms = Rooms::start()?;
    let _: bool = rooms.lobby()?.ping()?;
    Ok(())
}

fn main() {}

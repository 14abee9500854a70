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
    /// A nested supervisor.
    pub Rooms: rest_for_one(max_restarts = 2, within_secs = 5) {
        a: Room("a"),
        b: transient Room("b"),
    }
}

supervisor! {
    pub Service: one_for_all(max_restarts = 5, within_secs = 10) {
        lobby: Room("lobby"),
        helpers: pool(Helper, 4),
        one_helper: temporary Helper,
        rooms: Rooms,
    }
}

#[allow(dead_code)]
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let service: ServiceRef = Service::start()?;
    let _: bool = service.lobby()?.ping()?;
    let _: u64 = service.helpers().pick()?.help()?;
    let _: u64 = service.one_helper()?.help()?;
    let rooms: RoomsRef = service.rooms()?;
    let _: bool = rooms.b()?.ping()?;
    let _ = service.supervisor().stats()?;
    service.supervisor().shutdown()?;
    Ok(())
}

fn main() {}

use swarm::prelude::*;

/// Every handle already has `shutdown()`; a handler with that name would silently replace it.
#[agent]
pub struct Door {
    #[key]
    id: String,
    open: bool,
}

#[agent]
impl Door {
    #[handler]
    pub fn shutdown(&mut self) {
        self.open = false;
    }
}

fn main() {}

use swarm::prelude::*;

// Three mistakes in the options, three errors in one compile, each at its own option: a refused
// option does not stop the reading of the next ones.
#[agent(kind = counter, mailbox = "many", passivate_after = "0s")]
pub struct Counter {
    #[key]
    name: String,
}

#[agent]
impl Counter {
    #[handler]
    pub fn ping(&self) -> bool {
        true
    }
}

fn main() {}

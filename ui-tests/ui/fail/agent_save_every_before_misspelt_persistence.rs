use swarm::prelude::*;

// One mistake (a misspelt strategy), one error: `save_every` is not also reported as lacking
// `persistence = "write_behind"`, whichever comes first.
#[agent(save_every = "200ms", persistence = "write_behin")]
pub struct Cursor {
    #[key]
    name: String,
    #[persist]
    position: u64,
}

#[agent]
impl Cursor {
    #[handler]
    pub fn advance(&mut self) -> u64 {
        self.position += 1;
        self.position
    }
}

fn main() {}

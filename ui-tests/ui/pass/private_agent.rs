//! An agent that is not `pub` (private to its module, or `pub(crate)`): the generated message
//! enum, handle and functions take the struct's visibility, so nothing private leaks into a
//! public interface.

use swarm::prelude::*;

/// A private argument type: a handler of a private agent may take one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Note {
    text: String,
}

#[agent]
struct Scratchpad {
    #[key]
    name: String,
    #[persist]
    notes: Vec<String>,
}

#[agent]
impl Scratchpad {
    #[handler]
    fn write(&mut self, note: Note) -> usize {
        self.notes.push(note.text);
        self.notes.len()
    }

    #[handler]
    pub fn clear(&mut self) {
        self.notes.clear();
    }
}

mod inner {
    use swarm::prelude::*;

    #[agent]
    pub(crate) struct Tally {
        seen: u64,
    }

    #[agent]
    impl Tally {
        #[handler]
        pub(crate) fn bump(&mut self) -> u64 {
            self.seen += 1;
            self.seen
        }
    }
}

#[allow(dead_code)]
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let pad: ScratchpadRef = Scratchpad::get_or_start("today")?;
    let count: usize = pad.write(Note { text: "hi".into() })?;
    let _ = count;
    pad.clear()?;
    let tally: inner::TallyRef = inner::Tally::start()?;
    let _: u64 = tally.bump()?;
    Ok(())
}

fn main() {}

//! No `#[key]` (so no `#[persist]` either): `JobWorker::start()` starts a new, unregistered agent
//! every time; the kind defaults to the struct name in kebab-case.

use swarm::prelude::*;

#[agent]
pub struct JobWorker {
    done: Vec<String>,
    failures: u32,
}

#[agent]
impl JobWorker {
    #[handler]
    pub fn run(&mut self, job: String) {
        self.done.push(job);
    }

    #[handler]
    pub fn done(&self) -> Vec<String> {
        self.done.clone()
    }

    #[handler]
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Never run (pass cases are only built, see tests/ui.rs): without a key there is `start()`
/// (every call starts another agent) and no `get_or_start`/`lookup`.
fn usage() -> Result<(), Box<dyn std::error::Error>> {
    let worker: JobWorkerRef = JobWorker::start()?;
    let _: JobWorkerRef = JobWorker::launcher().start()?;
    worker.run("build".into())?;
    let _: Vec<String> = worker.done()?;
    let _: u32 = worker.failures()?;
    Ok(())
}

fn main() {
    let _ = usage;
}

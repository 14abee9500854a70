//! The node's directory of supervisors: what [`trees`] answers, and what the services API's
//! `observe` request (`_SWARM.<namespace>.observe.<id>`, see `nats::discovery`) shows an operator.
//!
//! A process registered as [`NAME`], started by the first supervisor of the node. Each supervisor
//! sends it a [`SupervisorInfo`] of itself (a cast, no wait) when it is up, after it handled a
//! child's exit (restarted it or not; a burst of exits once per 100 ms, see `process.rs`), and
//! when it gives up or shuts down: supervisor events are rare, so a whole description each time
//! costs less than keeping two copies in step. The
//! directory monitors every supervisor that reported, so one killed from outside is shown as
//! `gone` rather than as up for ever. It never asks a supervisor anything: a supervisor busy
//! restarting a child that loads its state slowly does not hold up an observer.
//!
//! Nested supervisors name their parent; [`trees`] puts each under the child of its parent that
//! runs it. A top-level supervisor that ended stays in the answer with its last counts and how
//! it ended (the last [`ENDED_KEPT`]), so that a give-up is visible after the fact; a nested one
//! that ended is dropped (its parent's counts show the restart).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChildStats, Restart, Strategy, SupervisorError};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{call, cast, decode_envelope, ENVELOPE_HANDLER_ID};
use crate::runtime::process::{spawn_named, Named};

/// The directory's name in Lunatic's registry.
pub(crate) const NAME: &str = "swarm/supervisors";

/// How many ended top-level supervisors the directory keeps.
pub const ENDED_KEPT: usize = 16;

/// How long [`trees`] waits for the directory.
const ASK_WAIT: Duration = Duration::from_secs(2);

/// How deep [`trees`] nests supervisors (a guard: a parent is always started before its child,
/// so a cycle cannot happen, but a bound costs nothing).
const MAX_DEPTH: usize = 32;

/// A supervisor as it last described itself, with its nested supervisors in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    /// Its name (the `supervisor!` type's name).
    pub name: String,
    /// Its process.
    pub process: u64,
    /// Up, or how it ended.
    pub state: SupervisorState,
    /// Which children restart together.
    pub strategy: Strategy,
    /// Its restart intensity: at most this many restarts ...
    pub max_restarts: u32,
    /// ... within this many seconds.
    pub within_secs: f64,
    /// Its children, in start order.
    pub children: Vec<ChildInfo>,
}

/// Whether a supervisor is up, or how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorState {
    /// It runs and watches its children.
    Up,
    /// It went past its restart intensity, or a child could not restart: it stopped its
    /// children and exited abnormally.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// It was shut down in order (or its parent exited).
    Stopped,
    /// Its process ended without saying why (killed from outside).
    Gone,
}

/// One child of a supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// Its name in the supervisor.
    pub name: String,
    /// When it is restarted.
    pub restart: Restart,
    /// What it is.
    pub kind: ChildKindInfo,
    /// Its processes (one; `size` for a pool, named `name#i`), with their counts. A member
    /// without a process is being restarted, or was not restarted (its restart policy, or the
    /// supervisor ended).
    pub members: Vec<ChildStats>,
    /// A nested supervisor's own description, while it runs.
    pub supervisor: Option<Box<SupervisorInfo>>,
}

/// What a child is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKindInfo {
    /// An agent of kind `kind` (its key is empty for a kind without a `#[key]`).
    ///
    /// Not named `Agent`: a second public item of that name makes rustc spell the `Agent` trait
    /// out as `swarm::runtime::agent::Agent` in users' compile errors.
    #[serde(rename = "agent")]
    Single {
        /// The agent kind.
        kind: String,
        /// Its key.
        key: String,
    },
    /// `size` agents of kind `kind` without a key.
    Pool {
        /// The agent kind.
        kind: String,
        /// How many.
        size: usize,
    },
    /// A nested supervisor.
    Supervisor,
    /// A child that cannot start (why).
    Invalid {
        /// Why it cannot start.
        reason: String,
    },
}

/// What a supervisor sends the directory about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The supervisor that started it, for a nested one.
    pub parent: Option<u64>,
    /// Its description, children without their nested supervisors.
    pub info: SupervisorInfo,
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Report(Report),
    /// Answered with every supervisor's [`Report`], top-level ones that ended included.
    All,
}

/// Tells the node's directory about a supervisor (starting the directory if need be). A
/// directory that cannot be started or reached loses the report: observers then see less, and
/// the supervisor goes on supervising.
pub(crate) fn report(report: Report) {
    match directory() {
        Ok(directory) => cast(directory, Op::Report(report)),
        Err(reason) => crate::log::warn(
            "supervisor.directory_unavailable",
            &[("supervisor", &report.info.name)],
            &format!("the node's supervisor directory did not start: {reason}"),
        ),
    }
}

/// Every supervisor of this node, top-level ones with their nested supervisors inside (see
/// [`ChildInfo::supervisor`]), in the order they started; top-level supervisors that ended are
/// kept with their last counts and how they ended (the last [`ENDED_KEPT`]). Empty when no
/// supervisor ever started on the node.
pub fn trees() -> Result<Vec<SupervisorInfo>, SupervisorError> {
    let Some(directory) = host::registry_get(NAME).filter(|pid| host::exists(pid.id)) else {
        return Ok(Vec::new());
    };
    let reports: Vec<Report> = call::<Op, Vec<Report>>(directory.id, Op::All, Some(ASK_WAIT))
        .map_err(|err| SupervisorError::Unavailable {
            supervisor: NAME.to_owned(),
            reason: format!("the node's supervisor directory did not answer: {err:?}"),
        })?;
    Ok(assemble(reports))
}

/// Puts nested supervisors under their parents' children.
fn assemble(reports: Vec<Report>) -> Vec<SupervisorInfo> {
    let mut by_parent: BTreeMap<u64, Vec<SupervisorInfo>> = BTreeMap::new();
    let mut roots = Vec::new();
    for report in reports {
        match report.parent {
            Some(parent) => by_parent.entry(parent).or_default().push(report.info),
            None => roots.push(report.info),
        }
    }
    for root in &mut roots {
        nest(root, &mut by_parent, 0);
    }
    roots
}

fn nest(
    info: &mut SupervisorInfo,
    by_parent: &mut BTreeMap<u64, Vec<SupervisorInfo>>,
    depth: usize,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Some(mut nested) = by_parent.remove(&info.process) else {
        return;
    };
    for child in &mut info.children {
        if child.kind != ChildKindInfo::Supervisor {
            continue;
        }
        let running = child.members.first().and_then(|member| member.process);
        if let Some(at) = nested.iter().position(|sup| Some(sup.process) == running) {
            let mut sup = nested.swap_remove(at);
            nest(&mut sup, by_parent, depth + 1);
            child.supervisor = Some(Box::new(sup));
        }
    }
}

/// The directory process, started if need be.
fn directory() -> Result<u64, String> {
    for _ in 0..3 {
        match spawn_named(NAME, (), run) {
            Ok(Named::Started(id)) => return Ok(id),
            Ok(Named::Found(id)) if host::exists(id) => return Ok(id),
            // Lunatic keeps a name after its process ended (the directory runs no user code and
            // does not end, but a kill from outside can end it): free it, try again.
            Ok(Named::Found(dead)) => {
                if host::registry_get(NAME).map(|pid| pid.id) == Some(dead) {
                    host::registry_remove(NAME);
                }
            }
            Err(err) => return Err(err.to_string()),
        }
    }
    Err("its process kept ending".to_owned())
}

struct Directory {
    /// Running supervisors (and nested ones until their end is known), in the order they
    /// first reported.
    live: Vec<Report>,
    /// Top-level supervisors that ended, oldest first.
    ended: VecDeque<Report>,
}

fn run((): ()) {
    let mut directory = Directory {
        live: Vec::new(),
        ended: VecDeque::new(),
    };
    loop {
        match host::receive(&[], None) {
            Received::Data => {
                let tag = host::tag();
                if tag >> 56 != ENVELOPE_HANDLER_ID {
                    continue;
                }
                let Ok(envelope) = decode_envelope::<Op>(tag) else {
                    continue;
                };
                match envelope.message {
                    Op::Report(report) => directory.report(report),
                    Op::All => {
                        if let Some(reply_to) = envelope.reply_to {
                            let all: Vec<Report> = directory
                                .ended
                                .iter()
                                .chain(directory.live.iter())
                                .cloned()
                                .collect();
                            reply_to.send(all);
                        }
                    }
                }
            }
            Received::ProcessDied => directory.ended(host::sender(), SupervisorState::Gone),
            Received::LinkDied | Received::TimedOut => {}
        }
    }
}

impl Directory {
    fn report(&mut self, report: Report) {
        let process = report.info.process;
        let state = report.info.state.clone();
        match self
            .live
            .iter_mut()
            .find(|known| known.info.process == process)
        {
            Some(known) => *known = report,
            None => {
                if state != SupervisorState::Up {
                    // Its first report is its last (it gave up at once): nothing to watch.
                    self.live.push(report);
                    self.ended(process, state);
                    return;
                }
                host::monitor(process);
                self.live.push(report);
                // It may have ended before the monitor was set: then no signal will come.
                if !host::exists(process) {
                    self.ended(process, SupervisorState::Gone);
                }
                return;
            }
        }
        if state != SupervisorState::Up {
            self.ended(process, state);
        }
    }

    /// Supervisor `process` ended: keep it if it was top-level. `state` is how, unless it said
    /// so itself before (a give-up or a shutdown it reported).
    fn ended(&mut self, process: u64, state: SupervisorState) {
        let Some(at) = self
            .live
            .iter()
            .position(|known| known.info.process == process)
        else {
            return;
        };
        host::stop_monitoring(process);
        let mut report = self.live.remove(at);
        if report.info.state == SupervisorState::Up {
            report.info.state = state;
        }
        // Its children ended with it.
        for child in &mut report.info.children {
            for member in &mut child.members {
                member.process = None;
            }
        }
        if report.parent.is_some() {
            return;
        }
        if self.ended.len() == ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(report);
    }
}

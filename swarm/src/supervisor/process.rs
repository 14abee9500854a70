//! The supervisor process: starts children, watches them, restarts them by policy and strategy,
//! gives up past its restart intensity, and stops them in reverse order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::child::{start_one, stop_one, ChildKind, ChildSpec, Running};
use super::directory::{self, ChildInfo, ChildKindInfo, SupervisorInfo, SupervisorState};
use super::handle::SupervisorRef;
use super::{ChildStats, Restart, Strategy, SupervisorError, SupervisorSpec};
use crate::log::Level;
use crate::metrics::collector::supervisor_event;
use crate::metrics::model::SupervisorEvent;
use crate::runtime::host::{self, Pid, Received};
use crate::runtime::mailbox::{
    decode_envelope, reply_slot, this_node, wait_for, ReplyTo, WaitError,
};
use crate::runtime::registry::Registered;

/// How long a supervisor may take to start its children before its starter gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How often at most a supervisor describes itself to the node's directory while its children
/// keep exiting. The first exit after a quiet spell is reported at once; the rest of a burst (a
/// pool of thousands crashing together, each description naming every member) once per interval,
/// with the counts as they then stand.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Set in the tags of a supervisor's links to its children. Tags are counters of the process that
/// makes them, so the tag of the link its starter made (`parent_link`) can equal one the
/// supervisor made; this bit keeps the two apart (envelope tags use the bits above it, see
/// `runtime::mailbox`).
const CHILD_LINK: i64 = 1 << 54;

/// Requests a supervisor answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// The running process of a child (pool members: `name#i`).
    WhichChild(String),
    /// The running members of a pool.
    PoolMembers(String),
    /// Every child's stats, in start order.
    Stats,
    /// Stop every child in reverse order, then exit normally.
    Shutdown,
}

/// Answers to [`Op`]s.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// `(node, process, key)` of the running child.
    Child(Option<(Pid, String)>),
    Members(Vec<Pid>),
    Stats(Vec<ChildStats>),
    Stopped,
}

/// Spawns the supervisor process and waits until it has started every child. `parent`: the
/// supervisor starting it as its child, for the node's directory of supervisors.
pub(crate) fn start(
    spec: SupervisorSpec,
    link: bool,
    parent: Option<u64>,
) -> Result<SupervisorRef, SupervisorError> {
    let name = spec.name.clone();
    let started = reply_slot();
    let spawned = if link {
        // The supervisor knows its link to the caller by its tag: that link's end is the
        // caller's exit, and no other.
        let tag = lunatic::Tag::new();
        let capture = (spec, started, parent, Some(tag.id()));
        crate::runtime::process::spawn_linked(capture, run, tag)
    } else {
        crate::runtime::process::spawn((spec, started, parent, None), run)
    };
    let id = spawned.map_err(|err| SupervisorError::Unavailable {
        supervisor: name.clone(),
        reason: err.to_string(),
    })?;
    match wait_for::<Result<(), SupervisorError>>(started, id, Some(START_TIMEOUT)) {
        Ok(Ok(())) => Ok(SupervisorRef::new(name, this_node(), id)),
        Ok(Err(err)) => Err(err),
        Err(WaitError::ServerGone) => Err(SupervisorError::Unavailable {
            supervisor: name,
            reason: "it stopped while starting its children".into(),
        }),
        Err(err) => Err(SupervisorError::Unavailable {
            supervisor: name,
            reason: format!("{err:?}"),
        }),
    }
}

/// One child slot: its spec, and per process (one, or `size` for a pool) what runs there now.
struct Child {
    spec: ChildSpec,
    members: Vec<Member>,
}

struct Member {
    name: String,
    running: Option<Running>,
    /// The tag of the link to the running process: a `LINK_DIED` with it means an abnormal exit.
    link_tag: i64,
    /// Set when the link reported an abnormal exit, read when the monitor reports the exit.
    crashed: bool,
    stats: ChildStats,
}

struct Supervisor {
    spec_name: String,
    /// The supervisor that started this one as its child.
    parent: Option<u64>,
    strategy: Strategy,
    max_restarts: u32,
    within: Duration,
    children: Vec<Child>,
    restarts: VecDeque<Instant>,
}

/// The supervisor's process. `parent_link`: the tag of its link to the process that started it
/// (linked), whose exit stops it. A nested supervisor (`parent`) watches its parent supervisor,
/// whose exit stops it too: the link its parent makes to it carries the parent's tag, which it
/// does not know.
fn run((spec, started, parent, parent_link): (SupervisorSpec, ReplyTo, Option<u64>, Option<i64>)) {
    // Exits of linked processes arrive as messages instead of killing the supervisor.
    host::die_when_link_dies(false);
    if let Some(parent) = parent {
        host::monitor(parent);
        if !host::exists(parent) {
            // Its parent is gone already (no notice will come for it): nothing to supervise for.
            return;
        }
    }
    // A give-up is logged as one event before the panic that fails the supervisor upward: Rust's
    // own panic report (and backtrace) only when asked (`SWARM_BACKTRACE=1`).
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::log::backtraces() {
            previous(info);
        }
    }));
    let mut sup = Supervisor {
        spec_name: spec.name.clone(),
        parent,
        strategy: spec.strategy,
        max_restarts: spec.max_restarts,
        within: spec.within,
        children: spec
            .children
            .into_iter()
            .map(|spec| {
                let names: Vec<String> = match &spec.kind {
                    ChildKind::Pool { size, .. } => {
                        (0..*size).map(|i| format!("{}#{i}", spec.name)).collect()
                    }
                    _ => vec![spec.name.clone()],
                };
                let members = names
                    .into_iter()
                    .map(|name| Member {
                        stats: ChildStats {
                            name: name.clone(),
                            process: None,
                            starts: 0,
                            restarts: 0,
                            crashes: 0,
                        },
                        name,
                        running: None,
                        link_tag: 0,
                        crashed: false,
                    })
                    .collect();
                Child { spec, members }
            })
            .collect(),
        restarts: VecDeque::new(),
    };

    // Ordered start: a child that fails stops the ones before it and fails the start.
    for index in 0..sup.children.len() {
        if let Err((child, reason)) = sup.start_child(index, false) {
            sup.stop_all();
            started.send::<Result<(), SupervisorError>>(Err(SupervisorError::ChildFailed {
                supervisor: sup.spec_name.clone(),
                child,
                reason,
            }));
            return;
        }
    }
    started.send::<Result<(), SupervisorError>>(Ok(()));
    supervisor_event(SupervisorEvent::Up {
        supervisor: sup.spec_name.clone(),
        process: host::this().id,
    });
    sup.report(SupervisorState::Up);
    let mut reported_at = Instant::now();
    let mut report_due = false;

    loop {
        let wait = report_due.then(|| REPORT_EVERY.saturating_sub(reported_at.elapsed()));
        match host::receive(&[], wait) {
            Received::Data => {
                // Anything else is not for us (a late reply the supervisor stopped waiting for).
                if let Ok(envelope) = decode_envelope::<Op>(host::tag()) {
                    let stop = matches!(envelope.message, Op::Shutdown);
                    let answer = sup.answer(envelope.message);
                    if let Some(reply_to) = envelope.reply_to {
                        reply_to.send(answer);
                    }
                    if stop {
                        return;
                    }
                }
            }
            Received::LinkDied => {
                let tag = host::tag();
                if let Some(member) = sup.member_with_link(tag) {
                    member.crashed = true;
                } else if Some(tag) == parent_link {
                    return sup.parent_exited();
                }
                // Otherwise the link of a child that was handled already (one that was gone when
                // it was linked, its exit taken as a crash then), or its parent supervisor's,
                // whose end comes through the monitor: nothing to do.
            }
            Received::ProcessDied => {
                let sender = host::sender();
                if Some(sender) == sup.parent {
                    return sup.parent_exited();
                }
                sup.child_exited(sender);
                // Restarted or not: observers see the new counts (a give-up reported already).
                report_due = true;
            }
            Received::TimedOut => {}
        }
        if report_due && reported_at.elapsed() >= REPORT_EVERY {
            sup.report(SupervisorState::Up);
            reported_at = Instant::now();
            report_due = false;
        }
    }
}

impl Supervisor {
    /// The process that started this one, or its parent supervisor, ended: OTP's supervisor
    /// exits with its parent, its children first.
    fn parent_exited(&mut self) {
        self.log(
            Level::Warn,
            "supervisor.parent_exited",
            &[],
            "its parent exited: stopping its children",
        );
        self.stop();
    }

    /// Stops every child in reverse start order, and says that this supervisor stopped.
    fn stop(&mut self) {
        self.stop_all();
        supervisor_event(SupervisorEvent::Stopped {
            supervisor: self.spec_name.clone(),
            process: host::this().id,
        });
        self.report(SupervisorState::Stopped);
    }

    /// Tells the node's directory of supervisors how this one stands (see `directory.rs`).
    fn report(&self, state: SupervisorState) {
        let children = self
            .children
            .iter()
            .map(|child| ChildInfo {
                name: child.spec.name.clone(),
                restart: child.spec.restart,
                kind: match &child.spec.kind {
                    ChildKind::Agent {
                        agent_kind, key, ..
                    } => ChildKindInfo::Single {
                        kind: agent_kind.clone(),
                        key: key.clone(),
                    },
                    ChildKind::Pool {
                        agent_kind, size, ..
                    } => ChildKindInfo::Pool {
                        kind: agent_kind.clone(),
                        size: *size,
                    },
                    ChildKind::Supervisor(_) => ChildKindInfo::Supervisor,
                    ChildKind::Invalid(reason) => ChildKindInfo::Invalid {
                        reason: reason.clone(),
                    },
                },
                members: child.members.iter().map(|m| m.stats.clone()).collect(),
                supervisor: None,
            })
            .collect();
        directory::report(directory::Report {
            parent: self.parent,
            info: SupervisorInfo {
                name: self.spec_name.clone(),
                process: host::this().id,
                state,
                strategy: self.strategy,
                max_restarts: self.max_restarts,
                within_secs: self.within.as_secs_f64(),
                children,
            },
        });
    }

    /// One event, with the supervisor's name as its first field.
    fn log(&self, level: Level, event: &str, fields: &[(&str, &str)], what: &str) {
        let mut all = vec![("supervisor", self.spec_name.as_str())];
        all.extend_from_slice(fields);
        crate::log::event(level, event, &all, what);
    }

    /// Starts every member of child `index`; `restart` counts it as a restart.
    fn start_child(&mut self, index: usize, restart: bool) -> Result<(), (String, String)> {
        let spec_name = self.spec_name.clone();
        let mut dead_on_arrival = Vec::new();
        let child = &mut self.children[index];
        for member in &mut child.members {
            if member.running.is_some() {
                continue;
            }
            let registered =
                start_one(&child.spec.kind).map_err(|reason| (member.name.clone(), reason))?;
            let running = registered.pid();
            let tag = Tag::new().id() | CHILD_LINK;
            host::link(tag, running.id);
            host::monitor(running.id);
            member.running = Some(running);
            member.link_tag = tag;
            member.crashed = false;
            member.stats.process = Some(running.id);
            member.stats.starts += 1;
            if restart {
                member.stats.restarts += 1;
            }
            let (how, event) = match (registered, restart) {
                // Someone's `get_or_start` started it first: it keeps the store and settings
                // it was started with, not this child spec's, which is worth a word in the log.
                (Registered::Found(_), _) => {
                    ("adopted the already running", "supervisor.child_adopted")
                }
                (Registered::Started(_), true) => ("restarted", "supervisor.child_restarted"),
                (Registered::Started(_), false) => ("started", "supervisor.child_started"),
            };
            crate::log::info(
                event,
                &[
                    ("supervisor", &spec_name),
                    ("child", &member.name),
                    ("process", &running.id.to_string()),
                ],
                &format!("{how} `{}`", member.name),
            );
            supervisor_event(SupervisorEvent::ChildStarted {
                supervisor: spec_name.clone(),
                child: child.spec.name.clone(),
                restart,
            });
            // It may have died between its start and our link and monitor: then no signal
            // will come, so look now.
            if !running.exists() {
                member.crashed = true;
                dead_on_arrival.push(running.id);
            }
        }
        for id in dead_on_arrival {
            self.child_exited(id);
        }
        Ok(())
    }

    /// Stops every member of child `index` in reverse order, without treating it as an exit.
    fn stop_child(&mut self, index: usize) {
        let child = &mut self.children[index];
        for member in child.members.iter_mut().rev() {
            if let Some(running) = member.running.take() {
                host::stop_monitoring(running.id);
                host::unlink(running.id);
                stop_one(&child.spec.kind, running);
                member.stats.process = None;
            }
        }
    }

    /// Stops every child, last started first.
    fn stop_all(&mut self) {
        for index in (0..self.children.len()).rev() {
            self.stop_child(index);
        }
    }

    fn member_with_link(&mut self, tag: i64) -> Option<&mut Member> {
        self.children
            .iter_mut()
            .flat_map(|child| child.members.iter_mut())
            .find(|member| member.running.is_some() && member.link_tag == tag)
    }

    /// A watched process exited: apply its restart policy and the strategy.
    fn child_exited(&mut self, id: u64) {
        let Some((index, member_index)) =
            self.children.iter().enumerate().find_map(|(i, child)| {
                child
                    .members
                    .iter()
                    .position(|m| m.running.is_some_and(|r| r.id == id))
                    .map(|m| (i, m))
            })
        else {
            return;
        };
        let restart_policy = self.children[index].spec.restart;
        let member = &mut self.children[index].members[member_index];
        // A process that fails sends its link's end before its monitor's, but stock Lunatic 0.13's
        // mailbox can put a message behind later ones after a receive that timed out (swarm's
        // build is patched, scripts/lunatic-patches.py), so the link's end may come after this:
        // look for it now.
        if !member.crashed
            && host::receive(&[member.link_tag], Some(Duration::ZERO)) == Received::LinkDied
        {
            member.crashed = true;
        }
        let abnormal = member.crashed;
        member.running = None;
        member.stats.process = None;
        if abnormal {
            member.stats.crashes += 1;
        }
        let name = member.name.clone();
        let restart = match restart_policy {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if abnormal {
            supervisor_event(SupervisorEvent::ChildCrashed {
                supervisor: self.spec_name.clone(),
                child: self.children[index].spec.name.clone(),
            });
        }
        let (level, event) = if abnormal {
            (Level::Warn, "supervisor.child_crashed")
        } else {
            (Level::Info, "supervisor.child_exited")
        };
        self.log(
            level,
            event,
            &[
                ("child", &name),
                ("restart", if restart { "yes" } else { "no" }),
            ],
            &format!(
                "`{name}` exited {}; {}",
                if abnormal {
                    "abnormally (crash or kill)"
                } else {
                    "normally"
                },
                if restart {
                    "restarting"
                } else {
                    "not restarting (its restart policy)"
                }
            ),
        );
        if !restart {
            return;
        }

        // Restart intensity: more than `max_restarts` within `within` and the supervisor gives up.
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 > self.max_restarts {
            let why = format!(
                "more than {} restarts within {:?}",
                self.max_restarts, self.within
            );
            self.give_up(&why);
        }

        let affected: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![index],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (index..self.children.len()).collect(),
        };
        // Stop the affected siblings that still run, last started first, then start all the
        // affected children again in start order.
        for &other in affected.iter().rev() {
            if other != index {
                self.stop_child(other);
            }
        }
        for &other in &affected {
            if let Err((child, reason)) = self.start_child(other, true) {
                self.give_up(&format!("`{child}` failed to restart: {reason}"));
            }
        }
    }

    /// Past the restart intensity, or a child that cannot restart (`why` says which): stop every
    /// child in reverse start order and exit abnormally, so the supervisor's own supervisor sees
    /// it fail. The log line and the panic name the actual reason: a child that cannot start is
    /// not a restart storm, and reading it as one sends the reader after the wrong problem.
    fn give_up(&mut self, why: &str) -> ! {
        self.log(
            Level::Error,
            "supervisor.gave_up",
            &[("reason", why)],
            &format!("giving up ({why}); stopping its children and exiting"),
        );
        self.stop_all();
        supervisor_event(SupervisorEvent::GaveUp {
            supervisor: self.spec_name.clone(),
            process: host::this().id,
        });
        self.report(SupervisorState::GaveUp {
            reason: why.to_owned(),
        });
        panic!("supervisor `{}` gave up: {why}", self.spec_name);
    }

    fn answer(&mut self, op: Op) -> Answer {
        match op {
            Op::WhichChild(name) => Answer::Child(
                self.children
                    .iter()
                    .flat_map(|child| {
                        child
                            .members
                            .iter()
                            .map(move |member| (child.spec.key(), member))
                    })
                    .find(|(_, member)| member.name == name)
                    .and_then(|(key, member)| member.running.map(|pid| (pid, key.clone()))),
            ),
            Op::PoolMembers(name) => Answer::Members(
                self.children
                    .iter()
                    .filter(|child| child.spec.name == name)
                    .flat_map(|child| child.members.iter())
                    .filter_map(|member| member.running)
                    .collect(),
            ),
            Op::Stats => Answer::Stats(
                self.children
                    .iter()
                    .flat_map(|child| child.members.iter())
                    .map(|m| m.stats.clone())
                    .collect(),
            ),
            Op::Shutdown => {
                self.log(
                    Level::Info,
                    "supervisor.shutdown",
                    &[],
                    "shutting down: stopping its children in reverse order",
                );
                self.stop();
                Answer::Stopped
            }
        }
    }
}

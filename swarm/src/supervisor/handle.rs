//! Handles to a running supervisor, its children and its pools.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::process::{Answer, Op};
use super::{ChildStats, SupervisorError};
use crate::runtime::agent::Agent;
use crate::runtime::handle::{AgentHandle, AgentRef};
use crate::runtime::host::Pid;
use crate::runtime::mailbox::{call, process_exists, WaitError};

/// How long a question to a supervisor may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle to a running supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorRef {
    name: String,
    node: u64,
    id: u64,
}

impl SupervisorRef {
    pub(crate) fn new(name: String, node: u64, id: u64) -> Self {
        SupervisorRef { name, node, id }
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its Lunatic process id.
    pub fn process_id(&self) -> u64 {
        self.id
    }

    /// Its node id.
    pub fn node_id(&self) -> u64 {
        self.node
    }

    /// Whether it runs (a supervisor that gave up does not).
    pub fn is_alive(&self) -> bool {
        process_exists(self.id)
    }

    fn ask(&self, op: Op) -> Result<Answer, SupervisorError> {
        if !self.is_alive() {
            return Err(SupervisorError::NotRunning(self.name.clone()));
        }
        call::<Op, Answer>(self.id, op, Some(ASK_TIMEOUT)).map_err(|err| match err {
            WaitError::ServerGone => SupervisorError::NotRunning(self.name.clone()),
            other => SupervisorError::Unavailable {
                supervisor: self.name.clone(),
                reason: format!("{other:?}"),
            },
        })
    }

    fn no_child(&self, child: &str) -> SupervisorError {
        SupervisorError::NoSuchChild {
            supervisor: self.name.clone(),
            child: child.to_owned(),
        }
    }

    fn unexpected(&self, answer: Answer) -> SupervisorError {
        SupervisorError::Unavailable {
            supervisor: self.name.clone(),
            reason: format!("unexpected answer {answer:?}"),
        }
    }

    /// The process and key of the running child `name`.
    pub fn child_process(&self, name: &str) -> Result<(Pid, String), SupervisorError> {
        match self.ask(Op::WhichChild(name.to_owned()))? {
            Answer::Child(Some(found)) => Ok(found),
            Answer::Child(None) => Err(self.no_child(name)),
            other => Err(self.unexpected(other)),
        }
    }

    /// A handle to the agent child `name` as it runs now (after a restart, ask again).
    pub fn agent<A: Agent>(&self, name: &str) -> Result<A::Handle, SupervisorError> {
        let (pid, key) = self.child_process(name)?;
        Ok(A::Handle::from_raw(AgentRef::new(pid, key)))
    }

    /// A handle to the nested supervisor `name`.
    pub fn supervisor(&self, name: &str) -> Result<SupervisorRef, SupervisorError> {
        let (pid, _) = self.child_process(name)?;
        Ok(SupervisorRef::new(name.to_owned(), pid.node, pid.id))
    }

    /// A handle to the pool `name`, whose members are agents of kind `A`.
    pub fn pool<A: Agent>(&self, name: &str) -> PoolRef<A> {
        PoolRef {
            supervisor: self.clone(),
            name: name.to_owned(),
            members: RefCell::new(Vec::new()),
            next: Cell::new(0),
            kind: PhantomData,
        }
    }

    /// Every child's counters, in start order (pool members one by one).
    pub fn stats(&self) -> Result<Vec<ChildStats>, SupervisorError> {
        match self.ask(Op::Stats)? {
            Answer::Stats(stats) => Ok(stats),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stops the children in reverse start order (each agent runs its `#[on_stop]` hook and
    /// saves), then the supervisor itself.
    pub fn shutdown(&self) -> Result<(), SupervisorError> {
        match self.ask(Op::Shutdown)? {
            Answer::Stopped => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }
}

/// Stops the supervisor process `id`, as a parent does with a nested one.
pub(crate) fn shutdown_supervisor(id: u64, timeout: Duration) -> Result<(), WaitError> {
    call::<Op, Answer>(id, Op::Shutdown, Some(timeout)).map(|_| ())
}

/// A handle to a pool: `size` agents of one kind behind one name, picked round robin. A member
/// that crashed is skipped (its supervisor starts a replacement, which the pool finds the next time
/// it asks for the members).
pub struct PoolRef<A> {
    supervisor: SupervisorRef,
    name: String,
    members: RefCell<Vec<Pid>>,
    next: Cell<usize>,
    kind: PhantomData<fn() -> A>,
}

impl<A> Clone for PoolRef<A> {
    fn clone(&self) -> Self {
        PoolRef {
            supervisor: self.supervisor.clone(),
            name: self.name.clone(),
            members: RefCell::new(self.members.borrow().clone()),
            next: Cell::new(self.next.get()),
            kind: PhantomData,
        }
    }
}

impl<A: Agent> PoolRef<A> {
    /// The next live member, round robin.
    pub fn pick(&self) -> Result<A::Handle, SupervisorError> {
        for refreshed in [false, true] {
            if refreshed || self.members.borrow().is_empty() {
                self.refresh()?;
            }
            let members = self.members.borrow();
            for _ in 0..members.len() {
                let at = self.next.get() % members.len();
                self.next.set(at + 1);
                let pid = members[at];
                if pid.exists() {
                    return Ok(A::Handle::from_raw(AgentRef::new(pid, String::new())));
                }
            }
        }
        Err(SupervisorError::NoSuchChild {
            supervisor: self.supervisor.name.clone(),
            child: self.name.clone(),
        })
    }

    /// Every member running now.
    pub fn members(&self) -> Result<Vec<A::Handle>, SupervisorError> {
        self.refresh()?;
        Ok(self
            .members
            .borrow()
            .iter()
            .map(|&pid| A::Handle::from_raw(AgentRef::new(pid, String::new())))
            .collect())
    }

    fn refresh(&self) -> Result<(), SupervisorError> {
        match self.supervisor.ask(Op::PoolMembers(self.name.clone()))? {
            Answer::Members(members) => {
                *self.members.borrow_mut() = members;
                Ok(())
            }
            other => Err(self.supervisor.unexpected(other)),
        }
    }
}

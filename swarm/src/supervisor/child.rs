//! Children: how a supervisor starts one (an agent, a pool member, a nested supervisor) and stops it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Restart, SupervisorSpec};
use crate::runtime::agent::{Agent, AgentArg, AgentState};
use crate::runtime::handle::{registry_name, start_agent};
use crate::runtime::mailbox::{process_exists, shutdown_abstract_process};
use crate::runtime::registry::{self, Registered};
use crate::store::StoreConfig;

/// How long a child gets to stop in order before it is killed (OTP's default shutdown is 5 s).
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// One child of a supervisor, as plain data (it travels to the supervisor's process).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Its name in the supervisor, unique there.
    pub name: String,
    /// When it is restarted.
    pub restart: Restart,
    pub(crate) kind: ChildKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ChildKind {
    /// An agent, started by `starter` from `arg`;
    /// registered under `registry_name` when keyed.
    Agent {
        agent_kind: String,
        key: String,
        registry_name: Option<String>,
        starter: registry::StarterRef,
        arg: AgentArg,
    },
    /// `size` unkeyed agents behind one name.
    Pool {
        agent_kind: String,
        size: usize,
        starter: registry::StarterRef,
        arg: AgentArg,
    },
    /// A nested supervisor.
    Supervisor(Box<SupervisorSpec>),
    /// A child that cannot start (its key is invalid); starting it reports why.
    Invalid(String),
}

impl ChildSpec {
    /// A keyed agent child: the single agent with this key, registered as `get_or_start` would.
    pub fn agent<A: Agent>(name: &str, key: impl Into<A::Key>) -> Result<Self, crate::StartError> {
        let key = crate::key::key_text(A::KIND, &key.into())?;
        Ok(Self::agent_with_text::<A>(name, key, true))
    }

    /// An agent child of a kind without a `#[key]`.
    pub fn unkeyed_agent<A: Agent + AgentState<Key = ()>>(name: &str) -> Self {
        Self::agent_with_text::<A>(name, String::new(), false)
    }

    /// `size` agents of a kind without a `#[key]`, reached through one [`super::PoolRef`].
    pub fn pool<A: Poolable + Agent>(name: &str, size: usize) -> Self {
        ChildSpec {
            name: name.to_owned(),
            restart: Restart::Permanent,
            kind: ChildKind::Pool {
                agent_kind: A::KIND.to_owned(),
                size,
                starter: registry::StarterRef::new(start_agent::<A>),
                arg: agent_arg::<A>(String::new()),
            },
        }
    }

    /// A nested supervisor.
    pub fn supervisor(name: &str, spec: SupervisorSpec) -> Self {
        ChildSpec {
            name: name.to_owned(),
            restart: Restart::Permanent,
            kind: ChildKind::Supervisor(Box::new(spec)),
        }
    }

    /// The key of an agent child (empty for others).
    pub(crate) fn key(&self) -> String {
        match &self.kind {
            ChildKind::Agent { key, .. } => key.clone(),
            _ => String::new(),
        }
    }

    /// The same child with another restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    fn agent_with_text<A: Agent>(name: &str, key: String, keyed: bool) -> Self {
        ChildSpec {
            name: name.to_owned(),
            restart: Restart::Permanent,
            kind: ChildKind::Agent {
                agent_kind: A::KIND.to_owned(),
                registry_name: keyed.then(|| registry_name::<A>(&key)),
                starter: registry::StarterRef::new(start_agent::<A>),
                arg: agent_arg::<A>(key.clone()),
                key,
            },
        }
    }
}

/// The store is resolved when the spec is built, in the process that builds it, as
/// `get_or_start` does: a supervisor restarts its children with the store they started with.
fn agent_arg<A: Agent>(key: String) -> AgentArg {
    let store: Option<StoreConfig> =
        crate::runtime::agent::keeps_record::<A>().then(crate::runtime::node::default_store);
    AgentArg {
        key,
        store,
        idle: None,
    }
}

/// A type the `supervisor!` macro can use as a child without arguments: an agent without a
/// `#[key]`, or another supervisor.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a child here: it is neither an agent without a #[key] nor a supervisor",
    label = "not an agent or a supervisor",
    note = "children are `name: Agent(key)` for keyed agents, `name: Agent` for agents without a key, `name: Supervisor`, or `name: pool(Agent, n)`"
)]
pub trait Supervisable {
    /// What the supervisor's handle gives for this child.
    type Handle;
    /// The child spec for a child of this type named `name`.
    fn child_spec(name: &str) -> ChildSpec;
    /// The handle to the child `name` of `parent`, as it runs now.
    fn child_handle(
        parent: &super::SupervisorRef,
        name: &str,
    ) -> Result<Self::Handle, super::SupervisorError>;
}

/// An agent that can be a pool member: one without a `#[key]` (members are interchangeable).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a pool member: a pool's members are agents without a #[key]",
    label = "not an agent without a key",
    note = "members of a pool are interchangeable, so they have no key; supervise keyed agents one by one as `name: Agent(key)`"
)]
// Not `Agent` as a supertrait: `#[agent]` on the struct implements this, and a struct whose
// `#[agent]` impl block is missing is reported once, by the generated functions (see
// `generated.rs`), not a second time here.
pub trait Poolable: AgentState<Key = ()> {}

/// A type the `supervisor!` macro can use as a child with a key: an agent with a `#[key]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a child with a key: it is not an agent with a #[key]",
    label = "not a keyed agent",
    note = "`name: Agent(key)` is for agents with a #[key]; use `name: Agent` for agents without one"
)]
pub trait SupervisableKeyed: AgentState {
    /// The agent's key type (its `AgentState::Key`), named by this trait as well: the key a
    /// `supervisor!` gives is converted to this type, so a child that is not a keyed agent is
    /// one error (this trait missing), not a second one about its key.
    type ChildKey: Into<<Self as AgentState>::Key>;

    /// The child spec for the agent with `key`, named `name`.
    fn child_spec(name: &str, key: impl Into<Self::ChildKey>) -> ChildSpec
    where
        Self: Agent,
    {
        let key: <Self as AgentState>::Key = key.into().into();
        // An invalid key fails the supervisor's start with this child's error, like any child
        // that cannot start.
        ChildSpec::agent::<Self>(name, key).unwrap_or_else(|err| ChildSpec {
            name: name.to_owned(),
            restart: Restart::Permanent,
            kind: ChildKind::Invalid(err.to_string()),
        })
    }
}

/// A running child process, as the supervisor tracks it.
pub(crate) type Running = crate::runtime::host::Pid;

/// Starts one process of a child (an agent, a pool member or a nested supervisor), or, for a
/// keyed agent that already runs (started by a `get_or_start` elsewhere), finds it:
/// [`Registered::Found`] tells the supervisor it adopted a process it did not start.
pub(crate) fn start_one(kind: &ChildKind) -> Result<Registered, String> {
    match kind {
        ChildKind::Agent {
            agent_kind,
            key,
            registry_name: Some(name),
            starter,
            arg,
        } => {
            // Keyed agents go through the registrar, so a key never has two live agents.
            let job = registry::StartJob {
                name: name.clone(),
                kind: agent_kind.clone(),
                key: key.clone(),
                starter: *starter,
                arg: arg.clone(),
            };
            registry::get_or_start(job).map_err(|err| err.to_string())
        }
        ChildKind::Agent {
            registry_name: None,
            starter,
            arg,
            ..
        }
        | ChildKind::Pool { starter, arg, .. } => starter
            .start(arg.clone())
            .map(Registered::Started)
            .map_err(|err| err.to_string()),
        ChildKind::Invalid(reason) => Err(reason.clone()),
        // Called in the parent supervisor's process: it is the nested one's parent.
        ChildKind::Supervisor(spec) => super::process::start(
            (**spec).clone(),
            false,
            Some(crate::runtime::host::this().id),
        )
        .map(|sup| {
            Registered::Started(Running {
                node: sup.node_id(),
                id: sup.process_id(),
            })
        })
        .map_err(|err| err.to_string()),
    }
}

/// Stops one child process in order (its stop hook runs, its state is saved), killing it if it
/// does not stop within [`SHUTDOWN_TIMEOUT`].
pub(crate) fn stop_one(kind: &ChildKind, running: Running) {
    if !process_exists(running.id) {
        return;
    }
    let stopped = match kind {
        ChildKind::Agent { .. } | ChildKind::Pool { .. } | ChildKind::Invalid(_) => {
            shutdown_abstract_process(running.id, SHUTDOWN_TIMEOUT).is_ok()
        }
        ChildKind::Supervisor(_) => {
            super::handle::shutdown_supervisor(running.id, SHUTDOWN_TIMEOUT).is_ok()
        }
    };
    if !stopped {
        crate::runtime::host::kill(running.id);
    }
}

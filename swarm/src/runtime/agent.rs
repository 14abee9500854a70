//! What every agent process runs: load persisted state before the first message, run handlers,
//! save changed state before replying, and report a crash to the caller it happened to.
//!
//! The macros implement two traits per agent ([`AgentState`] from the struct, [`AgentBehavior`]
//! from the impl block) plus a thin Lunatic `AbstractProcess` impl that calls [`init`],
//! [`serve`] and [`terminate`] here. Everything that does not depend on the user's types lives in
//! this module, written once, instead of being generated into every agent.

use std::cell::Cell;
use std::fmt::Display;
use std::sync::Once;

use lunatic::ap::{AbstractProcess, MessageHandler, ProcessRef, State};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::applied::{Applied, Found};
use super::host::{self, Received};
use super::mailbox::{
    decode_envelope, reply_slot, wait_for, Envelope, ReplyTo, ShutdownRequest, WaitError,
    ENVELOPE_HANDLER_ID, SHUTDOWN_HANDLER_ID,
};
use super::process;
use super::wire::Wire;
use crate::error::{RemoteFailure, StartError};
use crate::key::{parse_key_text, AgentKey};
use crate::metrics::local::{self as metrics, StoreOp};
use crate::metrics::model::Outcome;
use crate::record::RecordError;
use crate::store::{Store, StoreConfig, StoreError};

/// The state side of an agent, implemented by `#[agent]` on the struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not marked `#[agent]`",
    label = "`#[agent]` on an impl block needs `#[agent]` on the struct too",
    note = "add `#[agent]` above `struct {Self}`"
)]
pub trait AgentState: Sized + 'static {
    /// The agent kind: a NATS subject token and the first segment of its storage keys.
    const KIND: &'static str;
    /// Whether the struct has a `#[key]` field (one instance per key, found through the registry).
    const KEYED: bool;
    /// Whether the struct has `#[persist]` fields.
    const PERSISTS: bool;
    /// Passivation: an agent of this kind (with a `#[key]`) that gets no message for this long
    /// runs `#[on_stop]`, saves and stops; the next call through a handle or the NATS front door
    /// starts it again with its state. `None` (the default): it runs until stopped. Agents started
    /// as a supervisor's children are never passivated.
    const PASSIVATE_AFTER: Option<std::time::Duration> = None;
    /// The longest one message may run (`#[agent(message_budget = "2s")]`): past it the node
    /// stops the agent, its caller gets `CallFailure::OverBudget`, and the agent restarts from its
    /// last saved state. `None` (the default): no limit.
    const MESSAGE_BUDGET: Option<std::time::Duration> = None;
    /// The most memory an agent's process may hold after a message, in bytes
    /// (`#[agent(max_memory = "64MiB")]`): an agent past it does not save that message's change,
    /// answers `CallFailure::OverMemory`, and stops, to restart from its last saved state. `None`
    /// (the default): only the node's own limits.
    const MAX_MEMORY: Option<u64> = None;
    /// The most messages an agent may have waiting (`#[agent(mailbox = 1000)]`): a request past
    /// it is answered `CallFailure::Overloaded` as soon as the agent is between two messages,
    /// instead of queueing without end. `None` (the default): unbounded.
    const MAILBOX: Option<usize> = None;
    /// How the `#[persist]` fields reach the store (`#[agent(persistence = "write_behind",
    /// save_every = "200ms")]`): see [`Persistence`]. Default: [`Persistence::WriteThrough`].
    const PERSISTENCE: Persistence = Persistence::WriteThrough;
    /// The version of the `#[persist]` fields (`#[agent(state_version = 3)]`; 1 when not given).
    /// A stored record of an older version is upgraded by the impl block's `#[migrate]` steps
    /// ([`AgentBehavior::migrate`]) when the agent starts; one of a newer version is refused
    /// ([`StartError::NewerRecord`]). See [`crate::record`].
    const STATE_VERSION: u32 = 1;
    /// The names of the `#[persist]` fields: the members of a record. What the last `#[migrate]`
    /// step returns must be among them (a name it gets wrong would otherwise be dropped without a
    /// word, and the field left at its `Default`).
    const PERSISTED_FIELDS: &'static [&'static str] = &[];
    /// The type of the `#[key]` field (`()` without one).
    type Key: AgentKey;
    /// A fresh instance: the key set, every other field from `Default`.
    fn from_key(key: Self::Key) -> Self;
    /// The instance's key (`&()` without a `#[key]`).
    fn key(&self) -> &Self::Key;
    /// The `#[persist]` fields as a record (see [`crate::record`]).
    fn encode_persisted(&self) -> Result<Vec<u8>, String>;
    /// Replaces the `#[persist]` fields with those of a stored record.
    fn restore_persisted(&mut self, record: &[u8]) -> Result<(), RecordError>;
}

/// The behaviour side of an agent, implemented by `#[agent]` on the impl block.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[agent]` impl block",
    label = "this agent has no handlers yet",
    note = "add `#[agent] impl {Self} {{ .. }}` with its `#[handler]` methods (one such block per agent)"
)]
pub trait AgentBehavior: AgentState {
    /// The message enum: one variant per handler.
    type Msg: Serialize + DeserializeOwned + 'static;
    /// Every handler, in declaration order: how callers outside Rust (NATS) name them.
    const HANDLERS: &'static [HandlerInfo];
    /// The typed handle callers use.
    type Handle: super::handle::AgentHandle<Agent = Self>;
    /// Runs one message; generated as a `match` over the handlers.
    fn handle(cell: &mut AgentCell<Self>, message: Self::Msg, reply_to: Option<ReplyTo>);
    /// The `#[on_start]` hook: runs after the persisted state is loaded, before the first message.
    fn on_start(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// The `#[on_stop]` hook: runs on an orderly stop; state it changes is saved.
    fn on_stop(&mut self) {}
    /// The JSON Schemas of every handler's arguments and reply, in declaration order, when the
    /// impl block says `#[agent(schema)]` (see [`crate::schema`]); `None`: the kind publishes
    /// none. Built when a node starts serving the kind, not per request.
    fn schemas() -> Option<Vec<crate::schema::HandlerSchemas>> {
        None
    }
    /// The `from` of the impl block's last `#[migrate]` step (0 without any): the struct's
    /// `#[agent(state_version = N)]` checks at compile time that the steps reach `N`
    /// ([`crate::record::steps_reach`]). `None` only for the stand-in of a rejected impl block,
    /// which has already failed the build with its own error.
    const LAST_MIGRATION: Option<u32> = Some(0);
    /// Runs the `#[migrate(from = version)]` step: the fields of a record of `version` become
    /// those of `version + 1`. `Err` says why the step could not run. Generated as a `match` over
    /// the steps (each through [`crate::record::migration_step`]); the macros check at compile time
    /// that there is one step for every version below [`AgentState::STATE_VERSION`].
    fn migrate(
        version: u32,
        fields: crate::record::Fields,
    ) -> Result<crate::record::Fields, String> {
        drop(fields);
        crate::record::no_migration_step(version)
    }
    /// The handlers bound to NATS subjects (`#[handler(subject = "shop.orders.{key}.placed")]`),
    /// which `swarm::nats::serve_subjects` subscribes to. Empty by default.
    const SUBJECTS: &'static [SubjectBinding] = &[];
}

/// A handler bound to a NATS subject pattern, as the macros describe it to the runtime (checked
/// at compile time: a valid pattern, with exactly one whole token for the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectBinding {
    /// The handler, by its index in [`AgentBehavior::HANDLERS`].
    pub handler: usize,
    /// The subject to subscribe to: the user's pattern with `{key}` written `*`.
    pub subject: &'static str,
    /// Which token of a message's subject (from 0) is the agent's key.
    pub key_token: usize,
    /// The name of the handler's one argument, which a message's payload is (as JSON).
    pub argument: &'static str,
    /// `Some(stream)`: the messages come from this JetStream stream, through a durable consumer
    /// (`swarm::nats::serve_streams`); `None`: from core NATS (`swarm::nats::serve_subjects`).
    pub stream: Option<&'static str>,
}

/// How an agent kind's `#[persist]` fields reach the store, chosen per kind with
/// `#[agent(persistence = "..")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `persistence = "write_through"`, the default: a handler's change is saved before its caller
    /// is answered. A crash (of the agent or its node) loses no acknowledged change; each
    /// acknowledged change costs a durable write (saves from many agents at once share the
    /// store's commits, see `store::server`).
    WriteThrough,
    /// `persistence = "write_behind", save_every = "200ms"`: the caller is answered as soon as the
    /// handler returns; the state is saved when it changed, `every` after the first change not yet
    /// saved (checked between two messages, so a handler running past the deadline delays it by
    /// its own run time), on an orderly stop, and when the agent passivates.
    ///
    /// **What a crash can lose**: the acknowledged changes of at most the last `every` (plus the
    /// run time of the message being handled then). A crash is a kill of the agent or its node, a
    /// panicking handler, a message past its `message_budget`, an agent past its `max_memory`, or
    /// a save the store refused: each restarts the agent from its last save. A caller is also not
    /// told when a later save finds the record taken over by another node (the agent then stops;
    /// in a cluster that change is lost, as a change of a stale owner must be).
    ///
    /// Events its handlers `publish` wait for the save that keeps their change, so a change a crash
    /// loses sent none; `publish_to_stream` events are stored when the handler returns (see
    /// `nats::events`).
    WriteBehind {
        /// The longest an acknowledged change stays unsaved while the agent runs.
        every: std::time::Duration,
    },
}

/// One handler, as the macros describe it to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerInfo {
    /// The method's name: the last token of its NATS subject.
    pub name: &'static str,
    /// Its variant in the message enum (the method name in CamelCase).
    pub variant: &'static str,
    /// Whether the caller waits for an answer (the method has a return type).
    pub request: bool,
}

/// An agent as Lunatic runs it: the process' state is an [`AgentCell`], its argument an
/// [`AgentArg`], and its one mailbox handler takes [`Envelope`]s of the message enum.
///
/// Implemented by `#[agent]` on the impl block, next to the `AbstractProcess` impl it vouches
/// for, rather than for every type that happens to qualify: then a struct whose impl block is
/// missing fails one bound with one message (where its handle is declared), instead of one
/// error per supertrait at every place that names the handle.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[agent]` impl block",
    label = "this agent has no handlers yet",
    note = "add `#[agent] impl {Self} {{ .. }}` with its `#[handler]` methods (one such block per agent)"
)]
pub trait Agent:
    AgentBehavior
    + AbstractProcess<
        State = AgentCell<Self>,
        Serializer = Wire,
        Arg = AgentArg,
        StartupError = StartError,
    > + MessageHandler<Envelope<<Self as AgentBehavior>::Msg>>
{
}

/// What a new agent process receives from whoever starts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[doc(hidden)] // Called by generated code and the runtime only: not an API.
pub struct AgentArg {
    /// The key, in its validated text form (empty for agents without a key).
    pub key: String,
    /// The store for `#[persist]` fields; `None` for agents that persist nothing.
    pub store: Option<StoreConfig>,
    /// Stop after this long without a message (passivation): leave the registry, serve what
    /// reached it meanwhile, run `#[on_stop]`, save, end; the next call through a handle or the
    /// front door starts the agent again. The new activation cannot overlap this one's last save:
    /// the node's registrar starts no agent under a name whose previous process is still alive,
    /// and in a cluster the store fences the record as well.
    #[serde(default)]
    pub idle: Option<std::time::Duration>,
}

/// The state of an agent's process: the user's struct plus what persistence needs.
pub struct AgentCell<A> {
    agent: A,
    store: Option<Box<dyn Store>>,
    storage_key: String,
    /// The record as last saved (or loaded): a handler that leaves it unchanged writes nothing.
    saved: Vec<u8>,
    /// Set when a save found the record taken over by another holder: the agent ends.
    stale: bool,
    /// Write-behind only: when the oldest acknowledged change not yet saved must be saved by.
    save_due: Option<std::time::Instant>,
    /// The calls it applied, by request id (see `applied`).
    applied: Applied,
    /// A stream mark moved since the last save: saved even if the fields did not change (else a
    /// handler that changed nothing would run again on a redelivery or a replay, and send its
    /// events again).
    marks_unsaved: bool,
}

impl<A: AgentBehavior> AgentCell<A> {
    /// The user's struct, for `&self` handlers.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The user's struct, for `&mut self` handlers.
    pub fn agent_mut(&mut self) -> &mut A {
        &mut self.agent
    }

    /// Completes a handler: saves changed `#[persist]` fields if it could change them (write-through,
    /// before the reply; write-behind, by a deadline, see [`Persistence`]), then sends `answer` to
    /// the caller waiting for it.
    pub fn finish<R: Serialize + DeserializeOwned>(
        &mut self,
        mutated: bool,
        reply_to: Option<ReplyTo>,
        answer: R,
    ) {
        if let Some(cap) = A::MAX_MEMORY.filter(|&cap| memory_in_use() > cap) {
            // Past its cap: this change is not acknowledged, and the agent ends so that it
            // restarts, small, from what it last saved (a Wasm memory never shrinks).
            CURRENT_REPLY.with(|slot| slot.set(None));
            metrics::set_outcome(Outcome::OverMemory);
            let reason = format!(
                "agent `{}` holds {} MiB after this call, past its cap of {} MiB",
                A::KIND,
                memory_in_use() >> 20,
                cap >> 20
            );
            if let Some(reply_to) = reply_to {
                reply_to.send_failure(RemoteFailure::OverMemory(reason.clone()));
            }
            panic!("{reason}; stopping");
        }
        // The stream events the handler published are stored by their streams before its change
        // is saved, so that no crash after the save loses one; its core events wait for the save
        // (see `nats::events`). A stream event not stored fails the call as a failed save does.
        #[cfg(feature = "nats")]
        if let Err(reason) = crate::nats::events::send_stream_events() {
            CURRENT_REPLY.with(|slot| slot.set(None));
            metrics::set_outcome(Outcome::PersistFailed);
            crate::log::error(
                "agent.events_not_published",
                &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                &format!("the change is not saved nor acknowledged: {reason}"),
            );
            self.settle_events(Err(&reason));
            if let Some(reply_to) = reply_to {
                reply_to.send_failure(RemoteFailure::PersistFailed(reason.clone()));
            }
            panic!("agent `{}`: {reason}, stopping", A::KIND);
        }
        // A state-changing call with a request id is remembered with its answer (as JSON, the
        // form its callers take) before the save, so that the save carries its id.
        let mut json_answer = None;
        if let (true, Some(reply_to)) = (mutated, reply_to.filter(ReplyTo::wants_json)) {
            if let Some(digest) = reply_to.request() {
                // An answer that does not encode is sent as it is below, which reports it.
                if let Ok(bytes) = serde_json::to_vec(&answer) {
                    self.applied.remember(digest, bytes.clone());
                    json_answer = Some(bytes);
                }
            }
        }
        // A stream message's change is saved before its answer, which acks it, whatever the
        // strategy; its sequence goes into the same write.
        let stream = CURRENT_STREAM.with(|slot| slot.take());
        if let Some((name, seq)) = stream {
            self.applied.set_stream_mark(name, seq);
            self.marks_unsaved = true;
        }
        if let (true, Persistence::WriteBehind { every }, None) = (mutated, A::PERSISTENCE, stream)
        {
            // Answered now, saved by the deadline of the oldest unsaved change (the agent's loop
            // keeps it; a later change does not push it back). Its request id is saved with it,
            // so a crash loses the two together, and a retry under that id applies it again.
            if self.store.is_some() && self.save_due.is_none() {
                self.save_due = Some(std::time::Instant::now() + every);
            }
        } else if mutated || stream.is_some() {
            match self.save_if_changed() {
                Ok(()) => {}
                Err(SaveFailure::Stale(reason)) => {
                    // Another node took this agent over and fenced its record: this copy must
                    // neither acknowledge the change nor serve again. It answers `Moved` and ends
                    // after this message (see `agent_main`), without a last save.
                    CURRENT_REPLY.with(|slot| slot.set(None));
                    metrics::set_outcome(Outcome::Moved);
                    crate::log::warn(
                        "agent.stale_write_refused",
                        &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                        &format!("stale-write-refused: {reason}"),
                    );
                    if let Some(reply_to) = reply_to {
                        reply_to.send_failure(RemoteFailure::Moved(reason));
                    }
                    self.stale = true;
                    return;
                }
                Err(SaveFailure::Failed(reason)) => {
                    // The change is not durable, so it must not be acknowledged, and the in-memory
                    // state no longer matches the store: tell the caller, then let the agent crash
                    // so it restarts from what it last saved.
                    CURRENT_REPLY.with(|slot| slot.set(None));
                    metrics::set_outcome(Outcome::PersistFailed);
                    crate::log::error(
                        "agent.save_failed",
                        &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                        &format!("state not saved, the change is not acknowledged: {reason}"),
                    );
                    if let Some(reply_to) = reply_to {
                        reply_to.send_failure(RemoteFailure::PersistFailed(reason.clone()));
                    }
                    panic!("agent `{}`: state not saved, stopping: {reason}", A::KIND);
                }
            }
        }
        if self.save_due.is_none() {
            // No change waits for a save (this one saved, or nothing to save: a `&self` handler,
            // a kind without a record): the events still waiting go now.
            self.settle_events(Ok(()));
        }
        match (reply_to, json_answer) {
            (Some(reply_to), Some(json)) => reply_to.send(json),
            (Some(reply_to), None) => reply_to.answer(answer),
            (None, _) => {}
        }
    }

    /// Answers a call whose request id names a call this agent applied already, without running
    /// it again: `true` if it was one.
    fn answered_already(&self, reply_to: ReplyTo) -> bool {
        let Some(digest) = reply_to.request() else {
            return false;
        };
        match self.applied.find(digest) {
            None => false,
            Some(Found::Answer(answer)) => {
                reply_to.send(answer.to_vec());
                true
            }
            Some(Found::AnswerNotKept) => {
                reply_to.send_failure(RemoteFailure::AlreadyApplied(format!(
                    "agent `{}` applied it before it last started, and keeps only the ids of the \
                     last {} such calls, not their answers",
                    A::KIND,
                    super::applied::PERSISTED
                )));
                true
            }
        }
    }

    /// Write-behind: saves the state if its deadline has come (`now` or earlier). A save the store
    /// refuses crashes the agent, as under write-through, so that it restarts from its last save
    /// (the documented loss); one fenced by another holder ends it.
    fn save_if_due(&mut self, now: std::time::Instant) {
        if self.save_due.is_some_and(|due| due <= now) {
            self.save_pending();
        }
    }

    /// Write-behind: saves what the handlers changed since the last save, now.
    fn save_pending(&mut self) {
        self.save_due = None;
        match self.save_if_changed() {
            Ok(()) => {}
            Err(SaveFailure::Stale(reason)) => {
                crate::log::warn(
                    "agent.stale_write_refused",
                    &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                    &format!("stale-write-refused: {reason}"),
                );
                self.stale = true;
            }
            Err(SaveFailure::Failed(reason)) => {
                panic!(
                    "agent `{}`: write-behind save failed, stopping to restart from the last \
                     save: {reason}",
                    A::KIND
                )
            }
        }
    }

    /// Saves the state if it changed; then the core events of the handlers whose changes this
    /// save kept are sent, or, if it failed, dropped (see `nats::events`).
    fn save_if_changed(&mut self) -> Result<(), SaveFailure> {
        let saved = self.write_if_changed();
        match &saved {
            Ok(()) => self.settle_events(Ok(())),
            Err(failure) => self.settle_events(Err(&failure.to_string())),
        }
        saved
    }

    /// Sends the core events of the handlers whose changes are now saved (`Ok`), or drops those of
    /// changes that will not be (`Err`, why), logging either failure.
    fn settle_events(&self, saved: Result<(), &str>) {
        #[cfg(feature = "nats")]
        match saved {
            Ok(()) => {
                if let Err(reason) = crate::nats::events::send_saved() {
                    crate::log::error(
                        "agent.events_not_published",
                        &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                        &format!("the change is saved, its events are lost: {reason}"),
                    );
                }
            }
            Err(why) => {
                let dropped = crate::nats::events::drop_unsaved();
                if dropped > 0 {
                    crate::log::warn(
                        "agent.events_dropped",
                        &[("kind", A::KIND), ("storage_key", &self.storage_key)],
                        &format!(
                            "{dropped} event(s) not published: the change they came from was not \
                             saved: {why}"
                        ),
                    );
                }
            }
        }
        #[cfg(not(feature = "nats"))]
        let _ = saved;
    }

    fn write_if_changed(&mut self) -> Result<(), SaveFailure> {
        self.save_due = None;
        let Some(store) = &self.store else {
            return Ok(());
        };
        let record = self.agent.encode_persisted().map_err(SaveFailure::Failed)?;
        if record != self.saved || self.marks_unsaved {
            // The fields (or the stream marks) changed: saved with the ids of the calls applied
            // and the marks (the same write).
            let stored = self
                .applied
                .saved_with(&record)
                .map_err(SaveFailure::Failed)?;
            let saving = metrics::on().then(std::time::Instant::now);
            let saved = store.put(&self.storage_key, &stored);
            if let Some(started) = saving {
                metrics::store_op(StoreOp::Save, started, saved.is_ok());
            }
            saved.map_err(|err| match err {
                StoreError::Conflict { .. } => SaveFailure::Stale(err.to_string()),
                other => SaveFailure::Failed(other.to_string()),
            })?;
            self.saved = record;
            self.marks_unsaved = false;
        }
        Ok(())
    }
}

/// Whether agents of kind `A` have a record in the store: their `#[persist]` fields, or, for a
/// kind bound to a stream, its marks (a kind without persisted fields would otherwise apply a
/// redelivered or replayed message again after a restart, and send its events again).
pub(crate) fn keeps_record<A: Agent>() -> bool {
    A::PERSISTS || A::SUBJECTS.iter().any(|binding| binding.stream.is_some())
}

/// Why a save did not happen.
enum SaveFailure {
    /// Another holder of the record fenced this one (see [`Store::load_as_owner`]).
    Stale(String),
    /// Encoding or the store failed.
    Failed(String),
}

impl std::fmt::Display for SaveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveFailure::Stale(reason) | SaveFailure::Failed(reason) => f.write_str(reason),
        }
    }
}

thread_local! {
    /// The registry name of the agent this process is while it starts: an `#[on_start]` that
    /// gets or starts its own key would otherwise wait for itself.
    static STARTING_AS: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Where to report a panic of the handler running now. Lunatic processes are single-threaded.
    static CURRENT_REPLY: Cell<Option<ReplyTo>> = const { Cell::new(None) };
    /// For a stream message being handled: its handler's name and stream sequence (see
    /// `ReplyTo::stream_seq`).
    static CURRENT_STREAM: Cell<Option<(&'static str, u64)>> = const { Cell::new(None) };
    /// The agent this process is (kind, key), for its crash event.
    static IDENTITY: std::cell::RefCell<Option<(&'static str, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs inside the new process before anything else: loads the persisted state, runs the
/// `#[on_start]` hook, and installs the hook that answers a caller whose handler panics.
#[doc(hidden)] // Called by generated code and the runtime only: not an API.
pub fn init<A: Agent>(arg: AgentArg) -> Result<AgentCell<A>, StartError> {
    install_panic_reply();
    IDENTITY.with(|identity| *identity.borrow_mut() = Some((A::KIND, arg.key.clone())));
    if A::KEYED {
        STARTING_AS
            .with(|name| *name.borrow_mut() = Some(super::handle::registry_name::<A>(&arg.key)));
    }
    let started = init_state::<A>(arg);
    STARTING_AS.with(|name| *name.borrow_mut() = None);
    started
}

/// Whether this process is the agent registered as `name`, still starting (in its `init`).
pub(crate) fn is_starting_as(name: &str) -> bool {
    STARTING_AS.with(|starting| starting.borrow().as_deref() == Some(name))
}

fn init_state<A: Agent>(arg: AgentArg) -> Result<AgentCell<A>, StartError> {
    let key: A::Key = if A::KEYED {
        parse_key_text(A::KIND, &arg.key)?
    } else {
        A::Key::parse_key("").map_err(|reason| StartError::Hook {
            kind: A::KIND.into(),
            key: String::new(),
            reason,
        })?
    };
    let hook_error = |reason: String| StartError::Hook {
        kind: A::KIND.into(),
        key: arg.key.clone(),
        reason,
    };
    let store_config = keeps_record::<A>().then(|| {
        arg.store
            .clone()
            .unwrap_or_else(StoreConfig::default_for_node)
    });
    crate::metrics::local::start_agent(A::KIND, A::HANDLERS, store_config.as_ref());
    crate::metrics::local::start_spans(A::KIND, &arg.key, A::HANDLERS);
    let mut cell = AgentCell {
        agent: A::from_key(key),
        store: None,
        storage_key: String::new(),
        saved: Vec::new(),
        stale: false,
        save_due: None,
        applied: Applied::default(),
        marks_unsaved: false,
    };
    if let Some(config) = store_config {
        let store_error = |source| StartError::Store {
            kind: A::KIND.into(),
            key: arg.key.clone(),
            source,
        };
        let store = config.open().map_err(store_error)?;
        let storage_key = format!("{}/{}", A::KIND, arg.key);
        let loading = crate::metrics::local::on().then(std::time::Instant::now);
        let loaded = store.load_as_owner(&storage_key);
        if let Some(started) = loading {
            crate::metrics::local::store_op(StoreOp::Load, started, loaded.is_ok());
        }
        // The record's older state version, when it was upgraded.
        let mut upgraded_from = None;
        cell.saved = match loaded.map_err(store_error)? {
            Some(record) => {
                let corrupt = |err: RecordError| StartError::CorruptRecord {
                    kind: A::KIND.into(),
                    key: arg.key.clone(),
                    storage_key: storage_key.clone(),
                    reason: err.to_string(),
                };
                let version = crate::record::state_version(&record).map_err(corrupt)?;
                if version > A::STATE_VERSION {
                    // Written by newer code: reading it would lose what this code does not
                    // know, and saving would then overwrite it. Refused before anything is
                    // written.
                    return Err(StartError::NewerRecord {
                        kind: A::KIND.into(),
                        key: arg.key.clone(),
                        storage_key,
                        found: version,
                        supported: A::STATE_VERSION,
                    });
                }
                let current = if version < A::STATE_VERSION {
                    upgraded_from = Some(version);
                    upgrade::<A>(&record, version).map_err(|(from, reason)| {
                        StartError::UpgradeFailed {
                            kind: A::KIND.into(),
                            key: arg.key.clone(),
                            storage_key: storage_key.clone(),
                            from,
                            to: A::STATE_VERSION,
                            reason,
                        }
                    })?
                } else {
                    record.clone()
                };
                cell.agent.restore_persisted(&current).map_err(|err| {
                    if upgraded_from.is_some() {
                        StartError::UpgradeFailed {
                            kind: A::KIND.into(),
                            key: arg.key.clone(),
                            storage_key: storage_key.clone(),
                            from: A::STATE_VERSION - 1,
                            to: A::STATE_VERSION,
                            reason: format!(
                                "the fields the last #[migrate] step returned are not the \
                                 agent's #[persist] fields: {err}"
                            ),
                        }
                    } else {
                        corrupt(err)
                    }
                })?;
                cell.applied = Applied::from_record(&record);
                if upgraded_from.is_some() {
                    // Nothing counts as saved: the upgraded record is written below, before the
                    // agent serves.
                    Vec::new()
                } else {
                    // The fields alone (what `save_if_changed` compares), without the ids saved
                    // along: a handler that changes nothing writes nothing.
                    cell.agent.encode_persisted().unwrap_or(record)
                }
            }
            // Nothing stored yet: remember the initial state, so that a handler which leaves it as
            // it is writes nothing.
            None => cell.agent.encode_persisted().map_err(|reason| {
                hook_error(format!("the #[persist] fields cannot be encoded: {reason}"))
            })?,
        };
        cell.store = Some(store);
        cell.storage_key = storage_key;
        if let Some(from) = upgraded_from {
            // Saved in the new form before the first message (and before `#[on_start]`), so the
            // store never holds the old form once the agent has served.
            cell.save_if_changed()
                .map_err(|reason| StartError::UpgradeFailed {
                    kind: A::KIND.into(),
                    key: arg.key.clone(),
                    storage_key: cell.storage_key.clone(),
                    from,
                    to: A::STATE_VERSION,
                    reason: format!("the upgraded record could not be saved: {reason}"),
                })?;
        }
    }
    cell.agent.on_start().map_err(hook_error)?;
    cell.save_if_changed().map_err(|reason| {
        let reason = reason.to_string();
        hook_error(format!(
            "the state set by on_start could not be saved: {reason}"
        ))
    })?;
    Ok(cell)
}

/// The record of state version `version` (older than [`AgentState::STATE_VERSION`]) upgraded
/// through the agent's `#[migrate]` steps, one version at a time, as a record of the current
/// version; or the version whose step failed, and why.
fn upgrade<A: Agent>(record: &[u8], version: u32) -> Result<Vec<u8>, (u32, String)> {
    let mut fields = crate::record::fields(record).map_err(|err| (version, err.to_string()))?;
    for from in version..A::STATE_VERSION {
        fields = A::migrate(from, fields)
            .map_err(|reason| (from, format!("#[migrate(from = {from})]: {reason}")))?;
    }
    let last = A::STATE_VERSION - 1;
    if let Some(unknown) = fields
        .keys()
        .find(|name| !A::PERSISTED_FIELDS.contains(&name.as_str()))
    {
        return Err((
            last,
            format!(
                "#[migrate(from = {last})] returned the member {unknown:?}, which is not a \
                 #[persist] field of the agent (its fields: {})",
                A::PERSISTED_FIELDS.join(", ")
            ),
        ));
    }
    crate::record::encode_versioned(&fields, A::STATE_VERSION)
        .map_err(|reason| (A::STATE_VERSION - 1, reason))
}

/// Runs one envelope: the generated `handle`, with the caller remembered in case the handler
/// panics.
#[doc(hidden)] // Called by generated code and the runtime only: not an API.
pub fn serve<A: Agent>(mut state: State<A>, envelope: Envelope<A::Msg>) {
    serve_one(&mut state, envelope);
    // Lunatic's own loop (a process started with `AbstractProcess::start` rather than swarm's)
    // has no timer for write-behind: save when the deadline has passed, after a message.
    state.save_if_due(std::time::Instant::now());
}

fn serve_one<A: Agent>(cell: &mut AgentCell<A>, envelope: Envelope<A::Msg>) {
    // Counting (when the node serves metrics): the handler is the message's variant.
    let handler = if metrics::on() || metrics::spans_on() {
        crate::metrics::variant::variant_index(&envelope.message)
    } else {
        None
    };
    if let Some(reply_to) = envelope.reply_to.filter(ReplyTo::expired) {
        // Its caller gave up on it while it waited here: running it now would apply a change
        // nobody is told about.
        reply_to.send_failure(RemoteFailure::Expired);
        metrics::count_unrun(handler, Outcome::Expired);
        return;
    }
    if envelope
        .reply_to
        .is_some_and(|reply_to| cell.answered_already(reply_to))
    {
        metrics::count_unrun(handler, Outcome::Replayed);
        return;
    }
    // A stream message: applied at most once per agent, by its stream sequence (the mark is saved
    // with the state). A redelivery of one it applied is answered (so it is acked) unrun.
    let stream = match envelope.reply_to.and_then(|reply_to| reply_to.stream_seq()) {
        Some(seq) => crate::metrics::variant::variant_index(&envelope.message)
            .and_then(|index| A::HANDLERS.get(index))
            .map(|info| (info.name, seq)),
        None => None,
    };
    if let (Some((name, seq)), Some(reply_to)) = (stream, envelope.reply_to) {
        if cell.applied.stream_mark(name) >= seq {
            reply_to.answer(());
            metrics::count_unrun(handler, Outcome::Replayed);
            return;
        }
    }
    CURRENT_STREAM.with(|slot| slot.set(stream));
    metrics::call_started(handler);
    CURRENT_REPLY.with(|slot| slot.set(envelope.reply_to));
    // The handler's own span in its caller's trace, which its calls carry on (and which the
    // node's span exporter gets, if it has one).
    let trace = envelope.reply_to.and_then(|reply_to| reply_to.trace());
    let own = trace.map(|trace| trace.child());
    crate::trace::set_current(own);
    let traced = match (trace, own) {
        (Some(trace), Some(own)) if metrics::spans_on() => {
            metrics::span_started(handler, trace, own);
            true
        }
        _ => false,
    };
    // A kind with a time budget: the registrar stops this agent if the message is not over in
    // time (a timer, cancelled once it is).
    let budget = A::MESSAGE_BUDGET
        .and_then(|budget| super::registry::arm_budget(A::KIND, budget, envelope.reply_to));
    #[cfg(feature = "nats")]
    crate::nats::events::handler_started();
    <A as AgentBehavior>::handle(cell, envelope.message, envelope.reply_to);
    #[cfg(feature = "nats")]
    crate::nats::events::handler_ended();
    if let Some(timer) = budget {
        host::cancel_timer(timer);
    }
    if traced {
        metrics::span_ended(metrics::current_outcome());
    }
    if handler.is_some() {
        metrics::call_ended();
    }
    CURRENT_REPLY.with(|slot| slot.set(None));
    CURRENT_STREAM.with(|slot| slot.set(None));
    crate::trace::set_current(None);
}

/// The bytes of memory this process holds (its Wasm linear memory; it never shrinks).
fn memory_in_use() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) as u64 * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    return 0;
}

/// Starts an agent process and waits until its `init` is over (state loaded, `#[on_start]` run).
///
/// A spawn the node cannot make, an `init` that fails or panics: each is a [`StartError`] for
/// this caller alone; nothing here panics.
#[doc(hidden)] // Called by generated code and the runtime only: not an API.
pub fn start<A: Agent>(arg: AgentArg) -> Result<ProcessRef<A>, StartError> {
    let kind = A::KIND;
    let key = arg.key.clone();
    let ready = reply_slot();
    let spawned = if LINK_STARTS.with(Cell::get) {
        process::spawn_linked((ready, arg), agent_main::<A>, lunatic::Tag::new())
    } else {
        process::spawn((ready, arg), agent_main::<A>)
    };
    let id = spawned.map_err(|err| StartError::Spawn {
        kind: kind.into(),
        key: key.clone(),
        reason: err.reason,
    })?;
    match wait_for::<Result<(), StartError>>(ready, id, None) {
        Ok(Ok(())) => Ok(super::registry::process_ref(host::Pid::local(id))),
        Ok(Err(err)) => Err(err),
        // `init` panicked (the process is gone without answering).
        Err(WaitError::ServerGone) => Err(StartError::Panicked {
            kind: kind.into(),
            key,
        }),
        Err(other) => Err(StartError::Registry {
            kind: kind.into(),
            key,
            reason: format!("the new agent did not report its start: {other:?}"),
        }),
    }
}

thread_local! {
    /// Set in the registry's starter processes: agents they start are linked to them.
    static LINK_STARTS: Cell<bool> = const { Cell::new(false) };
}

/// From now on, agents this process starts are linked to it (until it ends normally, which links
/// do not report): called by the registry's starter processes.
pub(crate) fn link_starts_to_this_process() {
    LINK_STARTS.with(|link| link.set(true));
}

/// The life of an agent process: `init`, then one message at a time until it is shut down.
///
/// The same protocol as a Lunatic `AbstractProcess` (handler number in the top byte of a
/// message's tag: 1 for the envelope handler, 32 for shutdown), so `ProcessRef`s and Lunatic's
/// own shutdown still work; but a message that does not decode is reported and dropped instead of
/// killing the agent, and the start is [`start`]'s, which cannot panic the caller.
fn agent_main<A: Agent>(start: (ReplyTo, AgentArg)) {
    agent_life::<A>(start);
    // The agent ended (shut down, passivated, taken over, or it did not start): what it counted
    // since its last delta goes to the node's metrics now.
    metrics::flush();
}

fn agent_life<A: Agent>((ready, arg): (ReplyTo, AgentArg)) {
    let idle = arg.idle;
    let name = A::KEYED.then(|| super::handle::registry_name::<A>(&arg.key));
    let mut cell = match init::<A>(arg) {
        Ok(cell) => cell,
        Err(err) => return ready.send::<Result<(), StartError>>(Err(err)),
    };
    ready.send::<Result<(), StartError>>(Ok(()));
    let mut intake = Intake::<A>::default();
    // Passivation counts from the end of the last message served.
    let mut idle_since = std::time::Instant::now();
    loop {
        // Write-behind: a deadline that passed is kept before the next message, so that a steady
        // stream of messages cannot put the save off.
        cell.save_if_due(std::time::Instant::now());
        if cell.stale {
            return;
        }
        let next = match intake.queue.pop_front() {
            Some(queued) => queued,
            None => {
                let now = std::time::Instant::now();
                let idle_left = idle.map(|idle| (idle_since + idle).saturating_duration_since(now));
                let save_left = cell.save_due.map(|due| due.saturating_duration_since(now));
                let wait = match (idle_left, save_left) {
                    (Some(idle), Some(save)) => Some(idle.min(save)),
                    (one, other) => one.or(other),
                };
                // Counts kept are sent by a tick even when no call comes to send them.
                if metrics::on() {
                    metrics::arm_tick();
                }
                match host::receive(&[], wait) {
                    Received::Data => read_received::<A>(),
                    Received::TimedOut if cell.save_due.is_some() && save_left == wait => {
                        // The save's deadline, not the idle time: the loop's top saves.
                        continue;
                    }
                    Received::TimedOut => return passivate(cell, name.as_deref()),
                    // Link or monitor notices: an agent makes neither, so there is nothing to do.
                    _ => continue,
                }
            }
        };
        intake.take_waiting();
        if !serve_read(&mut cell, next) {
            return;
        }
        idle_since = std::time::Instant::now();
    }
}

/// A message as the agent read it from its mailbox.
enum Read<M> {
    Envelope(Envelope<M>),
    Shutdown {
        confirm: Result<ShutdownRequest, String>,
        tag: i64,
    },
    /// Not for an agent (reported when read).
    Dropped,
}

/// Reads the message just received.
fn read_received<A: Agent>() -> Read<A::Msg> {
    let tag = host::tag();
    match tag >> 56 {
        ENVELOPE_HANDLER_ID => match decode_envelope::<A::Msg>(tag) {
            Ok(envelope) => return Read::Envelope(envelope),
            Err(err) => eprintln!(
                "swarm: agent `{}` dropped a message that does not decode: {err}",
                A::KIND
            ),
        },
        metrics::TICK_HANDLER_ID => {
            // The metrics tick this agent set itself (see `metrics::local::arm_tick`).
            metrics::tick();
            return Read::Dropped;
        }
        SHUTDOWN_HANDLER_ID => {
            return Read::Shutdown {
                confirm: host::decode::<ShutdownRequest>().map_err(|err| err.to_string()),
                tag,
            }
        }
        other => eprintln!(
            "swarm: agent `{}` dropped a message for handler {other}",
            A::KIND
        ),
    }
    Read::Dropped
}

/// The messages an agent of a kind with a bounded mailbox (`#[agent(mailbox = N)]`) has taken
/// from its Lunatic mailbox and not served yet. Lunatic cannot tell a sender how full a mailbox
/// is, so the agent keeps the bound itself: between two messages it takes everything waiting,
/// keeps up to the bound, and answers every request past it `Overloaded` at once (a message
/// without a caller waiting is dropped, and counted in the log). For other kinds it stays empty.
struct Intake<A: Agent> {
    queue: std::collections::VecDeque<Read<A::Msg>>,
    refused: u64,
}

impl<A: Agent> Default for Intake<A> {
    fn default() -> Self {
        Intake {
            queue: std::collections::VecDeque::new(),
            refused: 0,
        }
    }
}

impl<A: Agent> Intake<A> {
    /// Takes what waits in the mailbox, without waiting (bounded kinds only).
    fn take_waiting(&mut self) {
        let Some(bound) = A::MAILBOX else { return };
        while host::receive(&[], Some(std::time::Duration::ZERO)) == Received::Data {
            match read_received::<A>() {
                Read::Envelope(envelope) if self.queue.len() >= bound => {
                    self.refuse(envelope, bound)
                }
                read => self.queue.push_back(read),
            }
        }
    }

    fn refuse(&mut self, envelope: Envelope<A::Msg>, bound: usize) {
        self.refused += 1;
        if metrics::on() {
            let handler = crate::metrics::variant::variant_index(&envelope.message);
            metrics::count_unrun(handler, Outcome::Overloaded);
        }
        let reason = format!(
            "agent `{}` has {bound} messages waiting, its mailbox's bound; call again later",
            A::KIND
        );
        match envelope.reply_to {
            Some(caller) => caller.send_failure(RemoteFailure::Overloaded(reason)),
            None if self.refused.is_power_of_two() => eprintln!(
                "swarm: {reason}; {} messages dropped so far (sent without waiting for an answer)",
                self.refused
            ),
            None => {}
        }
    }
}

/// Serves one message read from the mailbox; `false` when the agent is to end (it was shut down,
/// or its record was taken over by another holder).
fn serve_read<A: Agent>(cell: &mut AgentCell<A>, read: Read<A::Msg>) -> bool {
    match read {
        Read::Envelope(envelope) => {
            serve_one(cell, envelope);
            // Taken over elsewhere: end without `terminate`, whose save would fail too.
            !cell.stale
        }
        Read::Shutdown { confirm, tag } => {
            stop_in_order(cell);
            if let Ok(confirm) = confirm {
                confirm.confirm(tag & !(0xFF << 56));
            }
            false
        }
        Read::Dropped => true,
    }
}

/// Serves the message just received (see [`serve_read`]).
fn serve_received<A: Agent>(cell: &mut AgentCell<A>) -> bool {
    serve_read(cell, read_received::<A>())
}

/// An idle agent stops (passivation): it leaves the registry first, so that the next call starts
/// a new agent instead of finding this one (the registrar starts that one once this process has
/// ended), serves what reached it meanwhile, then saves and runs `#[on_stop]` as an orderly stop
/// does. Then it still serves, for [`LINGER`], what callers that found it just before it left
/// sent late (each saved as any call is). A request that reaches it even later is lost
/// unanswered; its caller learns from the registrar that this process passivated, so that nothing
/// was applied, and calls the next activation.
fn passivate<A: Agent>(mut cell: AgentCell<A>, name: Option<&str>) {
    // Write-behind: what acknowledged calls changed is saved while the name still leads here, so
    // that the record holds it once handles see the agent gone. (A new activation waits for this
    // process to end in any case: the registrar's `after_end`.)
    if cell.save_due.is_some() {
        cell.save_pending();
    }
    if let Some(name) = name {
        if host::registry_get(name).map(|pid| pid.id) == Some(host::this().id) {
            host::registry_remove(name);
        }
    }
    // Whatever was sent before the name went (a shortest receive: Lunatic waits about 1 ms).
    while host::receive(&[], Some(std::time::Duration::from_millis(1))) == Received::Data {
        if !serve_received(&mut cell) {
            return;
        }
    }
    stop_in_order(&mut cell);
    let until = std::time::Instant::now() + LINGER;
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        if host::receive(&[], Some(left)) != Received::Data {
            break;
        }
        if !serve_received(&mut cell) {
            return;
        }
    }
    // Write-behind: what those late messages changed is saved before the process ends.
    if cell.save_due.is_some() {
        cell.save_pending();
    }
    // A caller that found this process just before it left may still send after the linger: its
    // request is lost unanswered, and the registrar's note tells it that nothing was applied.
    super::registry::note_passivated();
}

/// How long a passivated agent still serves late messages after its last save (see
/// [`passivate`]).
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// Runs on an orderly stop: the `#[on_stop]` hook, then a last save of what it changed.
#[doc(hidden)] // Called by generated code and the runtime only: not an API.
pub fn terminate<A: Agent>(mut cell: AgentCell<A>) {
    stop_in_order(&mut cell);
    metrics::flush();
}

fn stop_in_order<A: Agent>(cell: &mut AgentCell<A>) {
    cell.agent.on_stop();
    if let Err(reason) = cell.save_if_changed() {
        crate::log::error(
            "agent.save_failed",
            &[("kind", A::KIND), ("storage_key", &cell.storage_key)],
            &format!("could not save its state on stop: {reason}"),
        );
    }
}

/// The most of a panic message a crash event carries: a log line stays readable, and writing it
/// stays quick (the process is still registered while its hook runs, so a slow hook keeps callers
/// sending to a process that is about to end).
const CRASH_MESSAGE_MAX: usize = 1024;

/// Makes a panicking handler answer its caller with the panic message instead of leaving it to
/// notice the process is gone. Installed once per process, in front of the previous hook.
fn install_panic_reply() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = match (
                info.payload().downcast_ref::<&str>(),
                info.payload().downcast_ref::<String>(),
            ) {
                (Some(text), _) => (*text).to_owned(),
                (_, Some(text)) => text.clone(),
                _ => "a panic with a non-text payload".to_owned(),
            };
            let at = info.location().map(|at| at.to_string()).unwrap_or_default();
            let (kind, key) = IDENTITY
                .with(|identity| identity.borrow().clone())
                .unwrap_or(("", String::new()));
            // The name goes before the caller hears of the crash: a call it makes next must find
            // the agent gone (and start it again, once this process has ended), not this process,
            // which ends without reading its mailbox again.
            if !kind.is_empty() {
                let name = super::handle::registry_name_of(kind, &key);
                if host::registry_get(&name).map(|pid| pid.id) == Some(host::this().id) {
                    host::registry_remove(&name);
                }
            }
            if let Some(reply_to) = CURRENT_REPLY.with(|slot| slot.take()) {
                let location = if at.is_empty() {
                    String::new()
                } else {
                    format!(" (at {at})")
                };
                reply_to.send_failure(RemoteFailure::Panicked(format!("{message}{location}")));
            }
            metrics::on_panic();
            // One event per crash, with its message; Rust's own report (and its backtrace)
            // only when asked, since a supervised crash is expected and restarted.
            crate::log::warn(
                "agent.crashed",
                &[("kind", kind), ("key", &key), ("at", &at)],
                &crate::log::cut(&message, CRASH_MESSAGE_MAX),
            );
            if crate::log::backtraces() {
                previous(info);
            }
        }));
    });
}

/// Turns what an `#[on_start]` hook returns into the hook's result: `()` or `Result<(), E>`.
#[diagnostic::on_unimplemented(
    message = "an #[on_start] hook returns `()` or `Result<(), E>` with `E: Display`, not `{Self}`",
    label = "this hook's return type"
)]
pub trait IntoHookResult {
    /// The hook's outcome, its error as text.
    fn into_hook_result(self) -> Result<(), String>;
}

impl IntoHookResult for () {
    fn into_hook_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> IntoHookResult for Result<(), E> {
    fn into_hook_result(self) -> Result<(), String> {
        self.map_err(|err| err.to_string())
    }
}

//! The node's registry of named processes: one live agent per `(kind, key)`, one store process
//! per store.
//!
//! Lunatic's registry maps a name to a process id but never forgets a dead process, and its
//! atomic "get or spawn" returns a dead entry as found. So every "get or start" goes through one
//! registrar process per node, which decides for each name, one request at a time: a live process
//! is returned; otherwise one start is launched and every request for that name waits for its
//! outcome. Lookups (`lookup`) read the registry directly and check that the process is alive,
//! without a round trip.
//!
//! The registrar never waits for a start itself: each start runs in a short-lived starter process
//! (starting an agent runs its `init`, which loads state and may itself get or start other agents;
//! a registrar blocked on it would deadlock). Starts of different names run side by side.
//!
//! Starters are function pointers: every process of a node runs the same module, so a function
//! pointer means the same function in all of them (Lunatic itself spawns processes this way).

use std::collections::HashMap;
use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use lunatic::host::api::registry;
use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::mailbox::{call, process_exists, Envelope, ReplyTo, WaitError};
use super::wire::Wire;

/// The name the registrar is registered under (Lunatic's own atomic naming).
const REGISTRAR_NAME: &str = "swarm/registrar";
/// Starting a process runs its `init`, which may load state from disk: give it time.
const REGISTRAR_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a process from an encoded argument; returns `(node, id)` or an encoded error.
pub type Starter = fn(&[u8]) -> Result<(u64, u64), Vec<u8>>;

/// A process registered under a name, found or started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registered {
    /// It was already running.
    Found(u64, u64),
    /// It was started by this call.
    Started(u64, u64),
}

impl Registered {
    /// `(node, id)` of the process.
    pub fn ids(self) -> (u64, u64) {
        match self {
            Registered::Found(node, id) | Registered::Started(node, id) => (node, id),
        }
    }
}

/// Why a "get or start" failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The starter failed; its encoded error.
    StartFailed(Vec<u8>),
    /// The registrar could not be reached.
    Unavailable(String),
}

/// The live process registered as `name`, if any.
pub fn lookup(name: &str) -> Option<(u64, u64)> {
    let (mut node, mut id) = (0u64, 0u64);
    // SAFETY: the pointers are valid for the call; the runtime writes two u64s.
    let missing = unsafe { registry::get(name.as_ptr(), name.len(), &mut node, &mut id) };
    (missing == 0 && process_exists(id)).then_some((node, id))
}

/// The live process registered as `name`, started with `starter(arg)` if there is none.
pub fn get_or_start(
    name: &str,
    starter: Starter,
    arg: Vec<u8>,
) -> Result<Registered, RegistryError> {
    if let Some((node, id)) = lookup(name) {
        return Ok(Registered::Found(node, id));
    }
    let registrar = registrar()?;
    let job = StartJob {
        name: name.to_owned(),
        starter: starter as *const () as usize,
        arg,
    };
    match call::<RegistrarOp, Result<Registered, Vec<u8>>>(
        registrar.id(),
        RegistrarOp::GetOrStart(job),
        Some(REGISTRAR_TIMEOUT),
    ) {
        Ok(Ok(registered)) => Ok(registered),
        Ok(Err(error)) => Err(RegistryError::StartFailed(error)),
        Err(WaitError::TimedOut(after)) => Err(RegistryError::Unavailable(format!(
            "the registrar did not answer within {after:?}"
        ))),
        Err(other) => Err(RegistryError::Unavailable(format!(
            "the registrar failed: {other:?}"
        ))),
    }
}

/// Turns the `(node, id)` of a process known to be a `T` into a typed reference.
pub fn process_ref<T: AbstractProcess<Serializer = Wire>>(node: u64, id: u64) -> ProcessRef<T> {
    // SAFETY: `ProcessRef` has no public constructor from ids; it serializes as the `Process` it
    // wraps, so decoding that process' encoding gives the reference. The caller vouches for `T`.
    let process = unsafe { lunatic::Process::<(), Wire>::new(node, id) };
    let bytes = bincode::serialize(&process).expect("a process reference always encodes");
    bincode::deserialize(&bytes).expect("a process reference always decodes")
}

fn registrar() -> Result<ProcessRef<Registrar>, RegistryError> {
    match Registrar::start_as(&REGISTRAR_NAME, ()) {
        Ok(registrar) => Ok(registrar),
        Err(StartupError::NameAlreadyRegistered(registrar)) if registrar.is_alive() => {
            Ok(registrar)
        }
        Err(StartupError::NameAlreadyRegistered(_)) => Err(RegistryError::Unavailable(
            "the node's registrar process has stopped".into(),
        )),
        Err(other) => Err(RegistryError::Unavailable(format!(
            "the registrar did not start: {other:?}"
        ))),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StartJob {
    name: String,
    starter: usize,
    arg: Vec<u8>,
}

/// What the registrar handles: requests, and the outcome of the starts it launched.
#[derive(Debug, Serialize, Deserialize)]
enum RegistrarOp {
    GetOrStart(StartJob),
    Finished {
        name: String,
        outcome: Result<(u64, u64), Vec<u8>>,
    },
}

/// The registrar's state: the requests waiting for each start in progress, and which starter
/// process (by the tag of the link to it) runs which start.
#[derive(Default)]
struct Pending {
    waiting: HashMap<String, Vec<ReplyTo>>,
    starters: HashMap<i64, String>,
}

/// The registrar process.
struct Registrar;

impl AbstractProcess for Registrar {
    type State = Pending;
    type Serializer = Wire;
    type Arg = ();
    type Handlers = (lunatic::ap::handlers::Message<Envelope<RegistrarOp>>,);
    type StartupError = ();

    fn init(config: Config<Self>, (): ()) -> Result<Pending, ()> {
        // A starter process that dies without reporting arrives as a link death, not a crash.
        config.die_if_link_dies(false);
        Ok(Pending::default())
    }

    fn handle_link_death(mut state: State<Self>, tag: Tag) {
        if let Some(name) = state.starters.remove(&tag.id()) {
            let failure = format!("the process starting {name:?} crashed");
            finish(&mut state, &name, Err(failure.into_bytes()));
        }
    }
}

impl MessageHandler<Envelope<RegistrarOp>> for Registrar {
    fn handle(mut state: State<Self>, envelope: Envelope<RegistrarOp>) {
        match envelope.message {
            RegistrarOp::GetOrStart(StartJob { name, starter, arg }) => {
                let Some(reply_to) = envelope.reply_to else {
                    return;
                };
                if let Some((node, id)) = lookup(&name) {
                    reply_to.send::<Result<Registered, Vec<u8>>>(Ok(Registered::Found(node, id)));
                    return;
                }
                if let Some(waiting) = state.waiting.get_mut(&name) {
                    waiting.push(reply_to);
                    return;
                }
                state.waiting.insert(name.clone(), vec![reply_to]);
                let tag = Tag::new();
                state.starters.insert(tag.id(), name.clone());
                // SAFETY: `this()` only reads the current process' ids.
                let registrar = unsafe { lunatic::Process::<Envelope<RegistrarOp>, Wire>::this() };
                lunatic::Process::<(), Wire>::spawn_link_tag(
                    (registrar, name, starter, arg),
                    tag,
                    run_start,
                );
            }
            RegistrarOp::Finished { name, outcome } => {
                state.starters.retain(|_, starting| *starting != name);
                finish(&mut state, &name, outcome);
            }
        }
    }
}

/// Runs in a starter process: one start, reported to the registrar.
fn run_start(
    (registrar, name, starter, arg): (
        lunatic::Process<Envelope<RegistrarOp>, Wire>,
        String,
        usize,
        Vec<u8>,
    ),
    _: lunatic::Mailbox<(), Wire>,
) {
    // SAFETY: `starter` was a `Starter` in the requester, which runs this same module.
    let starter: Starter = unsafe { std::mem::transmute::<usize, Starter>(starter) };
    let outcome = starter(&arg);
    // The registrar's one handler is number 1, as for every swarm process (see mailbox.rs).
    registrar.tag_send(
        envelope_tag(),
        Envelope {
            message: RegistrarOp::Finished { name, outcome },
            reply_to: None,
        },
    );
}

/// A tag that routes a message to the registrar's handler.
fn envelope_tag() -> Tag {
    // `Tag` has no public constructor from a number; it encodes as its `i64`.
    let id: i64 = (1 << 56) | Tag::new().id();
    bincode::deserialize(&id.to_le_bytes()).expect("a tag decodes from its i64")
}

/// A start ended: register what started, and answer everyone who waited for it.
fn finish(state: &mut Pending, name: &str, outcome: Result<(u64, u64), Vec<u8>>) {
    let waiting = state.waiting.remove(name).unwrap_or_default();
    if let Ok((node, id)) = outcome {
        // SAFETY: the name's bytes are valid for the call.
        unsafe { registry::put(name.as_ptr(), name.len(), node, id) };
    }
    for (index, reply_to) in waiting.into_iter().enumerate() {
        let answer = match &outcome {
            Ok((node, id)) if index == 0 => Ok(Registered::Started(*node, *id)),
            Ok((node, id)) => Ok(Registered::Found(*node, *id)),
            Err(error) => Err(error.clone()),
        };
        reply_to.send::<Result<Registered, Vec<u8>>>(answer);
    }
}

//! The node's registry of named processes: one live agent per `(kind, key)`, one store process
//! per store.
//!
//! Lunatic's registry maps a name to a process id but never forgets a dead process, and its
//! atomic "get or spawn" returns a dead entry as found. So every "get or start" goes through one
//! registrar process per node, which serializes them: it looks the name up, and if nothing alive
//! is registered, starts a new process and registers it, with nothing interleaved. Lookups
//! (`lookup`) read the registry directly and check that the process is alive, without a round trip.
//!
//! The registrar starts processes of any type through a starter function it receives as a
//! pointer: every process of a node runs the same module, so a function pointer means the same
//! function in all of them (Lunatic itself spawns processes this way).

use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use lunatic::host::api::registry;
use serde::{Deserialize, Serialize};

use super::mailbox::{call, process_exists, Envelope, WaitError};
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
        starter: starter as usize,
        arg,
    };
    match call::<StartJob, Result<Registered, Vec<u8>>>(
        registrar.id(),
        job,
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

/// The registrar process: serializes "get or start" for the whole node.
struct Registrar;

impl AbstractProcess for Registrar {
    type State = ();
    type Serializer = Wire;
    type Arg = ();
    type Handlers = (lunatic::ap::handlers::Message<Envelope<StartJob>>,);
    type StartupError = ();

    fn init(_: Config<Self>, (): ()) -> Result<(), ()> {
        Ok(())
    }
}

impl MessageHandler<Envelope<StartJob>> for Registrar {
    fn handle(_: State<Self>, envelope: Envelope<StartJob>) {
        let StartJob { name, starter, arg } = envelope.message;
        let answer = match lookup(&name) {
            Some((node, id)) => Ok(Registered::Found(node, id)),
            None => {
                // SAFETY: `starter` was a `Starter` in the sender, which runs this same module.
                let starter: Starter = unsafe { std::mem::transmute::<usize, Starter>(starter) };
                starter(&arg).map(|(node, id)| {
                    // SAFETY: the name's bytes are valid for the call.
                    unsafe { registry::put(name.as_ptr(), name.len(), node, id) };
                    Registered::Started(node, id)
                })
            }
        };
        if let Some(reply_to) = envelope.reply_to {
            reply_to.send(answer);
        }
    }
}

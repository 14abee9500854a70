//! Spawning processes without putting the spawner at risk.
//!
//! Every spawn function of the `lunatic` crate (`Process::spawn*`, `AbstractProcess::start*`)
//! `unwrap()`s the host's answer, so a spawn that fails (the node cannot reserve memory for one
//! more instance: `Cannot allocate memory`) panics the process that asked. For a process that
//! serves the whole node, such as the registrar, that is the end of the node. [`spawn`] makes the
//! same host call and returns the failure, with the runtime's own reason, as a [`SpawnError`].
//!
//! How a process starts (the same protocol as the `lunatic` crate, which the host expects): the
//! host calls the module's exported `_lunatic_spawn_by_index_<version>(function, arg)`, which
//! calls `function(arg)`. Here `function` is `trampoline::<C>` and `arg` the entry point; the
//! trampoline takes the captured value from the first message of its mailbox (sent by [`spawn`]
//! before it returns) and calls the entry point with it. Every process of a node runs the same
//! module, so a function pointer means the same function in every process.

use std::fmt;

use lunatic::Tag;
use serde::{de::DeserializeOwned, Serialize};

pub use super::host::Named;
use super::host::{self, Received};

/// The entry point the host calls in a new process; exported by the `lunatic` crate (0.14.1,
/// pinned by the workspace), whose version is part of the name.
const SPAWN_EXPORT: &str = "_lunatic_spawn_by_index_0.14.1";
/// The tag of the message that carries a new process' captured value. A named process can be
/// sent requests as soon as it is registered, before its capture arrives, so the trampoline waits
/// for this tag only. The top byte (0x7F) is no handler number (those are below 64) and
/// `Tag::new()` counters stay far below 2^56.
const CAPTURE_TAG: i64 = (0x7F << 56) | 0x5357_524D;

/// How long a new process waits for its captured value before it gives up and ends.
const CAPTURE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A process that could not be spawned, with the runtime's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    /// What the runtime said, such as `Cannot allocate memory (os error 12)`.
    pub reason: String,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the node could not spawn a process: {}", self.reason)
    }
}

impl std::error::Error for SpawnError {}

/// Spawns a process on this node that runs `entry(capture)`; returns its id.
pub fn spawn<C>(capture: C, entry: fn(C)) -> Result<u64, SpawnError>
where
    C: Serialize + DeserializeOwned,
{
    spawn_inner(capture, entry, None)
}

/// As [`spawn`], linked to the caller with `tag`: if either ends abnormally, the other gets a
/// link death carrying `tag` (a message if it turned `die_when_link_dies` off, else its end too).
pub fn spawn_linked<C>(capture: C, entry: fn(C), tag: Tag) -> Result<u64, SpawnError>
where
    C: Serialize + DeserializeOwned,
{
    spawn_inner(capture, entry, Some(tag))
}

/// Spawns `entry(capture)` registered under `name`, in one atomic step with the lookup: of many
/// processes that try one name at once, exactly one spawns. Lunatic never forgets a name, so a
/// name held by a dead process is `Found` too.
pub fn spawn_named<C>(name: &str, capture: C, entry: fn(C)) -> Result<Named, SpawnError>
where
    C: Serialize + DeserializeOwned,
{
    match host::spawn_named(name, SPAWN_EXPORT, &entry_params::<C>(entry)) {
        Ok(Named::Started(id)) => send_capture(id, &capture).map(|()| Named::Started(id)),
        Ok(found @ Named::Found(_)) => Ok(found),
        Err(reason) => Err(SpawnError { reason }),
    }
}

/// The host's parameters for a new process: the trampoline and the entry point.
fn entry_params<C>(entry: fn(C)) -> Vec<u8>
where
    C: Serialize + DeserializeOwned,
{
    let mut params = Vec::with_capacity(2 * 17);
    for value in [
        trampoline::<C> as *const () as usize,
        entry as *const () as usize,
    ] {
        // The host's parameter encoding: a value type byte (0x7F = i32), then 16 bytes LE.
        params.push(0x7F);
        params.extend((value as u32 as u128).to_le_bytes());
    }
    params
}

fn spawn_inner<C>(capture: C, entry: fn(C), link: Option<Tag>) -> Result<u64, SpawnError>
where
    C: Serialize + DeserializeOwned,
{
    let link = link.map_or(0, |tag| tag.id());
    let id = host::spawn(link, SPAWN_EXPORT, &entry_params::<C>(entry))
        .map_err(|reason| SpawnError { reason })?;
    send_capture(id, &capture).map(|()| id)
}

/// Sends a new process its captured value, the first message its trampoline reads.
fn send_capture<C>(id: u64, capture: &C) -> Result<(), SpawnError>
where
    C: Serialize + DeserializeOwned,
{
    host::send(id, CAPTURE_TAG, capture).map_err(|err| {
        host::kill(id);
        SpawnError {
            reason: format!("the new process' argument does not encode: {err}"),
        }
    })
}

/// Runs first in every process spawned here: takes the captured value, calls the entry.
fn trampoline<C>(entry: i32)
where
    C: Serialize + DeserializeOwned,
{
    // SAFETY: `entry` was a `fn(C)` in the spawner, which runs this same module (see the module
    // docs): the one transmute of a function pointer in swarm.
    let entry: fn(C) = unsafe { std::mem::transmute::<usize, fn(C)>(entry as u32 as usize) };
    // The spawner sends the capture right after the spawn; if it was killed in between, nothing
    // will come: do not wait for ever (a named process would hold its name, silent, for good).
    if host::receive(&[CAPTURE_TAG], Some(CAPTURE_WAIT)) != Received::Data {
        return;
    }
    match host::decode::<C>() {
        Ok(capture) => entry(capture),
        Err(err) => eprintln!("swarm: a new process could not read its argument: {err}"),
    }
}

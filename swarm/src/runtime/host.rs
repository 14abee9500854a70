//! Every call swarm makes into the Lunatic host, behind one safe function each.
//!
//! The host API is a set of `extern "C"` functions (`lunatic::host::api`). Calling them is
//! `unsafe` for two reasons only, and both are dealt with here, once:
//!
//! - **Pointers.** Functions that take a pointer and a length read or write guest memory; each
//!   wrapper passes a slice or a local that lives for the duration of the call, with its own
//!   length, and the host never keeps the pointer.
//! - **The message scratch area.** A process builds one outgoing message at a time
//!   (`create_data`, then `write_data`, then `send`) and reads the message it last received
//!   (`read_data`, `get_tag`). The wrappers below keep each sequence whole: [`send`] and
//!   [`send_receive`] create, fill and send in one call, and the readers are only meaningful right
//!   after [`receive`] said a data message arrived, which is how every caller uses them.
//!
//! Nothing else in swarm calls `lunatic::host::api` directly.

use std::cell::Cell;
use std::time::Duration;

use lunatic::host::api::{error, message, process, registry};
use lunatic::serializer::{CanSerialize, DecodeError, EncodeError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::wire::Wire;

/// The address of a process: its node and its id there. Encodes as Lunatic's own `Process` does
/// (two `u64`s), so it can stand for one in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pid {
    /// The node the process runs on.
    pub node: u64,
    /// The process' id on that node.
    pub id: u64,
}

impl Pid {
    /// A process of this node.
    pub fn local(id: u64) -> Pid {
        Pid {
            node: this().node,
            id,
        }
    }

    /// Whether the process is running (swarm's processes are all on this node).
    pub fn exists(self) -> bool {
        exists(self.id)
    }
}

/// What [`receive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A data message: read it with [`tag`] and [`decode`].
    Data,
    /// A linked process died (this process turned `die_when_link_dies` off); [`tag`] is the
    /// link's tag.
    LinkDied,
    /// A monitored process ended; [`sender`] is its id.
    ProcessDied,
    /// Nothing arrived in time.
    TimedOut,
}

impl Received {
    fn from_code(code: u32) -> Received {
        match code {
            0 => Received::Data,
            1 => Received::LinkDied,
            2 => Received::ProcessDied,
            _ => Received::TimedOut,
        }
    }
}

thread_local! {
    /// This process' address: asked of the host once (a Lunatic process is single-threaded).
    static THIS: Cell<Option<Pid>> = const { Cell::new(None) };
}

/// The address of the current process.
pub fn this() -> Pid {
    THIS.with(|this| {
        this.get().unwrap_or_else(|| {
            // SAFETY: plain queries of the current process, no pointers.
            let pid = unsafe {
                Pid {
                    node: lunatic::host::api::distributed::node_id(),
                    id: process::process_id(),
                }
            };
            this.set(Some(pid));
            pid
        })
    })
}

/// Whether the process `id` of this node is running.
pub fn exists(id: u64) -> bool {
    // SAFETY: a plain query of the process table.
    unsafe { process::exists(id) != 0 }
}

/// Ends the process `id` of this node at once, as a crash would (its links see a failure).
pub fn kill(id: u64) {
    // SAFETY: a plain signal; a process that no longer exists is ignored.
    unsafe { process::kill(id) }
}

/// Asks to be told (a [`Received::ProcessDied`]) when the process `id` ends. Nothing comes if it
/// has already ended: check [`exists`] after.
pub fn monitor(id: u64) {
    // SAFETY: a plain signal.
    unsafe { process::monitor(id) }
}

/// Stops the notices asked for with [`monitor`].
pub fn stop_monitoring(id: u64) {
    // SAFETY: a plain signal.
    unsafe { process::stop_monitoring(id) }
}

/// Links this process with `id`: if either ends abnormally, the other gets a link death with
/// `tag` (or ends too; see [`die_when_link_dies`]). A process that no longer exists gives a link
/// death at once.
pub fn link(tag: i64, id: u64) {
    // SAFETY: a plain signal.
    unsafe { process::link(tag, id) }
}

/// Removes the link with `id`.
pub fn unlink(id: u64) {
    // SAFETY: a plain signal.
    unsafe { process::unlink(id) }
}

/// Whether the death of a linked process ends this one too (the default) or arrives as a
/// [`Received::LinkDied`] message.
pub fn die_when_link_dies(die: bool) {
    // SAFETY: a flag of this process.
    unsafe { process::die_when_link_dies(u32::from(die)) }
}

/// Waits for the next message whose tag is one of `tags` (any message if `tags` is empty), at
/// most `timeout` (for ever with `None`).
pub fn receive(tags: &[i64], timeout: Option<Duration>) -> Received {
    // SAFETY: `tags` is valid for its length during the call; the host copies it.
    Received::from_code(unsafe { message::receive(tags.as_ptr(), tags.len(), millis(timeout)) })
}

/// The tag of the message [`receive`] returned last.
pub fn tag() -> i64 {
    // SAFETY: reads the current message's tag, no pointers.
    unsafe { message::get_tag() }
}

/// The process a [`Received::ProcessDied`] is about.
pub fn sender() -> u64 {
    // SAFETY: reads the current message, no pointers.
    unsafe { message::get_process_id() }
}

/// Decodes the message [`receive`] returned last.
pub fn decode<T: Serialize + DeserializeOwned>() -> Result<T, DecodeError> {
    <Wire as CanSerialize<T>>::decode()
}

/// Sends `value` to the process `to` of this node with `tag`. If `to` has ended, the runtime
/// drops the message. Nothing is sent if `value` does not encode.
pub fn send<T: Serialize>(to: u64, tag: i64, value: &T) -> Result<(), EncodeError> {
    // SAFETY: the outgoing message is created, filled and sent here, in this order.
    unsafe {
        message::create_data(tag, 0);
        super::wire::encode(value)?;
        message::send(to);
    }
    Ok(())
}

/// Sends a message that is all tag: no data (the receiver reads what it needs from [`tag`]).
pub fn send_tag(to: u64, tag: i64) {
    // SAFETY: the outgoing message is created and sent here, in this order.
    unsafe {
        message::create_data(tag, 0);
        message::send(to);
    }
}

/// Sends `bytes` as they are (nothing is encoded) to the process `to` of this node with `tag`;
/// the receiver takes them with [`read_into`]. If `to` has ended, the runtime drops the message.
pub fn send_bytes(to: u64, tag: i64, bytes: &[u8]) {
    // SAFETY: the outgoing message is created, filled and sent here, in this order.
    unsafe { message::create_data(tag, bytes.len() as u64) };
    if !bytes.is_empty() {
        write_data(bytes);
    }
    // SAFETY: sends the message created just above.
    unsafe { message::send(to) };
}

/// Appends the data of the message [`receive`] returned last to `out`, as it is (for messages
/// sent with [`send_bytes`]).
pub fn read_into(out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + data_size(), 0);
    let read = read_data(&mut out[start..]);
    out.truncate(start + read);
}

/// Sends `value` as [`send`] does, but `delay` from now (a host timer); returns the timer, for
/// [`cancel_timer`].
pub fn send_after<T: Serialize>(
    to: u64,
    tag: i64,
    value: &T,
    delay: Duration,
) -> Result<u64, EncodeError> {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    // SAFETY: as in `send`; the timer takes the message created here.
    unsafe {
        message::create_data(tag, 0);
        super::wire::encode(value)?;
        Ok(lunatic::host::api::timer::send_after(to, millis))
    }
}

/// Cancels a timer of [`send_after`] (nothing happens if it has fired).
pub fn cancel_timer(timer: u64) {
    // SAFETY: a plain request to the host; an unknown id is ignored.
    unsafe {
        lunatic::host::api::timer::cancel_timer(timer);
    }
}

/// Sends `value` as [`send`] does and waits for a message tagged `wait_tag`, in one host call
/// (so the answer cannot slip past between the two).
pub fn send_receive<T: Serialize>(
    to: u64,
    tag: i64,
    value: &T,
    wait_tag: i64,
    timeout: Option<Duration>,
) -> Result<Received, EncodeError> {
    // SAFETY: as in `send`.
    let code = unsafe {
        message::create_data(tag, 0);
        super::wire::encode(value)?;
        message::send_receive_skip_search(to, wait_tag, millis(timeout))
    };
    Ok(Received::from_code(code))
}

/// The host's wait in milliseconds: `u64::MAX` is "for ever", and a wait is at least 1 ms (0
/// would only look).
fn millis(timeout: Option<Duration>) -> u64 {
    match timeout {
        None => u64::MAX,
        Some(wait) if wait.is_zero() => 0,
        Some(wait) => u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX - 1)
            .max(1),
    }
}

/// Writes bytes into the outgoing message (for the serializer).
pub(crate) fn write_data(bytes: &[u8]) {
    // SAFETY: `bytes` is valid for its length during the call; the host copies it.
    unsafe { message::write_data(bytes.as_ptr(), bytes.len()) };
}

/// Reads bytes of the current message into `buffer`; returns how many (for the serializer).
pub(crate) fn read_data(buffer: &mut [u8]) -> usize {
    // SAFETY: `buffer` is valid and writable for its length during the call.
    unsafe { message::read_data(buffer.as_mut_ptr(), buffer.len()) }
}

/// The size of the current message's data (for the serializer).
pub(crate) fn data_size() -> usize {
    // SAFETY: a plain query of the current message.
    unsafe { message::data_size() as usize }
}

/// What Lunatic's registry holds under `name`, alive or not.
pub fn registry_get(name: &str) -> Option<Pid> {
    let (mut node, mut id) = (0u64, 0u64);
    // SAFETY: `name` is valid for its length; the host writes one u64 to each local.
    let missing = unsafe { registry::get(name.as_ptr(), name.len(), &mut node, &mut id) };
    (missing == 0).then_some(Pid { node, id })
}

/// Registers `pid` under `name`, replacing what was there.
pub fn registry_put(name: &str, pid: Pid) {
    // SAFETY: `name` is valid for its length during the call.
    unsafe { registry::put(name.as_ptr(), name.len(), pid.node, pid.id) }
}

/// Removes `name` from the registry.
pub fn registry_remove(name: &str) {
    // SAFETY: `name` is valid for its length during the call.
    unsafe { registry::remove(name.as_ptr(), name.len()) }
}

/// Spawns a process of this module (configuration and module inherited) that starts in the
/// exported function `function` with `params` (the host's encoding), linked with `link` (0: not
/// linked). Returns its id, or the runtime's reason.
pub(crate) fn spawn(link: i64, function: &str, params: &[u8]) -> Result<u64, String> {
    let mut id = 0u64;
    // SAFETY: every pointer is valid for its length during the call; the host writes one u64.
    let failed = unsafe {
        process::spawn(
            link,
            INHERIT,
            INHERIT,
            function.as_ptr(),
            function.len(),
            params.as_ptr(),
            params.len(),
            &mut id,
        )
    };
    if failed == 0 {
        Ok(id)
    } else {
        Err(take_error(id))
    }
}

/// What `spawn_named` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A process was spawned and registered under the name.
    Started(u64),
    /// The name was taken (by a live or a dead process): nothing was spawned.
    Found(u64),
}

/// As [`spawn`], registered under `name` atomically with the lookup (Lunatic's "get or spawn").
pub(crate) fn spawn_named(name: &str, function: &str, params: &[u8]) -> Result<Named, String> {
    let (mut node, mut id) = (0u64, 0u64);
    // SAFETY: as in `spawn`; the host writes one u64 to each of `node` and `id`.
    let outcome = unsafe {
        process::get_or_spawn(
            name.as_ptr(),
            name.len(),
            0,
            INHERIT,
            INHERIT,
            function.as_ptr(),
            function.len(),
            params.as_ptr(),
            params.len(),
            &mut node,
            &mut id,
        )
    };
    match outcome {
        0 => Ok(Named::Started(id)),
        2 => Ok(Named::Found(id)),
        _ => {
            // Lunatic 0.13 registers the name even when the spawn fails, with the error's
            // resource id in place of a process id: take that entry out again, or the name would
            // point at no process (or at whatever process has that number) for good.
            if registry_get(name).map(|pid| pid.id) == Some(id) {
                registry_remove(name);
            }
            Err(take_error(id))
        }
    }
}

/// "Inherit the spawner's" for a process configuration or module id.
const INHERIT: i64 = -1;

/// The text of a host error resource, which is dropped.
fn take_error(id: u64) -> String {
    // SAFETY: `id` names an error resource of this process; the buffer has `size` bytes.
    unsafe {
        let size = error::string_size(id) as usize;
        let mut text = vec![0u8; size];
        error::to_string(id, text.as_mut_ptr());
        error::drop(id);
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Opens a TLS connection to `host:port`: TCP connect, then the TLS handshake, in one host call
/// with no time limit. The server's certificate must chain to one of `ca_pems` (each the PEM of
/// exactly one certificate), or to the runtime's built-in public roots if `ca_pems` is empty, and
/// name `host` (sent as SNI too). `Err` is the runtime's reason when the TCP connect fails.
///
/// A failed *handshake* does not come back at all: the runtime traps, which ends the calling
/// process, so call this from a process that may die (`nats::tls::dial` does).
///
/// `lunatic::net::TlsStream::connect_with_certs` cannot be used instead: in lunatic 0.14.1 it
/// passes each certificate as a `(len, ptr)` tuple where the 0.13 host reads `(ptr, len)`, so the
/// host reads the wrong memory and every handshake fails (found with a TLS-first nats-server).
pub fn tls_connect(
    host: &str,
    port: u16,
    ca_pems: &[&[u8]],
) -> Result<lunatic::net::TlsStream, String> {
    /// One certificate, laid out as the host reads it.
    #[repr(C)]
    struct HostSlice {
        ptr: u32,
        len: u32,
    }
    let slices: Vec<HostSlice> = ca_pems
        .iter()
        .map(|pem| HostSlice {
            ptr: pem.as_ptr() as u32,
            len: pem.len() as u32,
        })
        .collect();
    let mut id = 0u64;
    // SAFETY: `host`, `slices` and every PEM they point to are valid for their lengths during the
    // call (wasm32 pointers are 32 bits); the host copies them and writes one u64 to `id`. A
    // timeout of `u64::MAX` means none, so the only answers are 0 (a stream) and 1 (an error).
    let failed = unsafe {
        lunatic::host::api::networking::tls_connect(
            host.as_ptr(),
            host.len() as u32,
            u32::from(port),
            u64::MAX,
            &mut id,
            slices.as_ptr() as *const u8,
            slices.len() as u32,
        )
    };
    if failed != 0 {
        return Err(take_error(id));
    }
    // `TlsStream` has no public constructor from a host id; its `Deserialize` takes a stream
    // out of the message scratch area by index. So: start an empty outgoing message, move the
    // stream into it, and let `Deserialize` move it back under an id the new value owns.
    // SAFETY: no message is being built here (every other wrapper creates, fills and sends its
    // message within one call), and the stream id is the one the host just gave.
    let index = unsafe {
        message::create_data(0, 0);
        message::push_tls_stream(id)
    };
    lunatic::net::TlsStream::deserialize(
        serde::de::value::U64Deserializer::<serde::de::value::Error>::new(index),
    )
    .map_err(|e| e.to_string())
}

/// Sleeps for `duration` (other processes run meanwhile).
pub fn sleep(duration: Duration) {
    lunatic::sleep(duration);
}

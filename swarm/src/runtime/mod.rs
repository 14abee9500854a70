//! The agent runtime, inside Lunatic: the agent process, handles and node settings, over the
//! machinery they share (mailbox request/reply, the registry, host calls, the mailbox codec).
//!
//! Public here is what a user names: [`agent`] (the traits `#[agent]` implements, which generic
//! code bounds on), [`handle`] and [`node`]. The machinery is private, or hidden where swarm's own
//! integration tests need to reach it (they kill processes and fill a node to check that the
//! runtime survives); hidden items are not part of the API and may change in any release.

pub mod agent;
pub(crate) mod applied;
pub mod handle;
pub(crate) mod handle_serde;
// Safe wrappers of Lunatic's host calls. Hidden: not an API; the integration tests kill and probe
// processes through it. `Pid` is public at the crate root.
#[doc(hidden)]
pub mod host;
pub(crate) mod mailbox;
pub mod node;
// Spawning without putting the spawner at risk. Hidden: not an API; the integration tests fill a
// node with processes through it.
#[doc(hidden)]
pub mod process;
// The node's registry of keyed agents. Hidden: not an API; the integration tests find and kill
// the registrar through it to check that the node recovers.
#[doc(hidden)]
pub mod registry;
pub(crate) mod wire;

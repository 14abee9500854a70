//! The agent runtime, inside Lunatic: mailbox request/reply, the agent process, handles, the
//! registry and node settings.

pub mod agent;
pub mod handle;
pub(crate) mod handle_serde;
pub mod host;
pub mod mailbox;
pub mod node;
pub mod process;
pub mod registry;
pub mod wire;

//! # swarm
//!
//! Fault-tolerant swarms of agents on [Lunatic](https://lunatic.solutions): annotate a plain
//! Rust struct with `#[agent]`, its methods with `#[handler]` and its important fields with
//! `#[persist]`, and each instance runs as an isolated Lunatic process with a typed handle, state
//! that is saved before a request is acknowledged, and reloaded when the agent starts again.
//!
//! ```no_run
//! # // Agents exist only inside Lunatic: this example is compiled for wasm32-wasip1
//! # // (`cargo test -p swarm --doc --target wasm32-wasip1`) and is an empty program natively.
//! # // `no_run`: `lunatic run` exits 0 even when main panics, so running it would prove
//! # // nothing; tests/tests/runtime/requests.rs checks the same calls under Lunatic's test harness.
//! # #[cfg(target_arch = "wasm32")]
//! # mod example {
//! use swarm::prelude::*;
//!
//! #[agent(kind = "counter")]
//! pub struct Counter {
//!     #[key] name: String,
//!     #[persist] total: u64,
//! }
//!
//! #[agent]
//! impl Counter {
//!     #[handler]
//!     pub fn add(&mut self, n: u64) -> u64 {
//!         self.total += n;
//!         self.total
//!     }
//! }
//!
//! # pub fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # swarm::set_default_store(StoreConfig::memory("docs"))?;
//! let counter = Counter::get_or_start("visits")?;   // in a Lunatic process
//! assert_eq!(counter.add(2)?, 2);
//! assert_eq!(counter.add(3)?, 5);
//! # Ok(())
//! # }
//! # }
//! # fn main() {
//! # #[cfg(target_arch = "wasm32")]
//! # example::run().unwrap();
//! # }
//! ```
//!
//! A supervision tree restarts what crashes (Erlang/OTP strategies and restart policies, see
//! [`supervisor!`]):
//!
//! ```no_run
//! # // Compiled for wasm32-wasip1 like the example above.
//! # #[cfg(target_arch = "wasm32")]
//! # mod example {
//! # use swarm::prelude::*;
//! # #[agent(kind = "counter")]
//! # pub struct Counter {
//! #     #[key] name: String,
//! #     #[persist] total: u64,
//! # }
//! # #[agent]
//! # impl Counter {
//! #     #[handler]
//! #     pub fn add(&mut self, n: u64) -> u64 {
//! #         self.total += n;
//! #         self.total
//! #     }
//! # }
//! supervisor! {
//!     /// Restarts a crashed counter alone, at most 3 times in 10 s, then gives up.
//!     pub Counters: one_for_one(max_restarts = 3, within_secs = 10) {
//!         visits: Counter("visits"),
//!     }
//! }
//!
//! # pub fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # swarm::set_default_store(StoreConfig::memory("docs-supervisor"))?;
//! let counters = Counters::start()?;               // starts `visits`, and restarts it if it crashes
//! assert_eq!(counters.visits()?.add(2)?, 2);
//! # Ok(())
//! # }
//! # }
//! # fn main() {
//! # #[cfg(target_arch = "wasm32")]
//! # example::run().unwrap();
//! # }
//! ```
//!
//! What the macros generate is shown, example and expansion, in the docs of [`agent`] and
//! [`supervisor!`].
//!
//! The agent runtime (everything under `runtime`, the memory and SQLite stores) exists only when
//! building for `wasm32` (Lunatic); on the host the pure parts build and are tested natively.

#![warn(missing_docs)]
// The API's documentation is built for wasm32-wasip1 (see `[package.metadata.docs.rs]`), where
// every item exists. A native doc build lacks the Lunatic-only items (the NATS client, the
// runtime) that the NATS and cluster docs link to, so only there are those links left dangling.
#![cfg_attr(not(target_arch = "wasm32"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(all(feature = "client", not(target_arch = "wasm32")))]
pub mod client;
#[cfg(feature = "nats")]
pub mod cluster;
pub mod error;
// The functions `#[agent]` generates on a struct call these (through `__private`).
#[cfg(target_arch = "wasm32")]
mod generated;
// Read by the cluster's handles (Lunatic, `nats`) and the native clients (`client`); the unit
// tests of a plain native build check it too.
#[cfg_attr(
    not(any(
        all(target_arch = "wasm32", feature = "nats"),
        all(not(target_arch = "wasm32"), feature = "client")
    )),
    allow(dead_code)
)]
mod front_door;
pub mod key;
// swarm's own events; not an API (a public `Level::Debug` would also make rustc spell the
// `Debug` trait out in full in users' error messages).
pub(crate) mod log;
pub mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
pub mod record;
pub mod request_id;
#[cfg(target_arch = "wasm32")]
pub mod runtime;
pub mod schema;
pub mod store;
#[cfg(target_arch = "wasm32")]
pub mod supervisor;
pub mod trace;

pub use error::{CallError, CallFailure, CallTarget, StartError};
pub use key::{AgentKey, KeyError};
#[cfg(target_arch = "wasm32")]
pub use runtime::agent::Persistence;
#[cfg(target_arch = "wasm32")]
pub use runtime::handle::{AgentHandle, AgentRef, Launcher, DEFAULT_TIMEOUT};
#[cfg(target_arch = "wasm32")]
pub use runtime::host::Pid;
#[cfg(all(target_arch = "wasm32", feature = "nats"))]
pub use runtime::node::set_node_nats;
#[cfg(target_arch = "wasm32")]
pub use runtime::node::{
    default_store, node_stats, set_default_store, set_node_limits, NodeLimits, NodeStats,
};
/// Derives the JSON Schema of a type that handlers of a `#[agent(schema)]` kind take or answer
/// (see [`schema`]); without a direct `schemars` dependency, add
/// `#[schemars(crate = "swarm::schemars")]` next to it.
pub use schema::JsonSchema;
/// The JSON Schema generator behind [`schema`], for `#[schemars(crate = "swarm::schemars")]`.
pub use schemars;
pub use store::{Store, StoreConfig, StoreError};
pub use swarm_macros::{agent, handler, migrate, supervisor};

/// Everything an agent author needs, in one import.
pub mod prelude {
    pub use crate::error::{CallError, CallFailure, StartError};
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::handle::AgentHandle;
    pub use crate::store::StoreConfig;
    #[cfg(target_arch = "wasm32")]
    pub use crate::supervisor::{PoolRef, SupervisorRef};
    pub use swarm_macros::{agent, handler, migrate, supervisor};
}

/// Not public API: the paths generated code uses, so users need no direct dependency on
/// lunatic or serde, and the runtime can change underneath them.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{CallError, StartError};
    #[cfg(target_arch = "wasm32")]
    pub use crate::generated::{keyed, unkeyed};
    pub use crate::record;
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::agent::{
        init, serve, terminate, Agent, AgentArg, AgentBehavior, AgentCell, AgentState, HandlerInfo,
        IntoHookResult, Persistence, SubjectBinding,
    };
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::handle::{AgentHandle, AgentRef, Launcher};
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::handle_serde::{deserialize_handle, serialize_handle};
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::mailbox::{Envelope, ReplyTo};
    #[cfg(target_arch = "wasm32")]
    pub use crate::runtime::wire::Wire;
    pub use crate::schema::{HandlerSchemas, SchemaSet};
    #[cfg(target_arch = "wasm32")]
    pub use crate::supervisor;
    // `core`/`std` items too, so that a user's own `Option`, `String` or `Result` in scope can
    // never change what generated code means.
    pub use ::core::assert;
    pub use ::core::clone::Clone;
    pub use ::core::cmp::{Eq, PartialEq};
    pub use ::core::convert::Into;
    pub use ::core::default::Default;
    pub use ::core::fmt::{self, Debug};
    pub use ::core::marker::Copy;
    pub use ::core::marker::PhantomData;
    pub use ::core::option::Option;
    pub use ::core::result::Result;
    pub use ::core::time::Duration;
    pub use ::core::unreachable;
    pub use ::std::string::String;
    pub use ::std::vec::Vec;
    #[cfg(target_arch = "wasm32")]
    pub use lunatic;
    pub use serde;

    /// The native client's pieces (feature `client`).
    #[cfg(all(feature = "client", not(target_arch = "wasm32")))]
    pub mod client {
        pub use crate::client::{AgentClient, Client, KindClient, TypedClient};
    }

    /// What `#[agent]` on a struct generates for a native build: its typed client with the
    /// `client` feature, else the one error that says how agents are built (once per agent, at
    /// its `#[agent]`, instead of a cascade of missing runtime items).
    #[cfg(all(feature = "client", not(target_arch = "wasm32")))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __swarm_native_agent {
        ($($item:tt)*) => { $($item)* };
    }

    /// What `#[agent]` on a struct generates for a native build without the `client` feature.
    #[cfg(not(all(feature = "client", not(target_arch = "wasm32"))))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __swarm_native_agent {
        ($($item:tt)*) => {
            ::core::compile_error!(
                "swarm agents run inside Lunatic: build this crate for wasm32-wasip1 \
                 (`cargo run --target wasm32-wasip1` with Lunatic as the runner; `swarm new \
                 NAME` makes a crate set up for it), or enable swarm's `client` feature (`swarm = { version = \"0.1\", \
                 features = [\"client\"] }`) to call these agents from a native program"
            );
        };
    }

    /// What `#[agent]` on an impl block generates for a native build: the typed client's methods
    /// with the `client` feature, else nothing (the struct's `#[agent]` reports the error).
    #[cfg(all(feature = "client", not(target_arch = "wasm32")))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __swarm_native_handlers {
        ($($item:tt)*) => { $($item)* };
    }

    /// What `#[agent]` on an impl block generates natively without the `client` feature.
    #[cfg(not(all(feature = "client", not(target_arch = "wasm32"))))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __swarm_native_handlers {
        ($($item:tt)*) => {};
    }

    pub use crate::{
        __swarm_native_agent as native_agent, __swarm_native_handlers as native_handlers,
    };
}

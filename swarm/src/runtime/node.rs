//! Node-wide settings, held by one process per node so that every process sees the same ones.

use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use serde::{Deserialize, Serialize};

use super::mailbox::{call, Envelope};
use super::wire::Wire;
use crate::store::{StoreConfig, StoreError};

const NAME: &str = "swarm/node-config";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the store that agents started from now on keep their `#[persist]` fields in, unless
/// they are started with `launcher().store(..)`. Agents already running keep theirs.
///
/// Until this is called, the node uses [`StoreConfig::default_for_node`].
pub fn set_default_store(store: StoreConfig) -> Result<(), StoreError> {
    let unavailable = |reason: String| StoreError::Config(format!("node settings: {reason}"));
    // Lunatic's atomic "get or spawn": the settings process runs no user code and never stops.
    let settings = match Settings::start_as(&NAME, store.clone()) {
        Ok(settings) => settings,
        Err(StartupError::NameAlreadyRegistered(settings)) => settings,
        Err(err) => return Err(unavailable(format!("{err:?}"))),
    };
    let id = settings.id();
    match call::<Op, StoreConfig>(id, Op::Set(store), Some(TIMEOUT)) {
        Ok(_) => Ok(()),
        Err(err) => Err(unavailable(format!("{err:?}"))),
    }
}

/// The store agents use unless told otherwise (see [`set_default_store`]).
pub fn default_store() -> StoreConfig {
    let Some(settings) = ProcessRef::<Settings>::lookup(&NAME) else {
        return StoreConfig::default_for_node();
    };
    let id = settings.id();
    call::<Op, StoreConfig>(id, Op::Get, Some(TIMEOUT))
        .unwrap_or_else(|_| StoreConfig::default_for_node())
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Get,
    Set(StoreConfig),
}

struct Settings;

impl AbstractProcess for Settings {
    type State = StoreConfig;
    type Serializer = Wire;
    type Arg = StoreConfig;
    type Handlers = (lunatic::ap::handlers::Message<Envelope<Op>>,);
    type StartupError = ();

    fn init(_: Config<Self>, store: StoreConfig) -> Result<StoreConfig, ()> {
        Ok(store)
    }
}

impl MessageHandler<Envelope<Op>> for Settings {
    fn handle(mut state: State<Self>, envelope: Envelope<Op>) {
        if let Op::Set(store) = envelope.message {
            *state = store;
        }
        if let Some(reply_to) = envelope.reply_to {
            reply_to.send(state.clone());
        }
    }
}

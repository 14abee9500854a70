//! Node-wide settings, held by one process per node so that every process sees the same ones.

use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use lunatic::serializer::Bincode;
use serde::{Deserialize, Serialize};

use super::mailbox::{request_envelope, wait_reply, Envelope};
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
    let (envelope, reply_to) = request_envelope(Op::Set(store));
    settings.send(envelope);
    match wait_reply::<StoreConfig>(reply_to, id, Some(TIMEOUT)) {
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
    let (envelope, reply_to) = request_envelope(Op::Get);
    settings.send(envelope);
    wait_reply::<StoreConfig>(reply_to, id, Some(TIMEOUT))
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
    type Serializer = Bincode;
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

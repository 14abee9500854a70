//! Store processes: the memory and SQLite stores keep their data (or their database connection)
//! in one process per store on the node, and agents reach them with requests. One process per
//! store is what lets many agent processes share records, and it serializes SQLite writes the way
//! SQLite wants them anyway.

use std::time::Duration;

use lunatic::ap::{AbstractProcess, Config, MessageHandler, ProcessRef, StartupError, State};
use serde::{Deserialize, Serialize};

use super::{validate_prefix, validate_storage_key, Store, StoreError};
use crate::runtime::mailbox::{call, Envelope, WaitError};
use crate::runtime::wire::Wire;

/// How long an agent waits for its store before giving up on an operation.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// One store operation, sent to a store process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StoreOp {
    Get(String),
    Put(String, Vec<u8>),
    Delete(String),
    List(String),
}

/// The answer to a [`StoreOp`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StoreAnswer {
    Value(Option<Vec<u8>>),
    Done,
    Keys(Vec<String>),
}

/// What a store process does with operations. `open` runs inside the new process.
pub(crate) trait Backend: Sized + 'static {
    /// Name used in errors: `memory`, `sqlite`.
    const NAME: &'static str;
    /// Largest value this backend accepts, in bytes.
    const MAX_VALUE_LEN: usize;
    /// What the process needs to open the backend.
    type Arg: Serialize + for<'de> Deserialize<'de> + 'static;
    fn open(arg: Self::Arg) -> Result<Self, StoreError>;
    fn apply(&mut self, op: StoreOp) -> Result<StoreAnswer, StoreError>;
}

/// The process that owns one backend.
pub(crate) struct StoreProcess<B>(B);

impl<B: Backend> AbstractProcess for StoreProcess<B> {
    type State = B;
    type Serializer = Wire;
    type Arg = B::Arg;
    type Handlers = (lunatic::ap::handlers::Message<Envelope<StoreOp>>,);
    type StartupError = StoreError;

    fn init(_: Config<Self>, arg: B::Arg) -> Result<B, StoreError> {
        B::open(arg)
    }
}

impl<B: Backend> MessageHandler<Envelope<StoreOp>> for StoreProcess<B> {
    fn handle(mut state: State<Self>, envelope: Envelope<StoreOp>) {
        let answer: Result<StoreAnswer, StoreError> = state.apply(envelope.message);
        if let Some(reply_to) = envelope.reply_to {
            reply_to.send(answer);
        }
    }
}

/// A client of a store process, found (or started) by name.
pub(crate) struct StoreClient<B: Backend> {
    process: ProcessRef<StoreProcess<B>>,
}

impl<B: Backend> std::fmt::Debug for StoreClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} store process {}", B::NAME, self.process.id())
    }
}

impl<B: Backend> Clone for StoreClient<B> {
    fn clone(&self) -> Self {
        StoreClient {
            process: self.process,
        }
    }
}

impl<B: Backend> StoreClient<B> {
    /// The store process registered as `name` on this node, started with `arg` if there is none.
    ///
    /// This uses Lunatic's own atomic "get or spawn" rather than swarm's registrar: agents open
    /// their store while the registrar is busy starting them, so going through it would deadlock.
    /// Store processes run no user code and do not crash; if one has stopped anyway, its store
    /// reports that instead of silently starting an empty one.
    pub(crate) fn get_or_start(name: &str, arg: B::Arg) -> Result<Self, StoreError> {
        match StoreProcess::<B>::start_as(&name, arg) {
            Ok(process) => Ok(StoreClient { process }),
            Err(StartupError::NameAlreadyRegistered(process)) if process.is_alive() => {
                Ok(StoreClient { process })
            }
            Err(StartupError::NameAlreadyRegistered(_)) => Err(StoreError::backend(
                B::NAME,
                format!(
                    "the store process {name:?} has stopped; restart the node to reopen the store"
                ),
            )),
            Err(StartupError::Custom(err)) => Err(err),
            Err(StartupError::InitPanicked) => Err(StoreError::backend(
                B::NAME,
                format!("the store process {name:?} panicked while opening"),
            )),
        }
    }

    fn call(&self, op: StoreOp) -> Result<StoreAnswer, StoreError> {
        match call::<StoreOp, Result<StoreAnswer, StoreError>>(
            self.process.id(),
            op,
            Some(STORE_TIMEOUT),
        ) {
            Ok(answer) => answer,
            Err(WaitError::TimedOut(after)) => Err(StoreError::backend(
                B::NAME,
                format!("the store process did not answer within {after:?}"),
            )),
            Err(WaitError::ServerGone) => Err(StoreError::backend(
                B::NAME,
                "the store process stopped while serving the request",
            )),
            Err(WaitError::Failed(failure)) => {
                Err(StoreError::backend(B::NAME, format!("{failure:?}")))
            }
            Err(WaitError::Undecodable(err)) => Err(StoreError::backend(B::NAME, err)),
        }
    }
}

/// Every store process answers the same operations; keys and sizes are checked here, in the
/// caller, before anything is sent.
impl<B: Backend> Store for StoreClient<B> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_storage_key(key)?;
        match self.call(StoreOp::Get(key.to_owned()))? {
            StoreAnswer::Value(value) => Ok(value),
            other => Err(unexpected::<B>(other)),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        if value.len() > B::MAX_VALUE_LEN {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size: value.len(),
                max: B::MAX_VALUE_LEN,
            });
        }
        match self.call(StoreOp::Put(key.to_owned(), value.to_vec()))? {
            StoreAnswer::Done => Ok(()),
            other => Err(unexpected::<B>(other)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        match self.call(StoreOp::Delete(key.to_owned()))? {
            StoreAnswer::Done => Ok(()),
            other => Err(unexpected::<B>(other)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        match self.call(StoreOp::List(prefix.to_owned()))? {
            StoreAnswer::Keys(keys) => Ok(keys),
            other => Err(unexpected::<B>(other)),
        }
    }
}

fn unexpected<B: Backend>(answer: StoreAnswer) -> StoreError {
    StoreError::backend(B::NAME, format!("unexpected answer {answer:?}"))
}

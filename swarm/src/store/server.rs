//! Store processes: the memory and SQLite stores keep their data (or their database connection)
//! in one process per store on the node, and agents reach them with requests; the file store
//! sends its writes to one such process per directory (it reads the record files directly). One
//! process per store is what lets many agent processes share records and commits, and it
//! serializes SQLite writes the way SQLite wants them anyway.
//!
//! **Group commit.** When a store process takes a `put`, it also takes every `put` already
//! waiting in its mailbox and applies them together ([`Backend::apply_puts`]: one SQLite
//! transaction, or one append to the file store's journal, so one fsync), then answers each caller. Every caller is still answered only after
//! its write is durable, as with one write at a time, but a hundred agents saving at once share
//! one fsync instead of queueing for a hundred. A lone write waits for nothing: batches form only
//! from writes that were queued anyway.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{validate_prefix, validate_storage_key, Store, StoreError};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{
    call, decode_envelope, reply_slot, wait_for, Envelope, ReplyTo, WaitError, ENVELOPE_HANDLER_ID,
};
use crate::runtime::process::{spawn_named, Named};

/// How long an agent waits for its store before giving up on an operation.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many writes go into one commit (bounds a transaction and the memory it holds).
const MAX_BATCH: usize = 1024;
/// A commit stops taking writes once their values pass this many bytes.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// The tag of the marker a store process sends itself to find the end of what is queued (its top
/// byte is no handler number).
const END_OF_QUEUE: i64 = (0x7E << 56) | 0x0045_4E44;

/// One store operation, sent to a store process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum StoreOp {
    Get(String),
    Put(String, Vec<u8>),
    Delete(String),
    List(String),
    /// Answered `Done` once every operation sent before it is over (the store process serves its
    /// mailbox in order): how an opener waits for a store process's start (the file store's
    /// recovery) that another opener began. Never reaches a backend.
    Barrier,
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
    /// Writes every `(key, value)`, durably, as one unit: all or none. By default one at a time.
    fn apply_puts(
        &mut self,
        puts: &mut dyn Iterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        for (key, value) in puts {
            self.apply(StoreOp::Put(key, value))?;
        }
        Ok(())
    }
}

/// A client of a store process, found (or started) by name.
pub(crate) struct StoreClient<B: Backend> {
    process: u64,
    backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: Backend> std::fmt::Debug for StoreClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} store process {}", B::NAME, self.process)
    }
}

impl<B: Backend> Clone for StoreClient<B> {
    fn clone(&self) -> Self {
        StoreClient {
            process: self.process,
            backend: std::marker::PhantomData,
        }
    }
}

impl<B: Backend> StoreClient<B> {
    /// Returns once the store process has served everything sent to it before (its start
    /// included).
    pub(crate) fn barrier(&self) -> Result<(), StoreError> {
        match self.call(StoreOp::Barrier)? {
            StoreAnswer::Done => Ok(()),
            other => Err(unexpected::<B>(other)),
        }
    }

    /// The store process registered as `name` on this node, started with `arg` if there is none.
    ///
    /// This uses Lunatic's own atomic "get or spawn" rather than swarm's registrar: agents open
    /// their store while the registrar is busy starting them, so going through it would deadlock.
    /// Store processes run no user code and do not crash; if one has stopped anyway, its store
    /// reports that instead of silently starting an empty one.
    pub(crate) fn get_or_start(name: &str, arg: B::Arg) -> Result<Self, StoreError> {
        let opened = reply_slot();
        let process = match spawn_named(name, (arg, opened), run_store::<B>) {
            Ok(Named::Started(process)) => {
                // Wait for the backend to open (a database file, for SQLite).
                match wait_for::<Result<(), StoreError>>(opened, process, Some(STORE_TIMEOUT)) {
                    Ok(Ok(())) => process,
                    Ok(Err(err)) => return Err(err),
                    Err(err) => {
                        return Err(StoreError::backend(
                            B::NAME,
                            format!("the store process {name:?} did not open: {err:?}"),
                        ))
                    }
                }
            }
            Ok(Named::Found(process)) => process,
            Err(err) => return Err(StoreError::backend(B::NAME, err.to_string())),
        };
        if !host::exists(process) {
            return Err(StoreError::backend(
                B::NAME,
                format!(
                    "the store process {name:?} has stopped; restart the node to reopen the store"
                ),
            ));
        }
        Ok(StoreClient {
            process,
            backend: std::marker::PhantomData,
        })
    }

    fn call(&self, op: StoreOp) -> Result<StoreAnswer, StoreError> {
        match call::<StoreOp, Result<StoreAnswer, StoreError>>(
            self.process,
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
            Err(WaitError::Undecodable(err) | WaitError::Unsendable(err)) => {
                Err(StoreError::backend(B::NAME, err))
            }
        }
    }
}

/// The store process: opens the backend, says so, then serves operations with group commit.
fn run_store<B: Backend>((arg, opened): (B::Arg, ReplyTo)) {
    let mut backend = match B::open(arg) {
        Ok(backend) => backend,
        Err(err) => return opened.send::<Result<(), StoreError>>(Err(err)),
    };
    opened.send::<Result<(), StoreError>>(Ok(()));
    // An operation taken from the mailbox while gathering a batch, served after it.
    let mut next: Option<Envelope<StoreOp>> = None;
    loop {
        let envelope = match next.take() {
            Some(envelope) => envelope,
            None => match receive_op() {
                Queued::Op(envelope) => envelope,
                // A marker left from a gathering that stopped early.
                Queued::End => continue,
            },
        };
        let Envelope { message, reply_to } = envelope;
        let StoreOp::Put(key, value) = message else {
            let answer = match message {
                StoreOp::Barrier => Ok(StoreAnswer::Done),
                other => backend.apply(other),
            };
            if let Some(reply_to) = reply_to {
                reply_to.send(answer);
            }
            continue;
        };
        // Gather the puts already waiting, up to the first other operation. What is waiting ends
        // at a marker this process sends itself now: a receive with a zero timeout would tell
        // too, but the host rounds its timer up to the next millisecond tick, and a lone write
        // would pay that every time.
        host::send_tag(host::this().id, END_OF_QUEUE);
        let mut bytes = value.len();
        let mut batch = vec![(key, value, reply_to)];
        loop {
            match receive_op() {
                Queued::Op(Envelope {
                    message: StoreOp::Put(key, value),
                    reply_to,
                }) if batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES => {
                    bytes += value.len();
                    batch.push((key, value, reply_to));
                }
                Queued::Op(other) => {
                    next = Some(other);
                    // The marker is still queued: `receive_op` passes over it later.
                    break;
                }
                Queued::End => break,
            }
        }
        let waiting: Vec<Option<ReplyTo>> =
            batch.iter().map(|(_, _, reply_to)| *reply_to).collect();
        let outcome =
            backend.apply_puts(&mut batch.into_iter().map(|(key, value, _)| (key, value)));
        for reply_to in waiting.into_iter().flatten() {
            reply_to.send::<Result<StoreAnswer, StoreError>>(
                outcome.clone().map(|()| StoreAnswer::Done),
            );
        }
    }
}

/// What a store process finds in its mailbox.
enum Queued {
    Op(Envelope<StoreOp>),
    /// Its own [`END_OF_QUEUE`] marker.
    End,
}

/// The next operation in the mailbox, or the marker; waits for one.
fn receive_op() -> Queued {
    loop {
        if host::receive(&[], None) != Received::Data {
            continue;
        }
        let tag = host::tag();
        if tag == END_OF_QUEUE {
            return Queued::End;
        }
        if tag >> 56 != ENVELOPE_HANDLER_ID {
            continue;
        }
        match decode_envelope::<StoreOp>(tag) {
            Ok(envelope) => return Queued::Op(envelope),
            Err(err) => eprintln!("swarm: a store process dropped a message: {err}"),
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

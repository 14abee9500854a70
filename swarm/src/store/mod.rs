//! Stores: where agents keep their `#[persist]` state (the swarm's long-term context).
//!
//! One trait, several backends, all usable from inside a Lunatic process:
//! - [`StoreConfig::Memory`]: held by a store process on this node; survives agent crashes, not a
//!   node restart. For tests and caches.
//! - [`StoreConfig::File`]: one file per record, replaced atomically (temp file, rename); inside
//!   Lunatic the saves that arrive together share one fsync of the directory's journal (group
//!   commit, see `file` and `journal`). The embedded default.
//! - [`StoreConfig::Sqlite`]: one SQLite database in WAL mode through Lunatic's host SQLite API,
//!   owned by one store process per database.
//! - [`StoreConfig::NatsKv`]: a JetStream key-value bucket (cargo feature `nats`), every write a
//!   compare-and-set acknowledged by JetStream; the store of a cluster, where it also fences a
//!   stale holder of a key (see `nats_kv`).
//!
//! A store is described by a [`StoreConfig`] (plain data, so it can be sent to the agent's
//! process when it starts) and opened inside that process with `StoreConfig::open` (on wasm32).
//!
//! Storage keys are `/`-separated segments of `A-Z a-z 0-9 _ -` (an agent's record lives at
//! `<kind>/<key>`). A key or value a store cannot hold is refused with [`StoreError`], never
//! truncated or escaped.

pub mod file;
mod journal;
#[cfg(target_arch = "wasm32")]
pub mod memory;
#[cfg(all(target_arch = "wasm32", feature = "nats"))]
pub mod nats_kv;
#[cfg(target_arch = "wasm32")]
mod server;
#[cfg(target_arch = "wasm32")]
pub mod sqlite;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::key::is_key_char;

/// Longest storage key accepted, in bytes.
pub const MAX_STORAGE_KEY_LEN: usize = 512;

/// A key-value store for agent records.
///
/// Every method is blocking. A successful [`Store::put`] is durable as far as the backend can
/// make it (for the file and SQLite stores: on disk, fsynced), which is what lets an agent
/// acknowledge a write only after it is saved.
pub trait Store {
    /// Reads the record at `key`, `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads the record at `key` for the agent that is about to serve it. Stores that can fence
    /// (NATS KV) also make sure that no earlier holder of the key can write it any more; for the
    /// others this is [`Store::get`].
    fn load_as_owner(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key)
    }
    /// Writes `value` at `key`, replacing any record there.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes the record at `key`; removing a missing record is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Lists the keys that start with `prefix`, in ascending order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    /// The storage key cannot be held by any store.
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value is larger than this store accepts.
    #[error("value for {key:?} is {size} bytes; this store holds at most {max}")]
    TooLarge {
        /// The key being written.
        key: String,
        /// Size of the refused value.
        size: usize,
        /// The store's limit.
        max: usize,
    },
    /// The store's configuration is not usable (for example a SQLite file outside its directory).
    #[error("store configuration: {0}")]
    Config(String),
    /// Someone else wrote the record since this holder last read or wrote it (a compare-and-set
    /// that failed): this holder is stale, for example an agent that another node of the cluster
    /// has taken over. Nothing was written.
    #[error("record {key:?} was taken over: {reason}")]
    Conflict {
        /// The key.
        key: String,
        /// What happened.
        reason: String,
    },
    /// The backend failed (I/O error, SQLite error, store process gone, ...).
    #[error("{backend} store: {message}")]
    Backend {
        /// `memory`, `file` or `sqlite`.
        backend: String,
        /// What failed.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn backend(backend: &str, message: impl Into<String>) -> Self {
        StoreError::Backend {
            backend: backend.to_owned(),
            message: message.into(),
        }
    }
}

/// Checks a storage key: 1 to [`MAX_STORAGE_KEY_LEN`] bytes of `/`-separated non-empty segments
/// made of `A-Z a-z 0-9 _ -`. Keeping to this charset means every backend holds every key as is
/// (a file path, a SQLite text key, a NATS KV key), so nothing is ever escaped.
pub fn validate_storage_key(key: &str) -> Result<(), StoreError> {
    let refuse = |reason: String| {
        Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("a storage key cannot be empty".into());
    }
    if key.len() > MAX_STORAGE_KEY_LEN {
        return refuse(format!(
            "it is {} bytes long, the limit is {MAX_STORAGE_KEY_LEN}",
            key.len()
        ));
    }
    let mut offset = 0;
    for segment in key.split('/') {
        if segment.is_empty() {
            return refuse(format!("empty segment at byte {offset}"));
        }
        if let Some((at, c)) = segment.char_indices().find(|(_, c)| !is_key_char(*c)) {
            return refuse(format!(
                "character {c:?} at byte {} is not allowed (segments use A-Z a-z 0-9 _ -, separated by /)",
                offset + at
            ));
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

/// Checks a list prefix: empty (everything), or a storage key, optionally ending in `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" if prefix.is_empty() => Ok(()),
        "" => Err(StoreError::InvalidKey {
            key: prefix.into(),
            reason: "a prefix cannot be only /".into(),
        }),
        trimmed => validate_storage_key(trimmed),
    }
}

/// Which store an agent uses, as plain data: it travels to the agent's process when it starts,
/// and the process opens it with `StoreConfig::open` (on wasm32).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreConfig {
    /// Records held by a store process on this node, one per `name`.
    Memory {
        /// Stores with the same name on one node share their records.
        name: String,
    },
    /// One file per record under `dir`.
    File {
        /// The directory that holds the records (created when missing). Under Lunatic it must be
        /// inside a directory the node was granted (`lunatic run --dir`, or the working directory).
        dir: PathBuf,
    },
    /// One SQLite database file `file` inside `dir`.
    Sqlite {
        /// The directory that holds the database; the database never leaves it.
        dir: PathBuf,
        /// The database's file name: a plain name, no `/` and no `..`.
        file: String,
    },
    /// A JetStream key-value bucket, reached through the node's NATS connection (the cluster's,
    /// or the one given to `swarm::set_node_nats`); created with `replicas` copies if missing.
    NatsKv {
        /// The bucket's name (`A-Z a-z 0-9 _ -`).
        bucket: String,
        /// Copies JetStream keeps when this store creates the bucket (1 or 3 are usual).
        replicas: usize,
    },
}

impl StoreConfig {
    /// A memory store named `name`.
    pub fn memory(name: impl Into<String>) -> Self {
        StoreConfig::Memory { name: name.into() }
    }

    /// A file store in `dir`.
    pub fn file(dir: impl Into<PathBuf>) -> Self {
        StoreConfig::File { dir: dir.into() }
    }

    /// A SQLite store: database `file` inside `dir`.
    pub fn sqlite(dir: impl Into<PathBuf>, file: impl Into<String>) -> Self {
        StoreConfig::Sqlite {
            dir: dir.into(),
            file: file.into(),
        }
    }

    /// A NATS KV store in `bucket`, one copy (see [`StoreConfig::NatsKv`]).
    pub fn nats_kv(bucket: impl Into<String>) -> Self {
        StoreConfig::NatsKv {
            bucket: bucket.into(),
            replicas: 1,
        }
    }

    /// A NATS KV store in `bucket`, created with `replicas` copies (3: it survives the loss of a
    /// server of a 3-server NATS cluster).
    pub fn nats_kv_replicated(bucket: impl Into<String>, replicas: usize) -> Self {
        StoreConfig::NatsKv {
            bucket: bucket.into(),
            replicas,
        }
    }

    /// The store used when the node was not configured otherwise: files under `swarm-data` in the
    /// working directory.
    pub fn default_for_node() -> Self {
        StoreConfig::file("swarm-data")
    }

    /// Opens this store inside the current process.
    #[cfg(target_arch = "wasm32")]
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            StoreConfig::Memory { name } => Box::new(memory::MemoryStore::open(name)?),
            StoreConfig::File { dir } => Box::new(file::FileStore::open(dir)?),
            StoreConfig::Sqlite { dir, file } => Box::new(sqlite::SqliteStore::open(dir, file)?),
            #[cfg(feature = "nats")]
            StoreConfig::NatsKv { bucket, replicas } => {
                Box::new(nats_kv::NatsKvStore::open(bucket, *replicas)?)
            }
            #[cfg(not(feature = "nats"))]
            StoreConfig::NatsKv { bucket, .. } => {
                return Err(StoreError::Config(format!(
                    "the NATS KV store {bucket:?} needs swarm's cargo feature `nats`"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_segments_of_the_key_charset() {
        for ok in ["chat-room/lobby", "a", "a/b/c", "kind_1/KEY-2"] {
            assert_eq!(validate_storage_key(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "cannot be empty"),
            ("a//b", "empty segment at byte 2"),
            ("/a", "empty segment at byte 0"),
            ("a/", "empty segment at byte 2"),
            ("a/../b", "character '.' at byte 2"),
            ("a b", "character ' ' at byte 1"),
            ("a\nb", "character '\\n' at byte 1"),
        ] {
            let err = validate_storage_key(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(validate_storage_key(&"a".repeat(MAX_STORAGE_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn prefixes_may_end_in_a_slash() {
        assert_eq!(validate_prefix(""), Ok(()));
        assert_eq!(validate_prefix("chat-room/"), Ok(()));
        assert_eq!(validate_prefix("chat-room/lo"), Ok(()));
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("a//").is_err());
    }
}

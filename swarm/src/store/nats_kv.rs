//! The NATS KV store: agents' records in a JetStream key-value bucket, so that state outlives the
//! node that wrote it and any node of a cluster can take an agent over.
//!
//! **Every write is a compare-and-set** on the revision this store last read or wrote for the key
//! (JetStream's `Nats-Expected-Last-Subject-Sequence`, checked by the stream leader), and a write
//! counts as done only once JetStream has acknowledged it. So two holders of one key can never
//! silently overwrite each other: the second write fails with [`StoreError::Conflict`].
//!
//! **Fencing.** An agent opens its store in its own process and reads its record with
//! [`Store::load_as_owner`]: a read from the stream leader (a follower's copy may lag), then a
//! *fencing write* of the same bytes on that revision. From then on, any earlier holder's write
//! fails its compare-and-set, and this holder's writes succeed only while nobody fenced it in turn.
//! A write of the earlier holder that landed before the fencing write makes the fencing write fail
//! instead; the new holder reads again and keeps it. No acknowledged write is lost, and there are
//! never two writers.
//!
//! An absent record is fenced with an empty value (records are never empty), read back as `None`.

use std::cell::RefCell;
use std::collections::HashMap;

use super::{validate_prefix, validate_storage_key, Store, StoreError};
use crate::nats::{JetStream, JsError, KvBucket, KvConfig};

const NAME: &str = "nats-kv";
/// How often a fencing write is tried again when another holder's write got in between.
const FENCE_ATTEMPTS: usize = 5;

/// A NATS KV bucket as an agent's store, opened in the agent's process.
pub struct NatsKvStore {
    bucket: KvBucket,
    /// The revision this store last read or wrote, per key: what its next write expects.
    revisions: RefCell<HashMap<String, u64>>,
}

impl NatsKvStore {
    /// Opens `bucket` through the node's NATS connection, creating it (with `replicas` copies) if
    /// it does not exist.
    pub fn open(bucket: &str, replicas: usize) -> Result<NatsKvStore, StoreError> {
        let client = crate::runtime::node::nats_client().ok_or_else(|| {
            StoreError::Config(format!(
                "the NATS KV store {bucket:?} needs the node's NATS connection: join a cluster \
                 (swarm::cluster::join) or call swarm::set_node_nats first"
            ))
        })?;
        let js = JetStream::new(client);
        let bucket = match js.kv(bucket) {
            Ok(bucket) => bucket,
            Err(JsError::NoSuchBucket { .. }) => {
                let mut config = KvConfig::new(bucket);
                config.replicas = replicas;
                js.create_kv(&config).map_err(|err| js_error(bucket, err))?
            }
            Err(err) => return Err(js_error(bucket, err)),
        };
        Ok(NatsKvStore {
            bucket,
            revisions: RefCell::new(HashMap::new()),
        })
    }

    fn remember(&self, key: &str, revision: u64) {
        self.revisions.borrow_mut().insert(key.to_owned(), revision);
    }

    fn known(&self, key: &str) -> Option<u64> {
        self.revisions.borrow().get(key).copied()
    }

    /// The fencing write: the same bytes again, on the revision just read.
    fn fence(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut last_conflict = None;
        for _ in 0..FENCE_ATTEMPTS {
            let current = self
                .bucket
                .get_from_leader(key)
                .map_err(|err| self.error(key, err))?;
            let written = match &current {
                Some(entry) => self.bucket.update(key, &entry.value, entry.revision),
                None => self.bucket.create(key, b""),
            };
            match written {
                Ok(revision) => {
                    self.remember(key, revision);
                    return Ok(current
                        .map(|entry| entry.value)
                        .filter(|value| !value.is_empty()));
                }
                // Someone wrote in between (an earlier holder's last write, or a racing new one):
                // read what is there now and fence that.
                Err(err @ (JsError::WrongLastSequence { .. } | JsError::KeyExists { .. })) => {
                    last_conflict = Some(err)
                }
                Err(err) => return Err(self.error(key, err)),
            }
        }
        Err(StoreError::Conflict {
            key: key.to_owned(),
            reason: format!(
                "the fencing write lost {FENCE_ATTEMPTS} times in a row to other writers ({})",
                last_conflict.map_or_else(String::new, |err| err.to_string())
            ),
        })
    }

    fn error(&self, key: &str, err: JsError) -> StoreError {
        match err {
            JsError::WrongLastSequence { .. } | JsError::KeyExists { .. } => StoreError::Conflict {
                key: key.to_owned(),
                reason: format!(
                    "another holder wrote it since this one last did, so this one is stale and \
                     its write was refused ({err})"
                ),
            },
            // After the bucket was opened: no stream took the write. JetStream between leaders
            // (a server of the cluster died) looks like this for a few seconds.
            JsError::NoSuchBucket { .. } | JsError::NoStream { .. } => StoreError::backend(
                NAME,
                format!(
                    "bucket {:?}: no stream took the write for {key:?} (the bucket was removed, \
                     or JetStream is electing a leader); it is not known to be stored",
                    self.bucket.name()
                ),
            ),
            other => js_error(self.bucket.name(), other),
        }
    }
}

fn js_error(bucket: &str, err: JsError) -> StoreError {
    StoreError::backend(NAME, format!("bucket {bucket:?}: {err}"))
}

impl Store for NatsKvStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_storage_key(key)?;
        let entry = self
            .bucket
            .get_from_leader(key)
            .map_err(|err| self.error(key, err))?;
        Ok(entry.and_then(|entry| {
            self.remember(key, entry.revision);
            Some(entry.value).filter(|value| !value.is_empty())
        }))
    }

    fn load_as_owner(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_storage_key(key)?;
        self.fence(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        if value.is_empty() {
            // Empty is how an absent record is fenced; records are never empty.
            return Err(StoreError::backend(
                NAME,
                format!("{key:?}: an empty record"),
            ));
        }
        let written = match self.known(key) {
            Some(revision) => self.bucket.update(key, value, revision),
            None => self.bucket.create(key, value),
        };
        let revision = written.map_err(|err| self.error(key, err))?;
        self.remember(key, revision);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        let revision = self
            .bucket
            .delete(key, self.known(key))
            .map_err(|err| self.error(key, err))?;
        self.remember(key, revision);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        let mut keys: Vec<String> = self
            .bucket
            .keys()
            .map_err(|err| js_error(self.bucket.name(), err))?
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

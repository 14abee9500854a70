//! [`KvBucket`]: a key-value bucket on JetStream (ADR-8). Each key is the subject
//! `$KV.<bucket>.<key>` of the stream `KV_<bucket>`; a value is a message on it, its revision the
//! message's sequence; a delete or purge is a message with a `KV-Operation` header. Writes wait
//! for the stream's acknowledgement, and the conditional ones (`create`, `update`, a `delete` or
//! `purge` at a revision) are compare-and-set on the key's last revision
//! (`Nats-Expected-Last-Subject-Sequence`): of two writers at one revision exactly one succeeds.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::context::{DirectGetFailed, JetStream};
use super::error::JsError;
use super::kv_entry::{check_value_headers, KvEntry, KvOperation, KV_OPERATION, ROLLUP};
use super::names::{check_key, kv_prefix, kv_stream};
use super::watch::KvWatch;
use crate::nats::codec::{EncodeError, Headers};
use crate::nats::options::NatsError;

/// A KV bucket, from [`JetStream::create_kv`] or [`JetStream::kv`]. Cheap to clone and
/// serializable: send it to any process of the node. Keys are checked before anything is sent
/// ([`JsError::InvalidKey`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvBucket {
    js: JetStream,
    name: String,
    /// Whether the bucket's stream answers direct gets (every bucket made by ADR-8 clients does).
    allow_direct: bool,
}

impl KvBucket {
    pub(crate) fn new(js: JetStream, name: &str, allow_direct: bool) -> KvBucket {
        KvBucket {
            js,
            name: name.to_owned(),
            allow_direct,
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JetStream handle the bucket uses.
    pub fn jetstream(&self) -> &JetStream {
        &self.js
    }

    fn subject(&self, key: &str) -> Result<String, JsError> {
        check_key(key)?;
        Ok(format!("{}{key}", kv_prefix(&self.name)))
    }

    /// The key's value; `Ok(None)` if it has none, or its last operation is a delete or purge
    /// (or the server's marker for a value `max_age` removed). Read with a direct get when the
    /// bucket allows it: any replica answers, so a write acknowledged a moment ago may not show
    /// yet. Use [`KvBucket::get_from_leader`] to read your own writes.
    pub fn get(&self, key: &str) -> Result<Option<KvEntry>, JsError> {
        Ok(live(self.last(key, self.allow_direct)?))
    }

    /// The key's value as the stream's leader has it (`$JS.API.STREAM.MSG.GET`): every
    /// acknowledged write is there. `Ok(None)` as for [`KvBucket::get`].
    pub fn get_from_leader(&self, key: &str) -> Result<Option<KvEntry>, JsError> {
        Ok(live(self.last(key, false)?))
    }

    /// The key's last entry, deletes and purges included.
    fn last(&self, key: &str, direct: bool) -> Result<Option<KvEntry>, JsError> {
        let subject = self.subject(key)?;
        let stream = kv_stream(&self.name);
        let from_leader = || {
            self.js
                .last_from_leader(&stream, &subject)
                .map_err(|err| err.in_bucket(&self.name))
        };
        let stored = if direct {
            match self.js.direct_get(&stream, &subject) {
                Ok(found) => found,
                // The bucket is gone, or direct gets were turned off since it was opened: the
                // leader's answer tells which.
                Err(DirectGetFailed::NoResponders) => from_leader()?,
                Err(DirectGetFailed::Failed(err)) => return Err(err.in_bucket(&self.name)),
            }
        } else {
            from_leader()?
        };
        stored
            .map(|msg| KvEntry::from_stored(&self.name, &kv_prefix(&self.name), msg))
            .transpose()
    }

    /// Sets the key's value, whatever was there; returns the new revision.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<u64, JsError> {
        self.write(key, None, value, None)
    }

    /// Sets the key's value only if it has none (never written, deleted or purged); returns the
    /// revision. [`JsError::KeyExists`] with the current revision if it has one.
    pub fn create(&self, key: &str, value: &[u8]) -> Result<u64, JsError> {
        self.create_inner(key, None, value)
    }

    /// [`KvBucket::create`] with headers stored alongside the value (not KV's own:
    /// `KV-Operation`, `Nats-Rollup`, `Nats-TTL`, `Nats-Marker-Reason` are refused).
    pub fn create_with_headers(
        &self,
        key: &str,
        headers: &Headers,
        value: &[u8],
    ) -> Result<u64, JsError> {
        check_value_headers(key, headers)?;
        self.create_inner(key, Some(headers), value)
    }

    /// Sets the key's value only if its last revision is `last_revision` (compare-and-set);
    /// returns the new revision. [`JsError::WrongLastSequence`] if someone wrote since.
    pub fn update(&self, key: &str, value: &[u8], last_revision: u64) -> Result<u64, JsError> {
        self.write(key, None, value, Some(last_revision))
    }

    /// [`KvBucket::update`] with headers stored alongside the value (not KV's own, as for
    /// [`KvBucket::create_with_headers`]).
    pub fn update_with_headers(
        &self,
        key: &str,
        headers: &Headers,
        value: &[u8],
        last_revision: u64,
    ) -> Result<u64, JsError> {
        check_value_headers(key, headers)?;
        self.write(key, Some(headers), value, Some(last_revision))
    }

    /// Deletes the key, keeping its history (`KV-Operation: DEL`); with `last_revision`, only if
    /// that is its last revision. Returns the delete's revision.
    pub fn delete(&self, key: &str, last_revision: Option<u64>) -> Result<u64, JsError> {
        self.tombstone(key, KvOperation::Delete, last_revision)
    }

    /// Deletes the key and its history (`KV-Operation: PURGE` with `Nats-Rollup: sub`: the
    /// stream keeps only this message for the key); with `last_revision`, only if that is its
    /// last revision. Returns the purge's revision.
    pub fn purge(&self, key: &str, last_revision: Option<u64>) -> Result<u64, JsError> {
        self.tombstone(key, KvOperation::Purge, last_revision)
    }

    fn tombstone(
        &self,
        key: &str,
        operation: KvOperation,
        last_revision: Option<u64>,
    ) -> Result<u64, JsError> {
        let encode = |err| JsError::Nats(NatsError::Encode(EncodeError::Header(err)));
        let mut headers = Headers::new();
        headers
            .insert(KV_OPERATION, operation.header_value())
            .map_err(encode)?;
        if operation == KvOperation::Purge {
            headers.insert(ROLLUP, "sub").map_err(encode)?;
        }
        self.write(key, Some(&headers), b"", last_revision)
    }

    fn write(
        &self,
        key: &str,
        headers: Option<&Headers>,
        value: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, JsError> {
        let subject = self.subject(key)?;
        self.js
            .publish(&subject, headers, value, expected)
            .map(|ack| ack.sequence)
            .map_err(|err| err.in_bucket(&self.name))
    }

    /// Like async-nats (and ADR-8): write expecting no message on the key; if there is one,
    /// read it from the leader, and if it is a delete or purge write again expecting exactly
    /// that tombstone.
    fn create_inner(
        &self,
        key: &str,
        headers: Option<&Headers>,
        value: &[u8],
    ) -> Result<u64, JsError> {
        match self.write(key, headers, value, Some(0)) {
            Err(JsError::WrongLastSequence { .. }) => {}
            done => return done,
        }
        let tombstone = match self.last(key, false)? {
            Some(entry) if entry.operation == KvOperation::Put => {
                return Err(JsError::KeyExists {
                    key: key.to_owned(),
                    revision: entry.revision,
                })
            }
            Some(entry) => entry.revision,
            // The tombstone went meanwhile (a limit marker's lifetime ended): none is expected.
            None => 0,
        };
        match self.write(key, headers, value, Some(tombstone)) {
            Err(conflict @ JsError::WrongLastSequence { .. }) => {
                // Someone else wrote in between: report their value if it is one.
                match self.last(key, false)? {
                    Some(entry) if entry.operation == KvOperation::Put => Err(JsError::KeyExists {
                        key: key.to_owned(),
                        revision: entry.revision,
                    }),
                    _ => Err(conflict),
                }
            }
            done => done,
        }
    }

    /// The keys that have a value (not deleted or purged), sorted. Read through a watch of the
    /// last message of every key, headers only; bounded by three times the handle's timeout.
    pub fn keys(&self) -> Result<Vec<String>, JsError> {
        self.keys_matching(">")
    }

    /// The keys that hold a value now and match `filter` (as in [`KvBucket::watch`]).
    pub fn keys_matching(&self, filter: &str) -> Result<Vec<String>, JsError> {
        let limit = self.js.timeout().saturating_mul(3);
        let deadline = Instant::now() + limit;
        let mut watch = KvWatch::start(self, filter, true)?;
        let mut keys = BTreeSet::new();
        while !watch.caught_up() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JsError::TimedOut {
                    what: format!("listing the keys of KV bucket {:?}", self.name),
                    timeout: limit,
                });
            }
            if let Some(entry) = watch.next_timeout(left)? {
                if entry.operation == KvOperation::Put {
                    keys.insert(entry.key);
                } else {
                    keys.remove(&entry.key);
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Watches the keys matching `filter` (parts separated by `.`; `*` matches one part, a last
    /// `>` one or more; `>` or `""` every key). The entries arrive in the mailbox of the process
    /// that calls this (like a [`Subscription`](crate::nats::Subscription)'s messages), taken
    /// with [`KvWatch::next_timeout`]: first the current entry of each matching key (deleted
    /// ones included, as deletes), then every change, in revision order.
    pub fn watch(&self, filter: &str) -> Result<KvWatch, JsError> {
        KvWatch::start(self, filter, false)
    }
}

/// `entry` if it holds a value.
fn live(entry: Option<KvEntry>) -> Option<KvEntry> {
    entry.filter(|e| e.operation == KvOperation::Put)
}

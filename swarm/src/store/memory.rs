//! The memory store: records held by one store process per name on this node.
//!
//! It survives the crash and restart of any agent (the records are not in the agent's process),
//! not a restart of the node. Meant for tests, caches and examples.

use std::collections::BTreeMap;

use super::server::{Backend, StoreAnswer, StoreClient, StoreOp};
use super::{Store, StoreError};

/// Largest value the memory store accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// A handle to the memory store process of one name.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    client: StoreClient<MemoryBackend>,
}

impl MemoryStore {
    /// The memory store `name` of this node, started if it is not running yet.
    pub fn open(name: &str) -> Result<Self, StoreError> {
        let client = StoreClient::get_or_start(&format!("swarm/store/memory/{name}"), ())?;
        Ok(MemoryStore { client })
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.client.get(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.client.put(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.client.list(prefix)
    }
}

/// The records, inside the store process.
pub(crate) struct MemoryBackend(BTreeMap<String, Vec<u8>>);

impl Backend for MemoryBackend {
    const NAME: &'static str = "memory";
    const MAX_VALUE_LEN: usize = MAX_VALUE_LEN;
    type Arg = ();

    fn open((): ()) -> Result<Self, StoreError> {
        Ok(MemoryBackend(BTreeMap::new()))
    }

    fn apply(&mut self, op: StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(match op {
            StoreOp::Get(key) => StoreAnswer::Value(self.0.get(&key).cloned()),
            StoreOp::Put(key, value) => {
                self.0.insert(key, value);
                StoreAnswer::Done
            }
            StoreOp::Delete(key) => {
                self.0.remove(&key);
                StoreAnswer::Done
            }
            StoreOp::Barrier => StoreAnswer::Done,
            StoreOp::List(prefix) => StoreAnswer::Keys(
                self.0
                    .range(prefix.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect(),
            ),
        })
    }
}

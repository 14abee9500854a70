//! The two records the cluster keeps in KV besides agents' state, as JSON (readable with `nats kv
//! get`): a node's lease and an agent's directory entry. Decoding never trusts the bytes: a
//! corrupt entry is an error that names its key, and the caller refuses to act on it rather than
//! overwrite it.

use serde::{Deserialize, Serialize};

/// A live node, at `SWARM_NODES_<ns>/<node id>`. The server removes it when the node stops
/// renewing it (the bucket's `max_age` is the lease TTL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The name the node was configured with (several runs of one name get different ids).
    pub name: String,
    /// The KV revision of the write that started this incarnation: directory entries name it, so
    /// an entry of an earlier incarnation of the same node is recognisably dead.
    pub incarnation: u64,
    /// Agents the node holds now.
    pub agents: u64,
    /// Agents the node accepts at most.
    pub capacity: u64,
    /// The node is draining: it claims nothing, and its agents kept up are to be activated
    /// elsewhere as soon as each has stopped here (see `keeper`).
    #[serde(default)]
    pub draining: bool,
}

/// The owner of one agent, at `SWARM_DIR_<ns>/<kind>/<key>`. Claimed by compare-and-set on the
/// entry's revision, so of any number of racing nodes exactly one wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirEntry {
    /// The owning node's id.
    pub node: String,
    /// The owning node's incarnation.
    pub incarnation: u64,
    /// How many times the agent has changed owner: one more at every claim.
    pub epoch: u64,
}

/// A cluster record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("corrupt {what} at {bucket}/{key} (revision {revision}): {reason}; left as it is")]
pub struct CorruptEntry {
    /// `node entry` or `directory entry`.
    pub what: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The record's revision.
    pub revision: u64,
    /// The decoder's complaint.
    pub reason: String,
}

/// Encodes an entry (infallible for these plain types).
pub fn encode<T: Serialize>(entry: &T) -> Vec<u8> {
    serde_json::to_vec(entry).expect("cluster entries are plain JSON-able data")
}

/// Decodes an entry read from `bucket`/`key` at `revision`.
pub fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bucket: &str,
    key: &str,
    revision: u64,
    bytes: &[u8],
) -> Result<T, CorruptEntry> {
    serde_json::from_slice(bytes).map_err(|err| CorruptEntry {
        what,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        revision,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_as_json() {
        let entry = DirEntry {
            node: "n1-0a1b2c".into(),
            incarnation: 17,
            epoch: 3,
        };
        let bytes = encode(&entry);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"node":"n1-0a1b2c","incarnation":17,"epoch":3}"#
        );
        assert_eq!(
            decode::<DirEntry>("directory entry", "B", "k", 1, &bytes),
            Ok(entry)
        );
    }

    #[test]
    fn a_corrupt_entry_names_its_key() {
        let err = decode::<DirEntry>(
            "directory entry",
            "SWARM_DIR_x",
            "ledger/a",
            9,
            b"{\"node\":1",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("corrupt directory entry at SWARM_DIR_x/ledger/a (revision 9)"),
            "{text}"
        );
        assert!(
            decode::<NodeEntry>(
                "node entry",
                "B",
                "n",
                1,
                br#"{"name":"a","incarnation":1,"agents":0,"capacity":1,"x":2}"#
            )
            .is_err(),
            "unknown fields are refused"
        );
    }
}

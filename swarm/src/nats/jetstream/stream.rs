//! Streams as JetStream's API writes them in JSON: the configuration a stream is created with,
//! what `STREAM.INFO` reports, and the acknowledgement of a publish. Field names are the API's,
//! so a reader of the NATS docs finds them here; fields the server sends that swarm does not use
//! are skipped when reading.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// On disk (survives a server restart). The default.
    #[default]
    File,
    /// In memory (lost when the server stops).
    Memory,
}

/// When a stream drops messages besides its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// Only the limits (count, bytes, age, per subject) remove messages. The default.
    #[default]
    Limits,
    /// A message goes once every consumer has acknowledged it.
    Interest,
    /// A message goes once one consumer has acknowledged it.
    WorkQueue,
}

/// What a stream does when a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    /// Drop the oldest messages. The default.
    #[default]
    Old,
    /// Refuse new messages (KV buckets use this).
    New,
}

/// A stream's configuration (`$JS.API.STREAM.CREATE`). Counts and sizes use the API's `-1` for
/// "no limit"; durations are `None` for "no limit" (the API's 0).
///
/// ```
/// use swarm::nats::StreamConfig;
/// let config = StreamConfig::new("ORDERS", ["orders.>"]);
/// assert_eq!(config.max_msgs, -1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// The stream's name: no `.`, `*`, `>`, `/`, `\` or whitespace.
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The subjects whose messages the stream stores (wildcards allowed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// When messages are removed besides the limits.
    pub retention: RetentionPolicy,
    /// At most this many consumers; -1: no limit.
    pub max_consumers: i64,
    /// At most this many messages; -1: no limit.
    pub max_msgs: i64,
    /// At most this many bytes; -1: no limit.
    pub max_bytes: i64,
    /// Messages older than this are removed; `None`: kept whatever their age.
    #[serde(with = "nanos")]
    pub max_age: Option<Duration>,
    /// At most this many messages per subject (a KV bucket's history); -1: no limit.
    pub max_msgs_per_subject: i64,
    /// At most this many bytes per message; -1: no limit.
    pub max_msg_size: i32,
    /// File or memory.
    pub storage: StorageType,
    /// What happens when a limit is reached.
    pub discard: DiscardPolicy,
    /// Copies kept in a cluster (1, 3 or 5).
    pub num_replicas: usize,
    /// The window in which a repeated `Nats-Msg-Id` is recognised; `None`: the server's default
    /// (2 minutes, or `max_age` if shorter).
    #[serde(with = "nanos", skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<Duration>,
    /// Whether a message may carry `Nats-Rollup` (KV purges need it).
    pub allow_rollup_hdrs: bool,
    /// Whether deleting single messages through the API is refused.
    pub deny_delete: bool,
    /// Whether purging through the API is refused.
    pub deny_purge: bool,
    /// Whether every replica answers `$JS.API.DIRECT.GET` (reads that may lag the leader).
    pub allow_direct: bool,
    /// Whether a mirror of this stream answers direct gets too.
    pub mirror_direct: bool,
    /// Whether a message may carry its own `Nats-TTL` (server 2.11 and later).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_msg_ttl: bool,
    /// When `max_age` removes the last message of a subject, leave a marker with a
    /// `Nats-Marker-Reason` header that lives this long (server 2.11 and later, ADR-48).
    #[serde(with = "nanos", skip_serializing_if = "Option::is_none")]
    pub subject_delete_marker_ttl: Option<Duration>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: String::new(),
            description: None,
            subjects: Vec::new(),
            retention: RetentionPolicy::Limits,
            max_consumers: -1,
            max_msgs: -1,
            max_bytes: -1,
            max_age: None,
            max_msgs_per_subject: -1,
            max_msg_size: -1,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            num_replicas: 1,
            duplicate_window: None,
            allow_rollup_hdrs: false,
            deny_delete: false,
            deny_purge: false,
            allow_direct: false,
            mirror_direct: false,
            allow_msg_ttl: false,
            subject_delete_marker_ttl: None,
        }
    }
}

impl StreamConfig {
    /// A file stream named `name` on `subjects`, R1, without limits.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = S>,
    ) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            ..StreamConfig::default()
        }
    }
}

/// What `$JS.API.STREAM.INFO` (and `STREAM.CREATE`) report about a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfo {
    /// The configuration in force, with the server's defaults filled in.
    pub config: StreamConfig,
    /// When the stream was created (RFC 3339).
    pub created: String,
    /// Its messages.
    pub state: StreamState,
    /// Its replicas, when the server is part of a cluster.
    pub cluster: Option<ClusterInfo>,
}

/// The messages a stream holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// How many.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The sequence of the first one (0 when empty).
    pub first_seq: u64,
    /// The sequence of the last one ever stored.
    pub last_seq: u64,
    /// How many subjects have messages.
    pub num_subjects: u64,
    /// Messages per subject, when the request asked for them (`subjects_filter`).
    pub subjects: Option<BTreeMap<String, u64>>,
    /// Messages removed from between first and last.
    pub num_deleted: u64,
    /// Consumers of the stream.
    pub consumer_count: u64,
}

/// Where a stream's replicas are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    /// The cluster's name.
    pub name: Option<String>,
    /// The server that leads the stream (takes its writes).
    pub leader: Option<String>,
}

/// The acknowledgement of a message stored by JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in that stream (a KV bucket's revision).
    #[serde(rename = "seq")]
    pub sequence: u64,
    /// True when the server recognised a repeated `Nats-Msg-Id` and stored nothing new.
    #[serde(default)]
    pub duplicate: bool,
}

/// Durations as the API writes them: whole nanoseconds, 0 for "none".
mod nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let nanos = value.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        serializer.serialize_i64(nanos)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let nanos = i64::deserialize(deserializer)?;
        // Negative means "none" as much as 0 does.
        Ok((nanos > 0).then(|| Duration::from_nanos(nanos as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_written_with_the_api_names_and_units() {
        let config = StreamConfig {
            max_age: Some(Duration::from_millis(1500)),
            subject_delete_marker_ttl: Some(Duration::from_secs(1)),
            allow_msg_ttl: true,
            storage: StorageType::Memory,
            discard: DiscardPolicy::New,
            ..StreamConfig::new("S", ["a.>"])
        };
        let json: serde_json::Value = serde_json::to_value(&config).unwrap();
        assert_eq!(json["name"], "S");
        assert_eq!(json["subjects"], serde_json::json!(["a.>"]));
        assert_eq!(json["max_age"], 1_500_000_000);
        assert_eq!(json["subject_delete_marker_ttl"], 1_000_000_000);
        assert_eq!(json["storage"], "memory");
        assert_eq!(json["discard"], "new");
        assert_eq!(json["retention"], "limits");
        assert_eq!(json["max_msgs_per_subject"], -1);
        assert_eq!(json["allow_msg_ttl"], true);
        // Left out when unset, so that servers before 2.11 see nothing they do not know.
        let plain = serde_json::to_value(StreamConfig::new("S", ["a"])).unwrap();
        assert!(plain.get("allow_msg_ttl").is_none());
        assert!(plain.get("subject_delete_marker_ttl").is_none());
        assert!(plain.get("duplicate_window").is_none());
        assert_eq!(plain["max_age"], 0);
    }

    #[test]
    fn reads_what_the_server_reports() {
        // Trimmed from nats-server 2.11's answer to STREAM.INFO on a KV bucket.
        let json = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,
            "config":{"name":"KV_b","subjects":["$KV.b.>"],"retention":"workqueue",
            "max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,
            "max_msgs_per_subject":5,"max_msg_size":-1,"discard":"new","storage":"file",
            "num_replicas":1,"duplicate_window":120000000000,"compression":"none",
            "allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":true,
            "deny_purge":false,"allow_rollup_hdrs":true,"allow_msg_ttl":false,
            "consumer_limits":{}},
            "created":"2025-01-01T00:00:00.1Z",
            "state":{"messages":3,"bytes":120,"first_seq":1,"first_ts":"x","last_seq":4,
            "last_ts":"y","num_deleted":1,"num_subjects":2,"consumer_count":0},
            "cluster":{"leader":"n1"},"ts":"z"}"#;
        let info: StreamInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.config.name, "KV_b");
        assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
        assert_eq!(info.config.max_age, None);
        assert_eq!(info.config.duplicate_window, Some(Duration::from_secs(120)));
        assert!(info.config.allow_direct && info.config.deny_delete);
        assert_eq!(info.config.discard, DiscardPolicy::New);
        assert_eq!(info.config.max_msgs_per_subject, 5);
        assert_eq!((info.state.messages, info.state.last_seq), (3, 4));
        assert_eq!(info.state.num_subjects, 2);
        assert_eq!(info.cluster.unwrap().leader.as_deref(), Some("n1"));
    }

    #[test]
    fn reads_a_pub_ack() {
        let ack: PubAck = serde_json::from_str(r#"{"stream":"S","seq":7}"#).unwrap();
        assert_eq!(
            ack,
            PubAck {
                stream: "S".into(),
                sequence: 7,
                duplicate: false
            }
        );
        let ack: PubAck =
            serde_json::from_str(r#"{"stream":"S","seq":7,"duplicate":true,"domain":"d"}"#)
                .unwrap();
        assert!(ack.duplicate);
    }
}

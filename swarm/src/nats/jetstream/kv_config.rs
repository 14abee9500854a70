//! [`KvConfig`]: a KV bucket's settings, and the stream that carries them (ADR-8, and ADR-48
//! for limit markers).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::JsError;
use super::names::{check_bucket, kv_prefix, kv_stream};
use super::stream::{DiscardPolicy, StorageType, StreamConfig};

/// The most history a bucket may keep per key (ADR-8).
pub(crate) const MAX_HISTORY: u8 = 64;

/// The shortest lifetime of a limit marker the server accepts (ADR-48).
const MIN_LIMIT_MARKERS: Duration = Duration::from_secs(1);

/// A KV bucket's settings, for [`JetStream::create_kv`](super::JetStream::create_kv).
///
/// ```
/// use std::time::Duration;
/// use swarm::nats::KvConfig;
/// let leases = KvConfig {
///     max_age: Some(Duration::from_secs(10)),
///     limit_markers: Some(Duration::from_secs(1)),
///     replicas: 3,
///     ..KvConfig::new("leases")
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    /// The bucket's name: letters, digits, `-` and `_`.
    pub bucket: String,
    /// Values kept per key, 1 to 64 (the stream's `max_msgs_per_subject`).
    pub history: u8,
    /// Values older than this are removed; `None`: kept whatever their age.
    pub max_age: Option<Duration>,
    /// Copies kept in a cluster (1, 3 or 5).
    pub replicas: usize,
    /// File or memory.
    pub storage: StorageType,
    /// The largest value accepted, in bytes; `None`: the server's `max_payload` is the limit.
    pub max_value_size: Option<i32>,
    /// Subject delete markers (server ≥ 2.11 `subject_delete_marker_ttl`; also sets
    /// `allow_msg_ttl`) so watchers see a key removed by `max_age` as a delete: the marker
    /// stays this long (at least 1 s).
    pub limit_markers: Option<Duration>,
}

impl KvConfig {
    /// A bucket named `bucket`: history 1, one replica, file storage, no `max_age`, no limit
    /// markers.
    pub fn new(bucket: impl Into<String>) -> KvConfig {
        KvConfig {
            bucket: bucket.into(),
            history: 1,
            max_age: None,
            replicas: 1,
            storage: StorageType::File,
            max_value_size: None,
            limit_markers: None,
        }
    }

    /// The stream behind the bucket, as ADR-8 lays it out; an error for settings the server
    /// would refuse or read differently.
    pub(crate) fn stream_config(&self) -> Result<StreamConfig, JsError> {
        check_bucket(&self.bucket)?;
        let refuse = |what: &str, reason: String| JsError::InvalidConfig {
            what: format!("{what} of KV bucket {:?}", self.bucket),
            reason,
        };
        if !(1..=MAX_HISTORY).contains(&self.history) {
            return Err(refuse(
                "history",
                format!("{} is not between 1 and {MAX_HISTORY}", self.history),
            ));
        }
        if self.replicas == 0 {
            return Err(refuse("replicas", "a bucket has at least one".into()));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(refuse(
                "max_age",
                "0 would mean no limit; say None for that".into(),
            ));
        }
        if let Some(size) = self.max_value_size {
            if size < 1 {
                return Err(refuse(
                    "max_value_size",
                    format!("{size} bytes; say None for no limit"),
                ));
            }
        }
        if let Some(ttl) = self.limit_markers {
            if ttl < MIN_LIMIT_MARKERS {
                return Err(refuse(
                    "limit_markers",
                    format!("{ttl:?} is shorter than the {MIN_LIMIT_MARKERS:?} the server accepts"),
                ));
            }
        }
        Ok(StreamConfig {
            name: kv_stream(&self.bucket),
            subjects: vec![format!("{}>", kv_prefix(&self.bucket))],
            max_msgs_per_subject: i64::from(self.history),
            max_age: self.max_age,
            max_msg_size: self.max_value_size.unwrap_or(-1),
            storage: self.storage,
            num_replicas: self.replicas,
            discard: DiscardPolicy::New,
            allow_rollup_hdrs: true,
            deny_delete: true,
            allow_direct: true,
            allow_msg_ttl: self.limit_markers.is_some(),
            subject_delete_marker_ttl: self.limit_markers,
            ..StreamConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_follows_adr_8() {
        let stream = KvConfig {
            history: 5,
            max_age: Some(Duration::from_secs(10)),
            replicas: 3,
            max_value_size: Some(1024),
            ..KvConfig::new("leases")
        }
        .stream_config()
        .unwrap();
        assert_eq!(stream.name, "KV_leases");
        assert_eq!(stream.subjects, ["$KV.leases.>"]);
        assert_eq!(stream.max_msgs_per_subject, 5);
        assert_eq!(stream.max_age, Some(Duration::from_secs(10)));
        assert_eq!(stream.max_msg_size, 1024);
        assert_eq!(stream.num_replicas, 3);
        assert_eq!(stream.discard, DiscardPolicy::New);
        assert!(stream.allow_rollup_hdrs && stream.deny_delete && stream.allow_direct);
        assert!(!stream.deny_purge);
        assert!(!stream.allow_msg_ttl && stream.subject_delete_marker_ttl.is_none());
        assert_eq!(stream.max_msgs, -1);
        assert_eq!(stream.max_bytes, -1);
    }

    #[test]
    fn limit_markers_follow_adr_48() {
        let stream = KvConfig {
            max_age: Some(Duration::from_secs(1)),
            limit_markers: Some(Duration::from_secs(2)),
            ..KvConfig::new("b")
        }
        .stream_config()
        .unwrap();
        assert!(stream.allow_msg_ttl);
        assert_eq!(
            stream.subject_delete_marker_ttl,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn settings_the_server_would_refuse_are_refused_here() {
        let refused = |config: KvConfig| config.stream_config().unwrap_err().to_string();
        assert_eq!(
            refused(KvConfig {
                history: 0,
                ..KvConfig::new("b")
            }),
            "invalid history of KV bucket \"b\": 0 is not between 1 and 64"
        );
        assert!(refused(KvConfig {
            history: 65,
            ..KvConfig::new("b")
        })
        .contains("65 is not between 1 and 64"));
        assert!(refused(KvConfig {
            replicas: 0,
            ..KvConfig::new("b")
        })
        .contains("replicas"));
        assert!(refused(KvConfig {
            max_age: Some(Duration::ZERO),
            ..KvConfig::new("b")
        })
        .contains("say None"));
        assert!(refused(KvConfig {
            max_value_size: Some(-1),
            ..KvConfig::new("b")
        })
        .contains("max_value_size"));
        assert_eq!(
            refused(KvConfig {
                limit_markers: Some(Duration::from_millis(500)),
                ..KvConfig::new("b")
            }),
            "invalid limit_markers of KV bucket \"b\": 500ms is shorter than the 1s the server accepts"
        );
        assert!(refused(KvConfig::new("a.b")).contains("bucket name \"a.b\""));
    }
}

//! [`KvEntry`] and [`KvOperation`]: a key's value or tombstone as stored in the bucket's stream,
//! however it was read (a get or a watch).

use serde::{Deserialize, Serialize};

use super::error::JsError;
use super::stored::StoredMsg;
use crate::nats::codec::{as_bytes, Headers};

/// The header that marks a KV delete or purge (ADR-8).
pub(crate) const KV_OPERATION: &str = "KV-Operation";
/// The header of a marker the server left where a message was removed (ADR-48).
pub(crate) const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Purge removes a key's history: the server keeps only the purge message (ADR-8).
pub(crate) const ROLLUP: &str = "Nats-Rollup";

/// Headers that decide what a stored message means to KV, so a value's own headers may not
/// carry them: a put with `KV-Operation: DEL` would read as a delete, `Nats-Rollup` would drop
/// the key's history, `Nats-TTL` would let the value expire (and older revisions surface, ADR-48).
const RESERVED: [&str; 4] = [KV_OPERATION, ROLLUP, MARKER_REASON, "Nats-TTL"];

/// Refuses headers for a value of `key` that would change what KV makes of it.
pub(crate) fn check_value_headers(key: &str, headers: &Headers) -> Result<(), JsError> {
    match headers
        .iter()
        .find(|(name, _)| RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)))
    {
        Some((name, _)) => Err(JsError::InvalidConfig {
            what: format!("headers of the value for KV key {key:?}"),
            reason: format!("{name} is KV's own header (it decides what the entry means)"),
        }),
        None => Ok(()),
    }
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOperation {
    /// A value was put.
    Put,
    /// The key was deleted (its history kept): `KV-Operation: DEL`, or a limit marker with
    /// reason `Remove`.
    Delete,
    /// The key was purged (its history dropped): `KV-Operation: PURGE`, or a limit marker with
    /// reason `MaxAge` (the value expired) or `Purge` (ADR-48 treats both as a purge).
    Purge,
}

impl KvOperation {
    /// The `KV-Operation` header's value for a write of this kind.
    pub(crate) fn header_value(self) -> &'static str {
        match self {
            KvOperation::Put => "PUT",
            KvOperation::Delete => "DEL",
            KvOperation::Purge => "PURGE",
        }
    }

    /// What a stored message's headers say it is; `Err` for a value swarm does not know.
    pub(crate) fn of(headers: Option<&Headers>) -> Result<KvOperation, String> {
        let Some(headers) = headers else {
            return Ok(KvOperation::Put);
        };
        if let Some(op) = headers.get(KV_OPERATION) {
            return match op.trim() {
                "PUT" => Ok(KvOperation::Put),
                "DEL" => Ok(KvOperation::Delete),
                "PURGE" => Ok(KvOperation::Purge),
                other => Err(format!("unknown {KV_OPERATION} {other:?}")),
            };
        }
        match headers.get(MARKER_REASON).map(str::trim) {
            None => Ok(KvOperation::Put),
            Some("MaxAge" | "Purge") => Ok(KvOperation::Purge),
            Some("Remove") => Ok(KvOperation::Delete),
            Some(other) => Err(format!("unknown {MARKER_REASON} {other:?}")),
        }
    }
}

/// A key's value (or its deletion) at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The value; empty for a delete or purge.
    #[serde(with = "as_bytes")]
    pub value: Vec<u8>,
    /// The revision: the message's sequence in the bucket's stream. A CAS
    /// ([`KvBucket::update`](super::KvBucket::update)) names this.
    pub revision: u64,
    /// Put, delete or purge.
    pub operation: KvOperation,
    /// The headers stored with it (the KV ones included); `None` if it had none.
    pub headers: Option<Headers>,
}

impl KvEntry {
    /// The entry a message of `bucket`'s stream records; `prefix` is `$KV.<bucket>.`.
    pub(crate) fn from_stored(
        bucket: &str,
        prefix: &str,
        msg: StoredMsg,
    ) -> Result<KvEntry, JsError> {
        let Some(key) = msg.subject.strip_prefix(prefix) else {
            return Err(JsError::Decode(format!(
                "message {} of KV bucket {bucket:?} is on {:?}, outside {prefix}>",
                msg.sequence, msg.subject
            )));
        };
        let operation = KvOperation::of(msg.headers.as_ref()).map_err(|why| {
            JsError::Decode(format!(
                "message {} of KV bucket {bucket:?} (key {key:?}): {why}",
                msg.sequence
            ))
        })?;
        Ok(KvEntry {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            value: msg.payload,
            revision: msg.sequence,
            operation,
            headers: msg.headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.append(*n, *v).unwrap();
        }
        h
    }

    #[test]
    fn the_operation_comes_from_kv_operation_or_a_marker() {
        let of = |pairs: &[(&str, &str)]| KvOperation::of(Some(&headers(pairs)));
        assert_eq!(KvOperation::of(None), Ok(KvOperation::Put));
        assert_eq!(of(&[("X", "1")]), Ok(KvOperation::Put));
        assert_eq!(of(&[("KV-Operation", "DEL")]), Ok(KvOperation::Delete));
        assert_eq!(of(&[("KV-Operation", "PURGE")]), Ok(KvOperation::Purge));
        assert_eq!(of(&[("KV-Operation", "PUT")]), Ok(KvOperation::Put));
        // ADR-48: what the server leaves when max_age removes the last value of a key.
        assert_eq!(
            of(&[("Nats-Marker-Reason", "MaxAge"), ("Nats-TTL", "1s")]),
            Ok(KvOperation::Purge)
        );
        assert_eq!(
            of(&[("Nats-Marker-Reason", "Purge")]),
            Ok(KvOperation::Purge)
        );
        assert_eq!(
            of(&[("Nats-Marker-Reason", "Remove")]),
            Ok(KvOperation::Delete)
        );
        assert!(of(&[("KV-Operation", "ZAP")]).unwrap_err().contains("ZAP"));
        assert!(of(&[("Nats-Marker-Reason", "Why")]).is_err());
        for op in [KvOperation::Put, KvOperation::Delete, KvOperation::Purge] {
            assert_eq!(of(&[("KV-Operation", op.header_value())]), Ok(op));
        }
    }

    #[test]
    fn a_value_s_headers_cannot_turn_it_into_something_else() {
        assert_eq!(
            check_value_headers("k", &headers(&[("X-Owner", "n1")])),
            Ok(())
        );
        for name in [
            "KV-Operation",
            "kv-operation",
            "Nats-Rollup",
            "Nats-TTL",
            "Nats-Marker-Reason",
        ] {
            let err = check_value_headers("k", &headers(&[("X", "1"), (name, "v")])).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid headers of the value for KV key \"k\": {name} is KV's own header \
                     (it decides what the entry means)"
                )
            );
        }
    }

    #[test]
    fn an_entry_is_read_from_a_stored_message() {
        let msg = StoredMsg {
            subject: "$KV.b.user.1".into(),
            sequence: 7,
            headers: Some(headers(&[("KV-Operation", "DEL")])),
            payload: Vec::new(),
        };
        let entry = KvEntry::from_stored("b", "$KV.b.", msg.clone()).unwrap();
        assert_eq!(entry.key, "user.1");
        assert_eq!((entry.revision, entry.operation), (7, KvOperation::Delete));
        let elsewhere = StoredMsg {
            subject: "$KV.other.k".into(),
            ..msg
        };
        let err = KvEntry::from_stored("b", "$KV.b.", elsewhere).unwrap_err();
        assert!(err.to_string().contains("outside $KV.b.>"), "{err}");
    }
}

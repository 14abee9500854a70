//! The on-store format of an agent's persisted state.
//!
//! A record is a small header followed by the payload:
//!
//! ```text
//! b"SWRM" | format version (u8) | payload encoding (u8) | payload ...
//! ```
//!
//! The payload is the agent's `#[persist]` fields as a JSON object, one member per field. JSON
//! because a record outlives the code that wrote it: a field added later is filled from its
//! `Default`, a field removed is ignored, and an operator can read a record with `cat`. (Messages
//! on the local mailbox path use bincode; only stored records and the NATS wire use JSON.)
//!
//! A record that cannot be decoded is an error naming the key, never "no state": the agent
//! refuses to start and the bytes stay where they are for someone to look at.

use serde::{de::DeserializeOwned, Serialize};

/// First bytes of every record.
pub const MAGIC: &[u8; 4] = b"SWRM";
/// The record layout this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Payload encoding: a JSON object of the persisted fields.
pub const ENCODING_JSON: u8 = 1;

const HEADER_LEN: usize = MAGIC.len() + 2;

/// Why a stored record could not be turned back into an agent's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes do not start with the record header.
    #[error("not a swarm record (expected the header {expected:?}, found {found:?})")]
    NotARecord {
        /// The header a record starts with.
        expected: String,
        /// What the bytes start with.
        found: String,
    },
    /// The record was written by a newer (or unknown) record format.
    #[error(
        "record format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The version in the record.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The payload encoding byte is unknown.
    #[error("unknown payload encoding {0}")]
    UnknownEncoding(u8),
    /// The payload does not decode into the agent's persisted fields.
    #[error("the persisted fields do not decode: {0}")]
    Payload(String),
}

/// Encodes persisted fields into a record.
pub fn encode<T: Serialize + ?Sized>(fields: &T) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT_VERSION);
    bytes.push(ENCODING_JSON);
    serde_json::to_writer(&mut bytes, fields).map_err(|err| err.to_string())?;
    Ok(bytes)
}

/// Decodes a record into persisted fields.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        let shown = &bytes[..bytes.len().min(MAGIC.len())];
        return Err(RecordError::NotARecord {
            expected: String::from_utf8_lossy(MAGIC).into_owned(),
            found: String::from_utf8_lossy(shown).into_owned(),
        });
    }
    let version = bytes[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    match bytes[MAGIC.len() + 1] {
        ENCODING_JSON => serde_json::from_slice(&bytes[HEADER_LEN..])
            .map_err(|err| RecordError::Payload(err.to_string())),
        other => Err(RecordError::UnknownEncoding(other)),
    }
}

/// A copy of `record` with the member `name` (the runtime's own bookkeeping next to the agent's
/// fields, such as the ids of the calls it applied; names start with `__swarm_`) set to the JSON
/// `value`, at the start of the record's object. Readers of the agent's fields skip it (unknown
/// members are ignored).
// Read by the agents' request ids, which exist on Lunatic (wasm32) only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn with_member(record: &[u8], name: &str, value: &[u8]) -> Result<Vec<u8>, String> {
    let payload = json_payload(record)?;
    let Some(rest) = payload.trim_ascii_start().strip_prefix(b"{") else {
        return Err("the record's fields are not a JSON object".into());
    };
    let empty = rest.trim_ascii_start().starts_with(b"}");
    let name = serde_json::to_vec(name).map_err(|err| err.to_string())?;
    let mut bytes = Vec::with_capacity(record.len() + name.len() + value.len() + 2);
    bytes.extend_from_slice(&record[..HEADER_LEN]);
    bytes.push(b'{');
    bytes.extend_from_slice(&name);
    bytes.push(b':');
    bytes.extend_from_slice(value);
    if !empty {
        bytes.push(b',');
    }
    bytes.extend_from_slice(rest);
    Ok(bytes)
}

/// The member `name` of a record's JSON object (see [`with_member`]), if it has one.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn member(record: &[u8], name: &str) -> Option<serde_json::Value> {
    let payload = json_payload(record).ok()?;
    match serde_json::from_slice::<serde_json::Value>(payload).ok()? {
        serde_json::Value::Object(mut members) => members.remove(name),
        _ => None,
    }
}

/// The JSON after a record's header.
fn json_payload(record: &[u8]) -> Result<&[u8], String> {
    if record.len() < HEADER_LEN
        || &record[..MAGIC.len()] != MAGIC
        || record[MAGIC.len()] != FORMAT_VERSION
        || record[MAGIC.len() + 1] != ENCODING_JSON
    {
        return Err("not a JSON record of this format version".into());
    }
    Ok(&record[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    #[serde(default)]
    struct Fields {
        count: u64,
        names: Vec<String>,
    }

    #[test]
    fn round_trips_and_starts_with_the_header() {
        let fields = Fields {
            count: 3,
            names: vec!["a".into()],
        };
        let bytes = encode(&fields).unwrap();
        assert_eq!(&bytes[..6], b"SWRM\x01\x01");
        assert_eq!(decode::<Fields>(&bytes).unwrap(), fields);
    }

    #[test]
    fn a_field_added_later_takes_its_default() {
        let bytes = [b"SWRM\x01\x01".as_slice(), br#"{"count":9}"#].concat();
        assert_eq!(
            decode::<Fields>(&bytes).unwrap(),
            Fields {
                count: 9,
                names: vec![]
            }
        );
    }

    #[test]
    fn a_member_of_the_runtime_rides_along_unseen_by_the_fields() {
        let fields = Fields {
            count: 3,
            names: vec!["a".into()],
        };
        let record = encode(&fields).unwrap();
        let with = with_member(&record, "__swarm_applied", br#"["ab"]"#).unwrap();
        assert_eq!(decode::<Fields>(&with).unwrap(), fields);
        assert_eq!(
            member(&with, "__swarm_applied"),
            Some(serde_json::json!(["ab"]))
        );
        assert_eq!(member(&record, "__swarm_applied"), None);
        // An agent without persisted fields has an empty object.
        let empty = encode(&serde_json::json!({})).unwrap();
        let with = with_member(&empty, "__swarm_applied", b"[]").unwrap();
        assert_eq!(&with[6..], br#"{"__swarm_applied":[]}"#);
        assert!(with_member(b"garbage", "x", b"1").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            decode::<Fields>(b"garbage!"),
            Err(RecordError::NotARecord { .. })
        ));
        assert!(matches!(
            decode::<Fields>(b""),
            Err(RecordError::NotARecord { .. })
        ));
        assert_eq!(
            decode::<Fields>(b"SWRM\x02\x01{}"),
            Err(RecordError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
        assert_eq!(
            decode::<Fields>(b"SWRM\x01\x07{}"),
            Err(RecordError::UnknownEncoding(7))
        );
        assert!(matches!(
            decode::<Fields>(b"SWRM\x01\x01{\"count\":\"x\"}"),
            Err(RecordError::Payload(_))
        ));
    }
}

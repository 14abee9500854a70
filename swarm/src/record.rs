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
//!
//! **State versions.** An agent declares the version of its persisted fields with
//! `#[agent(state_version = N)]` (1 when not given). A record of version 2 or more carries it in
//! the member `__swarm_version` ([`VERSION_MEMBER`]); a record without one is version 1, which is
//! what every record written before versions existed is, so version-1 records stay byte for byte
//! what they were. The runtime upgrades an older record one version at a time through the agent's
//! `#[migrate(from = ..)]` steps ([`migration_step`]) before the agent serves, and refuses a record
//! of a newer version than the code.

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

/// The record member that holds the state version of the fields (absent: version 1).
pub const VERSION_MEMBER: &str = "__swarm_version";

/// An agent's persisted fields as one record version has them: a JSON object, one member per
/// field. What an untyped `#[migrate]` step takes and returns (typed steps take and return their
/// own serde structs instead).
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// Encodes persisted fields into a record.
pub fn encode<T: Serialize + ?Sized>(fields: &T) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT_VERSION);
    bytes.push(ENCODING_JSON);
    serde_json::to_writer(&mut bytes, fields).map_err(|err| err.to_string())?;
    Ok(bytes)
}

/// Encodes persisted fields into a record of state version `version`: for version 1 exactly
/// [`encode`]; for a later one the same with the member [`VERSION_MEMBER`] first.
pub fn encode_versioned<T: Serialize + ?Sized>(
    fields: &T,
    version: u32,
) -> Result<Vec<u8>, String> {
    let record = encode(fields)?;
    if version <= 1 {
        return Ok(record);
    }
    with_member(&record, VERSION_MEMBER, version.to_string().as_bytes())
}

/// The state version of a record: its [`VERSION_MEMBER`], or 1 when it has none.
pub fn state_version(record: &[u8]) -> Result<u32, RecordError> {
    match payload_object(record)?.get(VERSION_MEMBER) {
        None => Ok(1),
        Some(value) => value
            .as_u64()
            .and_then(|version| u32::try_from(version).ok())
            .filter(|&version| version >= 1)
            .ok_or_else(|| {
                RecordError::Payload(format!(
                    "`{VERSION_MEMBER}` is {value}, not a state version (a whole number from 1)"
                ))
            }),
    }
}

/// The agent's fields of a record, as the JSON object a `#[migrate]` step reads: the runtime's
/// own members (`__swarm_*`) left out.
pub fn fields(record: &[u8]) -> Result<Fields, RecordError> {
    let mut members = payload_object(record)?;
    members.retain(|name, _| !name.starts_with("__swarm_"));
    Ok(members)
}

/// The JSON object of a record's payload.
fn payload_object(record: &[u8]) -> Result<Fields, RecordError> {
    // `decode` checks the header and the encoding, and names what is wrong with them.
    match decode::<serde_json::Value>(record)? {
        serde_json::Value::Object(members) => Ok(members),
        other => Err(RecordError::Payload(format!(
            "the record holds {}, not an object of fields",
            kind_of(&other)
        ))),
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Runs one `#[migrate]` step that cannot fail: the fields of the older version are decoded into
/// the step's argument type, and what it returns is encoded as the next version's fields. Called by
/// the code `#[agent]` generates; `Old` and `New` are the user's own types (serde structs, or
/// [`Fields`] for an untyped step).
pub fn migration_step<Old: DeserializeOwned, New: Serialize>(
    step: fn(Old) -> New,
    fields: Fields,
) -> Result<Fields, String> {
    let old = read_step_input(fields)?;
    write_step_output(&step(old))
}

/// [`migration_step`] for a step that returns `Result<New, E>`: its `Err` stops the upgrade (the
/// agent does not start, and the record stays as it is), with the error's text.
pub fn fallible_migration_step<Old: DeserializeOwned, New: Serialize, E: std::fmt::Display>(
    step: fn(Old) -> Result<New, E>,
    fields: Fields,
) -> Result<Fields, String> {
    let old = read_step_input(fields)?;
    let new = step(old).map_err(|err| format!("the step failed: {err}"))?;
    write_step_output(&new)
}

/// Whether `#[migrate]` steps up to `last` (see `AgentBehavior::LAST_MIGRATION`) upgrade every
/// older record to `version`. Evaluated at compile time by the code `#[agent]` generates.
pub const fn steps_reach(last: Option<u32>, version: u32) -> bool {
    match last {
        Some(last) => last as u64 + 1 >= version as u64,
        None => true,
    }
}

/// The answer for a version that has no `#[migrate]` step (the macros make this unreachable: the
/// steps are checked to cover every version below the agent's `state_version`).
pub fn no_migration_step(version: u32) -> Result<Fields, String> {
    Err(format!("there is no #[migrate(from = {version})] step"))
}

fn read_step_input<Old: DeserializeOwned>(fields: Fields) -> Result<Old, String> {
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|err| format!("the record's fields do not decode into the step's argument: {err}"))
}

fn write_step_output<New: Serialize>(new: &New) -> Result<Fields, String> {
    match serde_json::to_value(new) {
        Ok(serde_json::Value::Object(members)) => Ok(members),
        Ok(other) => Err(format!(
            "the step returned {}, not a struct of fields",
            kind_of(&other)
        )),
        Err(err) => Err(format!("what the step returned does not encode: {err}")),
    }
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
    fn a_record_without_a_version_is_version_1_and_version_1_is_written_as_before() {
        let fields = Fields {
            count: 3,
            names: vec![],
        };
        let v1 = encode_versioned(&fields, 1).unwrap();
        assert_eq!(v1, encode(&fields).unwrap());
        assert_eq!(state_version(&v1), Ok(1));
        let v3 = encode_versioned(&fields, 3).unwrap();
        assert_eq!(&v3[6..], br#"{"__swarm_version":3,"count":3,"names":[]}"#);
        assert_eq!(state_version(&v3), Ok(3));
        assert_eq!(decode::<Fields>(&v3).unwrap(), fields);
        // With the runtime's other member in front, and read back as fields without either.
        let with = with_member(&v3, "__swarm_applied", b"[]").unwrap();
        assert_eq!(state_version(&with), Ok(3));
        let read = super::fields(&with).unwrap();
        assert_eq!(
            serde_json::Value::Object(read),
            serde_json::json!({"count": 3, "names": []})
        );
        for bad in [
            &br#"{"__swarm_version":0}"#[..],
            br#"{"__swarm_version":"2"}"#,
        ] {
            let bad = [b"SWRM\x01\x01".as_slice(), bad].concat();
            assert!(
                matches!(state_version(&bad), Err(RecordError::Payload(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            state_version(b"SWRM\x01\x01[1]"),
            Err(RecordError::Payload(_))
        ));
    }

    #[derive(Deserialize)]
    struct V1 {
        name: String,
    }

    #[derive(Serialize)]
    struct V2 {
        first: String,
        last: String,
    }

    fn split(old: V1) -> V2 {
        let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
        V2 {
            first: first.into(),
            last: last.into(),
        }
    }

    fn parse_count(old: super::Fields) -> Result<super::Fields, String> {
        let text = old["count"].as_str().ok_or("count is not text")?;
        let count: u64 = text.parse().map_err(|err| format!("{text:?}: {err}"))?;
        let mut new = old;
        new.insert("count".into(), count.into());
        Ok(new)
    }

    fn object(value: serde_json::Value) -> super::Fields {
        match value {
            serde_json::Value::Object(members) => members,
            _ => unreachable!(),
        }
    }

    #[test]
    fn migration_steps_go_through_the_users_types() {
        let new = migration_step(split, object(serde_json::json!({"name": "Ada Lovelace"})));
        assert_eq!(
            new.map(serde_json::Value::Object),
            Ok(serde_json::json!({"first": "Ada", "last": "Lovelace"}))
        );
        let wrong = migration_step(split, object(serde_json::json!({"name": 7}))).unwrap_err();
        assert!(
            wrong.contains("do not decode into the step's argument"),
            "{wrong}"
        );
        let number = migration_step(|_: V1| 5u8, object(serde_json::json!({"name": "x"})));
        assert_eq!(
            number,
            Err("the step returned a number, not a struct of fields".into())
        );
        let parsed =
            fallible_migration_step(parse_count, object(serde_json::json!({"count": "12"})));
        assert_eq!(
            parsed.map(serde_json::Value::Object),
            Ok(serde_json::json!({"count": 12}))
        );
        let failed =
            fallible_migration_step(parse_count, object(serde_json::json!({"count": "x"})));
        assert!(
            failed
                .as_ref()
                .unwrap_err()
                .starts_with("the step failed: \"x\""),
            "{failed:?}"
        );
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

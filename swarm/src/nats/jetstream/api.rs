//! The JetStream API on the wire: its subjects, the JSON envelope of its replies and the error
//! body inside one. Every API call is a NATS request to `$JS.API.<operation>` whose reply is a
//! JSON object that carries either the result or `"error": {code, err_code, description}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The subject prefix of the API for the default JetStream domain.
pub(crate) const API_PREFIX: &str = "$JS.API";

/// The header that makes a publish conditional on the last sequence stored for its subject.
pub(crate) const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// The `err_code`s swarm tells apart (nats-server's `errors.json`).
pub(crate) mod err_code {
    /// `no message found`: a get found nothing for the subject or sequence.
    pub(crate) const NO_MESSAGE_FOUND: u16 = 10037;
    /// `JetStream not enabled for account`.
    pub(crate) const NOT_ENABLED_FOR_ACCOUNT: u16 = 10039;
    /// `consumer not found`.
    pub(crate) const CONSUMER_NOT_FOUND: u16 = 10014;
    /// `stream not found`.
    pub(crate) const STREAM_NOT_FOUND: u16 = 10059;
    /// `wrong last sequence: {seq}`.
    pub(crate) const WRONG_LAST_SEQUENCE: u16 = 10071;
    /// `JetStream not enabled`.
    pub(crate) const NOT_ENABLED: u16 = 10076;
    /// `wrong last sequence` without the number (checks made before a clustered proposal).
    pub(crate) const WRONG_LAST_SEQUENCE_CONSTANT: u16 = 10164;
}

/// The error body of an API reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError {
    /// An HTTP-like status: 400, 404, 503, ...
    pub(crate) code: u16,
    /// JetStream's own number for the error (`err_code`, 10000 and up).
    pub(crate) err_code: u16,
    pub(crate) description: String,
}

/// Why an API reply gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server answered with an error.
    Api(ApiError),
    /// The reply is not what the API sends: what is wrong with it.
    Decode(String),
}

/// Reads the reply to a request on `subject`: the result, or the error it carries.
pub(crate) fn decode<T: DeserializeOwned>(subject: &str, payload: &[u8]) -> Result<T, Refused> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Option<ApiError>,
    }
    let envelope: Envelope = serde_json::from_slice(payload).map_err(|err| {
        Refused::Decode(format!(
            "the reply to {subject} is not a JetStream API answer ({err}): {}",
            preview(payload)
        ))
    })?;
    if let Some(error) = envelope.error {
        return Err(Refused::Api(error));
    }
    serde_json::from_slice(payload).map_err(|err| {
        Refused::Decode(format!(
            "the reply to {subject} does not read as expected ({err}): {}",
            preview(payload)
        ))
    })
}

/// The start of a reply, for an error message.
fn preview(payload: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&payload[..payload.len().min(SHOWN)]);
    if payload.is_empty() {
        "(empty)".to_owned()
    } else if payload.len() > SHOWN {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

/// `$JS.API.STREAM.MSG.GET.<stream>`: the last message stored for a subject.
#[derive(Serialize)]
pub(crate) struct LastBySubject<'a> {
    pub(crate) last_by_subj: &'a str,
}

/// The answer to `$JS.API.STREAM.DELETE.<stream>`.
#[derive(Deserialize)]
pub(crate) struct Deleted {
    #[serde(default)]
    pub(crate) success: bool,
}

/// The part of `$JS.API.INFO`'s answer swarm reads: the API level the server implements
/// (1 since nats-server 2.11, which brought per-message TTLs and limit markers).
#[derive(Deserialize)]
pub(crate) struct AccountInfo {
    #[serde(default)]
    pub(crate) api: ApiStats,
}

#[derive(Default, Deserialize)]
pub(crate) struct ApiStats {
    #[serde(default)]
    pub(crate) level: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::jetstream::stream::PubAck;

    #[test]
    fn a_reply_carries_a_result_or_an_error() {
        let ack: PubAck = decode("s", br#"{"stream":"S","seq":3}"#).unwrap();
        assert_eq!(ack.sequence, 3);
        // A failed publish also names the stream: the error wins over the fields that parse.
        let refused = decode::<PubAck>(
            "s",
            br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S","seq":0}"#,
        );
        assert_eq!(
            refused.unwrap_err(),
            Refused::Api(ApiError {
                code: 400,
                err_code: 10071,
                description: "wrong last sequence: 5".into()
            })
        );
    }

    #[test]
    fn a_reply_that_is_not_the_api_s_says_what_it_was() {
        let Err(Refused::Decode(why)) = decode::<PubAck>("$JS.API.X", b"") else {
            panic!("an empty reply decoded")
        };
        assert!(
            why.contains("$JS.API.X") && why.contains("(empty)"),
            "{why}"
        );
        let Err(Refused::Decode(why)) = decode::<PubAck>("$KV.b.k", br#"{"stream":"S"}"#) else {
            panic!("a reply without seq decoded")
        };
        assert!(why.contains("$KV.b.k") && why.contains("seq"), "{why}");
        let long = vec![b'x'; 500];
        let Err(Refused::Decode(why)) = decode::<PubAck>("s", &long) else {
            panic!("garbage decoded")
        };
        assert!(why.len() < 400 && why.ends_with("..."), "{why}");
    }

    #[test]
    fn reads_the_api_level() {
        let info: AccountInfo =
            serde_json::from_str(r#"{"memory":0,"api":{"level":1,"total":5,"errors":0}}"#).unwrap();
        assert_eq!(info.api.level, 1);
        let old: AccountInfo = serde_json::from_str(r#"{"api":{"total":5}}"#).unwrap();
        assert_eq!(old.api.level, 0);
    }
}

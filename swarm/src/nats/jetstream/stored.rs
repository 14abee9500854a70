//! [`StoredMsg`]: a message as a stream stored it, read back in one of the two ways JetStream
//! offers: `$JS.API.STREAM.MSG.GET` (JSON from the stream's leader, headers and data in base64)
//! or `$JS.API.DIRECT.GET` (the message itself from any replica, where to find it in headers).

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use crate::nats::codec::{as_bytes, Headers, Msg, StatusCode};

/// A message a stream stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMsg {
    /// The subject it was published to.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// The headers it was published with; `None` if it had none.
    pub headers: Option<Headers>,
    /// Its payload.
    #[serde(with = "as_bytes")]
    pub payload: Vec<u8>,
}

/// The answer to `$JS.API.STREAM.MSG.GET` (besides an error).
#[derive(Deserialize)]
pub(crate) struct MsgGetResponse {
    pub(crate) message: RawStoredMsg,
}

/// `StoredMsg` in the API's JSON.
#[derive(Deserialize)]
pub(crate) struct RawStoredMsg {
    subject: String,
    seq: u64,
    #[serde(default)]
    hdrs: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

impl RawStoredMsg {
    /// Decodes the base64 parts; `Err` says what was wrong.
    pub(crate) fn decode(self) -> Result<StoredMsg, String> {
        let bytes = |field: &str, text: Option<String>| -> Result<Vec<u8>, String> {
            match text {
                None => Ok(Vec::new()),
                Some(text) => BASE64.decode(text.as_bytes()).map_err(|err| {
                    format!(
                        "the {field} of message {} on {:?} is not base64: {err}",
                        self.seq, self.subject
                    )
                }),
            }
        };
        let block = bytes("hdrs", self.hdrs.clone())?;
        let payload = bytes("data", self.data.clone())?;
        let headers = if block.is_empty() {
            None
        } else {
            Some(Headers::parse(&block).map_err(|err| {
                format!(
                    "the headers of message {} on {:?} do not parse: {err}",
                    self.seq, self.subject
                )
            })?)
        };
        Ok(StoredMsg {
            subject: self.subject,
            sequence: self.seq,
            headers,
            payload,
        })
    }
}

/// Headers a direct get adds to tell where the message was: not the message's own.
const DIRECT_GET_HEADERS: [&str; 6] = [
    "Nats-Stream",
    "Nats-Subject",
    "Nats-Sequence",
    "Nats-Time-Stamp",
    "Nats-Num-Pending",
    "Nats-Last-Sequence",
];

/// How a direct get was answered, other than with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirectRefused {
    /// A status other than "not found" (`408 Bad Request`, ...): the status and its text.
    Status(u16, String),
    /// A message without the headers that say where it was stored.
    Decode(String),
}

/// Reads the reply to a direct get: `Ok(None)` for `404 Message Not Found`.
pub(crate) fn from_direct_get(reply: Msg) -> Result<Option<StoredMsg>, DirectRefused> {
    match reply.status {
        None => {}
        Some(StatusCode::NOT_FOUND) => return Ok(None),
        Some(status) => {
            return Err(DirectRefused::Status(
                status.0,
                reply.description.unwrap_or_default(),
            ))
        }
    }
    let Some(mut headers) = reply.headers else {
        return Err(DirectRefused::Decode(format!(
            "a direct get on {:?} was answered without headers",
            reply.subject
        )));
    };
    let subject = headers.get("Nats-Subject").map(str::to_owned);
    let sequence = headers
        .get("Nats-Sequence")
        .and_then(|seq| seq.trim().parse().ok());
    let (Some(subject), Some(sequence)) = (subject, sequence) else {
        return Err(DirectRefused::Decode(format!(
            "a direct get on {:?} was answered without Nats-Subject and Nats-Sequence",
            reply.subject
        )));
    };
    for name in DIRECT_GET_HEADERS {
        headers.remove(name);
    }
    Ok(Some(StoredMsg {
        subject,
        sequence,
        headers: (!headers.is_empty()).then_some(headers),
        payload: reply.payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_message_from_the_leader() {
        // `NATS/1.0\r\nKV-Operation: DEL\r\n\r\n` and `hi`, as nats-server writes them.
        let json = r#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response",
            "message":{"subject":"$KV.b.k","seq":9,
            "hdrs":"TkFUUy8xLjANCktWLU9wZXJhdGlvbjogREVMDQoNCg==","data":"aGk=",
            "time":"2025-01-01T00:00:00Z"}}"#;
        let raw: MsgGetResponse = serde_json::from_str(json).unwrap();
        let msg = raw.message.decode().unwrap();
        assert_eq!((msg.subject.as_str(), msg.sequence), ("$KV.b.k", 9));
        assert_eq!(msg.headers.unwrap().get("KV-Operation"), Some("DEL"));
        assert_eq!(msg.payload, b"hi");
        // No headers, no data: an empty put.
        let raw: MsgGetResponse =
            serde_json::from_str(r#"{"message":{"subject":"s","seq":1,"time":"t"}}"#).unwrap();
        let msg = raw.message.decode().unwrap();
        assert_eq!((msg.headers, msg.payload), (None, Vec::new()));
        let bad: MsgGetResponse =
            serde_json::from_str(r#"{"message":{"subject":"s","seq":1,"data":"@@"}}"#).unwrap();
        assert!(bad.message.decode().unwrap_err().contains("not base64"));
    }

    fn direct_reply(status: Option<u16>, headers: &[(&str, &str)], payload: &[u8]) -> Msg {
        let mut h = Headers::new();
        for (name, value) in headers {
            h.append(*name, *value).unwrap();
        }
        Msg {
            subject: "_INBOX.x.1".into(),
            sid: 1,
            reply_to: None,
            headers: (!headers.is_empty() || status.is_some()).then_some(h),
            status: status.map(StatusCode),
            description: status.map(|_| "Message Not Found".to_owned()),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn reads_a_direct_get_and_keeps_only_the_message_s_headers() {
        let reply = direct_reply(
            None,
            &[
                ("X-Own", "1"),
                ("Nats-Stream", "KV_b"),
                ("Nats-Subject", "$KV.b.k"),
                ("Nats-Sequence", "12"),
                ("Nats-Time-Stamp", "2025-01-01T00:00:00Z"),
            ],
            b"v",
        );
        let msg = from_direct_get(reply).unwrap().unwrap();
        assert_eq!((msg.subject.as_str(), msg.sequence), ("$KV.b.k", 12));
        let headers = msg.headers.unwrap();
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("X-Own", "1")]);
        let bare = direct_reply(
            None,
            &[("Nats-Subject", "$KV.b.k"), ("Nats-Sequence", "3")],
            b"",
        );
        assert_eq!(from_direct_get(bare).unwrap().unwrap().headers, None);
    }

    #[test]
    fn a_direct_get_that_found_nothing_or_failed() {
        assert_eq!(from_direct_get(direct_reply(Some(404), &[], b"")), Ok(None));
        assert!(matches!(
            from_direct_get(direct_reply(Some(408), &[], b"")),
            Err(DirectRefused::Status(408, _))
        ));
        assert!(matches!(
            from_direct_get(direct_reply(None, &[("Nats-Subject", "s")], b"")),
            Err(DirectRefused::Decode(_))
        ));
    }
}

//! [`JsError`]: what can go wrong with a JetStream call, and how the client's and the server's
//! failures become one. Pure, so the classification is tested natively.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::{err_code, ApiError, Refused};
use crate::nats::options::NatsError;

/// Everything that can go wrong with a JetStream or KV call. Each message says what happened
/// and names the key, bucket, stream or subject involved.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JsError {
    /// A conditional write (`Nats-Expected-Last-Subject-Sequence`, a KV `update`, `delete` or
    /// `purge` at a revision) found another last sequence on the subject: someone else wrote
    /// since. JetStream's `err_code` 10071.
    #[error("{}", wrong_last_sequence(subject, *expected, *current))]
    WrongLastSequence {
        /// The subject written to (`$KV.<bucket>.<key>` for a KV write).
        subject: String,
        /// The last sequence the write expected (0: none at all).
        expected: u64,
        /// The last sequence the subject has, when the server said.
        current: Option<u64>,
    },
    /// [`KvBucket::create`](super::KvBucket::create) found a live value for the key.
    #[error("KV key {key:?} already exists (revision {revision})")]
    KeyExists {
        /// The key.
        key: String,
        /// The revision of its current value.
        revision: u64,
    },
    /// The KV bucket does not exist (its stream `KV_<bucket>` is missing, or nobody
    /// acknowledged a write to it). Right after a server starts, before its JetStream has loaded
    /// the streams, a write can get this for a bucket that does exist: see
    /// [`JsError::NotEnabled`].
    #[error("no KV bucket {bucket:?} (its stream KV_{bucket} does not exist)")]
    NoSuchBucket {
        /// The bucket's name.
        bucket: String,
    },
    /// The stream does not exist. JetStream's `err_code` 10059.
    #[error("no stream {stream:?}")]
    NoSuchStream {
        /// The stream's name.
        stream: String,
    },
    /// Nobody answered a publish that waits for its acknowledgement: no stream stores the
    /// subject (or JetStream is off). Nothing was stored.
    #[error("no stream stores subject {subject:?} (nobody acknowledged the publish)")]
    NoStream {
        /// The subject published to.
        subject: String,
    },
    /// The server refused the user permission on a subject the call needs: an API subject
    /// (`$JS.API.>`), a KV subject (`$KV.<bucket>.>`) or the watch's inbox.
    #[error(
        "the server denied permission on {subject:?} (the user's permissions do not cover it)"
    )]
    PermissionDenied {
        /// The subject the server named.
        subject: String,
    },
    /// No answer in time. A publish that timed out may still have been stored.
    #[error("{what} timed out after {timeout:?}")]
    TimedOut {
        /// What was waited for.
        what: String,
        /// The time given.
        timeout: Duration,
    },
    /// JetStream is not enabled on the server or for this account: nobody answers on `$JS.API`
    /// (or the server said so, `err_code` 10076 / 10039). Nobody answers either in the moments
    /// after a server (re)starts, until its JetStream is up: a caller that knows JetStream is
    /// there may retry.
    #[error(
        "JetStream is not enabled on this server or for this account (nobody answers on $JS.API)"
    )]
    NotEnabled,
    /// A key (or a key filter of a watch) that KV does not allow; refused before anything was
    /// sent.
    #[error("invalid KV key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bucket or stream name, or a configuration, that cannot be used; refused before
    /// anything was sent (or, for limit markers, after asking the server's API level).
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// What was refused, with its value.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another error of the JetStream API. `description` is the server's text followed by the
    /// request it answered.
    #[error("JetStream error {err_code} (status {code}): {description}")]
    Api {
        /// The HTTP-like status (400, 404, 503, ...).
        code: u16,
        /// JetStream's own number for the error (see nats-server's `errors.json`).
        err_code: u16,
        /// What the server said, and about which request.
        description: String,
    },
    /// The NATS connection failed the call (closed, disconnected while waiting, a subject that
    /// cannot be sent, a payload over `max_payload`, ...).
    #[error("NATS: {0}")]
    Nats(NatsError),
    /// A reply that cannot be read as JetStream's; says which subject and what was wrong.
    #[error("cannot read a JetStream reply: {0}")]
    Decode(String),
}

impl JsError {
    /// The error as a call on `bucket` reports it: a missing stream behind the bucket (or no
    /// stream acknowledging a write to it) is a missing bucket.
    pub(crate) fn in_bucket(self, bucket: &str) -> JsError {
        match self {
            JsError::NoSuchStream { .. } | JsError::NoStream { .. } => JsError::NoSuchBucket {
                bucket: bucket.to_owned(),
            },
            other => other,
        }
    }
}

fn wrong_last_sequence(subject: &str, expected: u64, current: Option<u64>) -> String {
    let expected = match expected {
        0 => "no message on it yet".to_owned(),
        n => format!("last sequence {n}"),
    };
    let current = match current {
        Some(n) => format!("its last sequence is {n}"),
        None => "it has another".to_owned(),
    };
    format!("conditional write to {subject:?} refused: expected {expected}, but {current}")
}

/// What a call was doing when it failed, so the error names it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call<'a> {
    /// A request to the API subject `subject`, about `stream` if it concerns one.
    Api {
        subject: &'a str,
        stream: Option<&'a str>,
    },
    /// A publish to `subject` that waits for its PubAck.
    Publish {
        subject: &'a str,
        expected: Option<u64>,
    },
}

impl Call<'_> {
    fn subject(&self) -> &str {
        match self {
            Call::Api { subject, .. } | Call::Publish { subject, .. } => subject,
        }
    }

    fn what(&self) -> String {
        match self {
            Call::Api { subject, .. } => format!("JetStream API request {subject}"),
            Call::Publish { subject, .. } => format!("acknowledgement of a publish to {subject:?}"),
        }
    }

    /// The error for a failed NATS request.
    pub(crate) fn nats(&self, err: NatsError) -> JsError {
        match err {
            NatsError::NoResponders { .. } => match self {
                Call::Api { .. } => JsError::NotEnabled,
                Call::Publish { subject, .. } => JsError::NoStream {
                    subject: (*subject).to_owned(),
                },
            },
            NatsError::PermissionDenied { subject, .. } => JsError::PermissionDenied { subject },
            NatsError::TimedOut { timeout, .. } => JsError::TimedOut {
                what: self.what(),
                timeout,
            },
            other => JsError::Nats(other),
        }
    }

    /// The error for a reply that carried one, or could not be read.
    pub(crate) fn refused(&self, refused: Refused) -> JsError {
        let ApiError {
            code,
            err_code,
            description,
        } = match refused {
            Refused::Api(error) => error,
            Refused::Decode(why) => return JsError::Decode(why),
        };
        match (err_code, self) {
            (
                err_code::STREAM_NOT_FOUND,
                Call::Api {
                    stream: Some(s), ..
                },
            ) => JsError::NoSuchStream {
                stream: (*s).to_owned(),
            },
            (err_code::NOT_ENABLED | err_code::NOT_ENABLED_FOR_ACCOUNT, _) => JsError::NotEnabled,
            (
                err_code::WRONG_LAST_SEQUENCE | err_code::WRONG_LAST_SEQUENCE_CONSTANT,
                Call::Publish { subject, expected },
            ) => JsError::WrongLastSequence {
                subject: (*subject).to_owned(),
                expected: expected.unwrap_or(0),
                current: current_sequence(&description),
            },
            _ => JsError::Api {
                code,
                err_code,
                description: format!("{description} (answering {})", self.subject()),
            },
        }
    }
}

/// The sequence in `wrong last sequence: 5`.
fn current_sequence(description: &str) -> Option<u64> {
    let (_, number) = description.rsplit_once(':')?;
    number.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::codec::EncodeError;
    use crate::nats::PermissionAction;

    fn api(code: u16, err_code: u16, description: &str) -> Refused {
        Refused::Api(ApiError {
            code,
            err_code,
            description: description.into(),
        })
    }

    const PUBLISH: Call<'static> = Call::Publish {
        subject: "$KV.b.k",
        expected: Some(3),
    };
    const INFO: Call<'static> = Call::Api {
        subject: "$JS.API.STREAM.INFO.S",
        stream: Some("S"),
    };

    #[test]
    fn a_conflict_says_what_was_expected_and_what_is_there() {
        let err = PUBLISH.refused(api(400, 10071, "wrong last sequence: 5"));
        assert_eq!(
            err,
            JsError::WrongLastSequence {
                subject: "$KV.b.k".into(),
                expected: 3,
                current: Some(5)
            }
        );
        assert_eq!(
            err.to_string(),
            "conditional write to \"$KV.b.k\" refused: expected last sequence 3, but its last sequence is 5"
        );
        let create = Call::Publish {
            subject: "$KV.b.k",
            expected: Some(0),
        };
        let err = create.refused(api(400, 10164, "wrong last sequence"));
        assert_eq!(
            err.to_string(),
            "conditional write to \"$KV.b.k\" refused: expected no message on it yet, but it has another"
        );
    }

    #[test]
    fn known_api_errors_get_their_own_kind() {
        assert_eq!(
            INFO.refused(api(404, 10059, "stream not found")),
            JsError::NoSuchStream { stream: "S".into() }
        );
        assert_eq!(
            INFO.refused(api(503, 10039, "JetStream not enabled for account")),
            JsError::NotEnabled
        );
        assert_eq!(
            INFO.refused(api(503, 10076, "JetStream not enabled")),
            JsError::NotEnabled
        );
        let other = Call::Api {
            subject: "$JS.API.STREAM.CREATE.KV_b",
            stream: Some("KV_b"),
        }
        .refused(api(
            400,
            10058,
            "stream name already in use with a different configuration",
        ));
        assert_eq!(
            other.to_string(),
            "JetStream error 10058 (status 400): stream name already in use with a different \
             configuration (answering $JS.API.STREAM.CREATE.KV_b)"
        );
        let garbage = INFO.refused(Refused::Decode("the reply to x is bad".into()));
        assert_eq!(garbage, JsError::Decode("the reply to x is bad".into()));
    }

    #[test]
    fn nats_failures_become_jetstream_ones() {
        let no_responders = |subject: &str| NatsError::NoResponders {
            subject: subject.into(),
        };
        assert_eq!(
            INFO.nats(no_responders("$JS.API.STREAM.INFO.S")),
            JsError::NotEnabled
        );
        assert_eq!(
            PUBLISH.nats(no_responders("$KV.b.k")),
            JsError::NoStream {
                subject: "$KV.b.k".into()
            }
        );
        let denied = INFO.nats(NatsError::PermissionDenied {
            operation: PermissionAction::Publish,
            subject: "$JS.API.STREAM.INFO.S".into(),
        });
        assert_eq!(
            denied.to_string(),
            "the server denied permission on \"$JS.API.STREAM.INFO.S\" (the user's permissions do not cover it)"
        );
        let timed_out = PUBLISH.nats(NatsError::TimedOut {
            what: "request".into(),
            timeout: Duration::from_secs(2),
        });
        assert_eq!(
            timed_out.to_string(),
            "acknowledgement of a publish to \"$KV.b.k\" timed out after 2s"
        );
        assert_eq!(
            INFO.nats(NatsError::Closed),
            JsError::Nats(NatsError::Closed)
        );
    }

    #[test]
    fn a_missing_stream_behind_a_bucket_is_a_missing_bucket() {
        let gone = JsError::NoSuchStream {
            stream: "KV_b".into(),
        };
        assert_eq!(
            gone.in_bucket("b").to_string(),
            "no KV bucket \"b\" (its stream KV_b does not exist)"
        );
        let unacked = JsError::NoStream {
            subject: "$KV.b.k".into(),
        };
        assert_eq!(
            unacked.in_bucket("b"),
            JsError::NoSuchBucket { bucket: "b".into() }
        );
        assert_eq!(JsError::NotEnabled.in_bucket("b"), JsError::NotEnabled);
    }

    #[test]
    fn errors_travel_between_processes() {
        for err in [
            JsError::Nats(NatsError::Disconnected),
            JsError::KeyExists {
                key: "k".into(),
                revision: 4,
            },
            JsError::TimedOut {
                what: "x".into(),
                timeout: Duration::from_millis(1500),
            },
            // The one NATS error with a `&'static str` inside.
            JsError::Nats(NatsError::Encode(EncodeError::ControlLineTooLong {
                op: "HPUB",
                len: 5000,
                max: 4096,
            })),
        ] {
            let bytes = bincode::serialize(&err).unwrap();
            assert_eq!(bincode::deserialize::<JsError>(&bytes).unwrap(), err);
        }
    }
}

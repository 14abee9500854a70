//! [`JetStream`]: the JetStream API over a [`NatsClient`], from any Lunatic process. Each call
//! is one NATS request (a publish waits for its PubAck the same way); the caller's process
//! waits for the answer, bounded by the handle's timeout.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::api::{self, err_code, AccountInfo, Deleted, LastBySubject, Refused, API_PREFIX};
use super::error::{Call, JsError};
use super::kv::KvBucket;
use super::kv_config::KvConfig;
use super::names::{check_bucket, check_stream_name, kv_stream};
use super::stored::{from_direct_get, DirectRefused, MsgGetResponse, StoredMsg};
use super::stream::{PubAck, StreamConfig, StreamInfo};
use crate::nats::codec::{EncodeError, Headers};
use crate::nats::options::NatsError;
use crate::nats::NatsClient;

/// How long a call waits for its answer unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// JetStream on a NATS connection: streams, publishes acknowledged by a stream, reads of stored
/// messages, and KV buckets. Cheap to clone and serializable, like the [`NatsClient`] inside:
/// send it to any process of the node.
///
/// ```no_run
/// # // Compiled for wasm32-wasip1 only (the client exists inside Lunatic), and not run: it
/// # // needs a server; tests/tests/nats/jetstream.rs does this against a real one.
/// # #[cfg(target_arch = "wasm32")]
/// # fn example(client: swarm::nats::NatsClient) -> Result<(), Box<dyn std::error::Error>> {
/// # use swarm::nats::{JetStream, KvConfig};
/// let js = JetStream::new(client);
/// let bucket = js.create_kv(&KvConfig::new("profiles"))?;
/// let revision = bucket.put("alice", b"{...}")?;
/// bucket.update("alice", b"{...}", revision)?;      // only if nobody wrote since
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetStream {
    client: NatsClient,
    prefix: String,
    timeout: Duration,
}

/// How a direct get ended, other than with an answer.
pub(crate) enum DirectGetFailed {
    /// Nobody answers direct gets of the stream: it does not exist, or does not allow them.
    NoResponders,
    Failed(JsError),
}

impl JetStream {
    /// JetStream of the default domain on `client`; calls wait up to 5 s for their answer.
    pub fn new(client: NatsClient) -> JetStream {
        JetStream {
            client,
            prefix: API_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same, with calls waiting up to `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> JetStream {
        JetStream { timeout, ..self }
    }

    /// How long a call waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection underneath.
    pub fn client(&self) -> &NatsClient {
        &self.client
    }

    /// The subject of an API operation: `$JS.API.<operation>`.
    pub(crate) fn api_subject(&self, operation: &str) -> String {
        format!("{}.{operation}", self.prefix)
    }

    /// One API request: `$JS.API.<operation>` with `body`; the answer read as `T`. `stream`
    /// names the stream the request is about, for [`JsError::NoSuchStream`].
    pub(crate) fn request<T: DeserializeOwned>(
        &self,
        operation: &str,
        body: &[u8],
        stream: Option<&str>,
    ) -> Result<T, JsError> {
        let subject = self.api_subject(operation);
        let call = Call::Api {
            subject: &subject,
            stream,
        };
        let reply = self
            .client
            .request(&subject, body, self.timeout)
            .map_err(|err| call.nats(err))?;
        api::decode(&subject, &reply.payload).map_err(|refused| call.refused(refused))
    }

    /// Creates a stream, or returns the existing one if its configuration is the same;
    /// [`JsError::Api`] (`err_code` 10058) if a stream of that name has another.
    pub fn create_stream(&self, config: &StreamConfig) -> Result<StreamInfo, JsError> {
        check_stream_name(&config.name)?;
        let body = serde_json::to_vec(config)
            .map_err(|err| JsError::Decode(format!("a stream configuration: {err}")))?;
        self.request(
            &format!("STREAM.CREATE.{}", config.name),
            &body,
            Some(&config.name),
        )
    }

    /// What the stream holds and how it is configured; [`JsError::NoSuchStream`] if it does not
    /// exist.
    pub fn stream_info(&self, stream: &str) -> Result<StreamInfo, JsError> {
        check_stream_name(stream)?;
        self.request(&format!("STREAM.INFO.{stream}"), b"", Some(stream))
    }

    /// Deletes the stream and its messages; [`JsError::NoSuchStream`] if it does not exist.
    pub fn delete_stream(&self, stream: &str) -> Result<(), JsError> {
        check_stream_name(stream)?;
        let deleted: Deleted =
            self.request(&format!("STREAM.DELETE.{stream}"), b"", Some(stream))?;
        if deleted.success {
            Ok(())
        } else {
            Err(JsError::Api {
                code: 500,
                err_code: 0,
                description: format!(
                    "the server did not confirm the deletion of stream {stream:?}"
                ),
            })
        }
    }

    /// Publishes and waits for the PubAck: the stream stored it. `expected_last_subject_seq`
    /// sets `Nats-Expected-Last-Subject-Sequence`: stored only if the last message on `subject`
    /// has that sequence (0: there is none), else [`JsError::WrongLastSequence`].
    /// [`JsError::NoStream`] if no stream stores `subject`. After [`JsError::TimedOut`] the
    /// message may or may not have been stored.
    pub fn publish(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        expected_last_subject_seq: Option<u64>,
    ) -> Result<PubAck, JsError> {
        let call = Call::Publish {
            subject,
            expected: expected_last_subject_seq,
        };
        let with_expected;
        let headers = match expected_last_subject_seq {
            Some(seq) => {
                let mut all = headers.cloned().unwrap_or_default();
                all.insert(api::EXPECTED_LAST_SUBJECT_SEQUENCE, seq.to_string())
                    .map_err(|err| JsError::Nats(NatsError::Encode(EncodeError::Header(err))))?;
                with_expected = all;
                Some(&with_expected)
            }
            None => headers,
        };
        let reply = match headers {
            Some(headers) => {
                self.client
                    .request_with_headers(subject, headers, payload, self.timeout)
            }
            None => self.client.request(subject, payload, self.timeout),
        }
        .map_err(|err| call.nats(err))?;
        api::decode(subject, &reply.payload).map_err(|refused| call.refused(refused))
    }

    /// The last message on `subject` in `stream`; `Ok(None)` when there is none. `direct`
    /// reads with `$JS.API.DIRECT.GET` (any replica answers, so a write just acknowledged may
    /// not be there yet; the stream needs `allow_direct`), otherwise with
    /// `$JS.API.STREAM.MSG.GET` (the stream's leader answers: a fresh read).
    pub fn last_for_subject(
        &self,
        stream: &str,
        subject: &str,
        direct: bool,
    ) -> Result<Option<StoredMsg>, JsError> {
        if !direct {
            return self.last_from_leader(stream, subject);
        }
        self.direct_get(stream, subject)
            .map_err(|failed| match failed {
                DirectGetFailed::NoResponders => JsError::Api {
                    code: 503,
                    err_code: 0,
                    description: format!(
                        "nobody answers direct gets from stream {stream:?}: it does not exist, \
                         or does not allow them (allow_direct), or JetStream is off"
                    ),
                },
                DirectGetFailed::Failed(err) => err,
            })
    }

    /// `$JS.API.STREAM.MSG.GET.<stream>` with `last_by_subj`.
    pub(crate) fn last_from_leader(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<StoredMsg>, JsError> {
        check_stream_name(stream)?;
        let body = serde_json::to_vec(&LastBySubject {
            last_by_subj: subject,
        })
        .map_err(|err| JsError::Decode(format!("a message get request: {err}")))?;
        let subject_of_call = self.api_subject(&format!("STREAM.MSG.GET.{stream}"));
        let call = Call::Api {
            subject: &subject_of_call,
            stream: Some(stream),
        };
        let reply = self
            .client
            .request(&subject_of_call, &body, self.timeout)
            .map_err(|err| call.nats(err))?;
        match api::decode::<MsgGetResponse>(&subject_of_call, &reply.payload) {
            Ok(got) => got.message.decode().map(Some).map_err(JsError::Decode),
            Err(Refused::Api(err)) if err.err_code == err_code::NO_MESSAGE_FOUND => Ok(None),
            Err(refused) => Err(call.refused(refused)),
        }
    }

    /// `$JS.API.DIRECT.GET.<stream>.<subject>`: the last message on `subject`, from any replica.
    pub(crate) fn direct_get(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<StoredMsg>, DirectGetFailed> {
        check_stream_name(stream).map_err(DirectGetFailed::Failed)?;
        let subject_of_call = self.api_subject(&format!("DIRECT.GET.{stream}.{subject}"));
        let call = Call::Api {
            subject: &subject_of_call,
            stream: Some(stream),
        };
        let reply = match self.client.request(&subject_of_call, b"", self.timeout) {
            Ok(reply) => reply,
            Err(NatsError::NoResponders { .. }) => return Err(DirectGetFailed::NoResponders),
            Err(err) => return Err(DirectGetFailed::Failed(call.nats(err))),
        };
        from_direct_get(reply).map_err(|refused| {
            DirectGetFailed::Failed(match refused {
                DirectRefused::Status(code, description) => JsError::Api {
                    code,
                    err_code: 0,
                    description: format!("{description} (answering {subject_of_call})"),
                },
                DirectRefused::Decode(why) => JsError::Decode(why),
            })
        })
    }

    /// The JetStream API level of the server (1 from nats-server 2.11 on).
    pub(crate) fn api_level(&self) -> Result<u32, JsError> {
        let info: AccountInfo = self.request("INFO", b"", None)?;
        Ok(info.api.level)
    }

    /// Creates a KV bucket, or opens an existing one whose configuration is the same; a
    /// different existing configuration is [`JsError::Api`] (`err_code` 10058, "stream name
    /// already in use with a different configuration"). Limit markers need a server with API
    /// level 1 (nats-server 2.11), which is asked first ([`JsError::InvalidConfig`] if not).
    pub fn create_kv(&self, config: &KvConfig) -> Result<KvBucket, JsError> {
        let stream = config.stream_config()?;
        if config.limit_markers.is_some() {
            let level = self.api_level()?;
            if level < 1 {
                return Err(JsError::InvalidConfig {
                    what: format!("limit_markers of KV bucket {:?}", config.bucket),
                    reason: format!(
                        "the server's JetStream API level is {level}, limit markers need 1 \
                         (nats-server 2.11 or later)"
                    ),
                });
            }
        }
        let info = self.create_stream(&stream)?;
        Ok(KvBucket::new(
            self.clone(),
            &config.bucket,
            info.config.allow_direct,
        ))
    }

    /// Opens an existing bucket; [`JsError::NoSuchBucket`] if there is none.
    pub fn kv(&self, bucket: &str) -> Result<KvBucket, JsError> {
        check_bucket(bucket)?;
        let info = self
            .stream_info(&kv_stream(bucket))
            .map_err(|err| err.in_bucket(bucket))?;
        Ok(KvBucket::new(
            self.clone(),
            bucket,
            info.config.allow_direct,
        ))
    }

    /// Deletes a bucket and every key in it; [`JsError::NoSuchBucket`] if there is none.
    pub fn delete_kv(&self, bucket: &str) -> Result<(), JsError> {
        check_bucket(bucket)?;
        self.delete_stream(&kv_stream(bucket))
            .map_err(|err| err.in_bucket(bucket))
    }
}

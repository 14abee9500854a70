//! Calling agents from native programs (cargo feature `client`, any target but `wasm32`): the
//! same `#[agent]` definitions that run inside Lunatic generate, in a native build, a typed
//! async client on [async-nats](https://docs.rs/async-nats) instead of the Lunatic process.
//!
//! ```ignore
//! // The crate that defines `ChatRoom` (with `#[agent]`), built natively with
//! // `swarm = { version = "0.1", features = ["client"] }`:
//! let client = swarm::client::Client::connect("nats://127.0.0.1:4222", "demo").await?;
//! let lobby = ChatRoom::client(&client).key("lobby");
//! lobby.join("ada".to_owned()).await?;                 // fire-and-forget: a publish
//! let posts: Result<usize, ChatError> = lobby.post("ada".into(), "hi".into()).await?;
//! ```
//!
//! Each handler becomes an `async` method with the handler's own argument and return types,
//! answering `Result<answer, CallError>` as the handle inside Lunatic does: a handler's own `Err`
//! is data inside `Ok`, a [`CallError`] says why the call produced no answer, with the same
//! [`CallFailure`] variants (the front door's refusals — an invalid key, a handler or arguments
//! the node does not know — are [`CallFailure::InvalidKey`], [`CallFailure::UnknownHandler`] and
//! [`CallFailure::BadArguments`]). The handlers' bodies are not compiled natively: a client is
//! the definition's signatures only, so a changed signature breaks the callers' build, not their
//! calls.
//!
//! On the wire a call is a NATS request to `<namespace>.<kind>.<key>.<handler>` with the
//! arguments as a JSON object, served by `swarm::nats::serve_agents` or a cluster's front door
//! on a Lunatic node (see `swarm::nats::agents` for the protocol).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{CallError, CallFailure, CallTarget};
use crate::front_door::decode_reply;
use crate::key::{key_text, AgentKey};
use crate::trace::TraceParent;

/// How long a call waits for its answer unless told otherwise (as the handles in Lunatic).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A NATS connection and the namespace the agents are served in: what every typed client
/// (`<Agent>::client(&client)`) calls through. Cheap to clone (the connection is shared).
#[derive(Clone)]
pub struct Client {
    nats: async_nats::Client,
    namespace: String,
    timeout: Duration,
}

/// A [`Client`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The namespace cannot start a NATS subject.
    #[error(
        "namespace {namespace:?} cannot start a NATS subject: {why} (use tokens of A-Z a-z 0-9 _ - \
         separated by dots, as given to serve_agents)"
    )]
    BadNamespace {
        /// The namespace given.
        namespace: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The NATS server could not be reached.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// The server's URL.
        url: String,
        /// async-nats' error.
        source: async_nats::ConnectError,
    },
}

impl Client {
    /// Calls agents served in `namespace` through the connection `nats`.
    pub fn new(nats: async_nats::Client, namespace: &str) -> Result<Client, ClientError> {
        validate_namespace(namespace)?;
        Ok(Client {
            nats,
            namespace: namespace.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Connects to the NATS server at `url` (async-nats' defaults: reconnects for ever) to call
    /// agents served in `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<Client, ClientError> {
        validate_namespace(namespace)?;
        let nats = async_nats::connect(url)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Client::new(nats, namespace)
    }

    /// The same client with another default timeout for its calls.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The NATS connection (for what the typed clients do not do).
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn validate_namespace(namespace: &str) -> Result<(), ClientError> {
    let why = if namespace.is_empty() {
        Some("it is empty")
    } else if namespace.split('.').any(str::is_empty) {
        Some("it has an empty token (a leading, trailing or double dot)")
    } else if namespace.chars().any(|c| c == '*' || c == '>') {
        Some("it has a wildcard")
    } else if namespace
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        Some("it has whitespace or a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(ClientError::BadNamespace {
            namespace: namespace.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// A typed client of one agent (`ChatRoomClient`), generated by `#[agent]`: what
/// [`KindClient::key`] makes.
#[doc(hidden)]
pub trait TypedClient: Sized {
    /// The agent's `#[key]` type.
    type Key: AgentKey;
    /// The agent kind.
    const KIND: &'static str;
    /// Wraps the untyped client of one agent.
    fn from_agent(agent: AgentClient) -> Self;
}

/// The agents of one kind (`ChatRoom::client(&client)`): pick one by its key.
pub struct KindClient<C> {
    client: Client,
    timeout: Duration,
    retries: u32,
    trace: Option<TraceParent>,
    typed: PhantomData<fn() -> C>,
}

impl<C: TypedClient> KindClient<C> {
    #[doc(hidden)]
    pub fn new(client: &Client) -> KindClient<C> {
        KindClient {
            client: client.clone(),
            timeout: client.timeout,
            retries: 0,
            trace: None,
            typed: PhantomData,
        }
    }

    /// The calls of the clients made from here wait at most `timeout` for their answer (each
    /// attempt, when they retry).
    pub fn timeout(mut self, timeout: Duration) -> KindClient<C> {
        self.timeout = timeout;
        self
    }

    /// The calls of the clients made from here try again, up to `retries` more times, when they
    /// get no answer that says what happened: no answer in time ([`CallFailure::TimedOut`]), no
    /// node serving the kind yet, the cluster moving or unable to place the agent, a full
    /// mailbox. Every attempt of one call carries the same request id, so a call that ran but
    /// whose answer was lost is not applied again: the agent answers the retry with the first
    /// answer. Waits 50 ms before the first retry, doubling up to 1 s.
    pub fn retries(mut self, retries: u32) -> KindClient<C> {
        self.retries = retries;
        self
    }

    /// The calls of the clients made from here carry `trace` (W3C `traceparent`: the caller's
    /// span, such as the current OpenTelemetry span's context, or [`TraceParent::new_root`]):
    /// each handler runs as a span of that trace, and its own calls carry it on (see
    /// [`crate::trace`]).
    pub fn trace(mut self, trace: TraceParent) -> KindClient<C> {
        self.trace = Some(trace);
        self
    }

    /// The client of the agent with this key (started on its node by the first call if it is
    /// not running). An invalid key is reported by each call, as
    /// [`CallFailure::InvalidKey`].
    pub fn key(&self, key: impl Into<C::Key>) -> C {
        let key = key.into();
        C::from_agent(AgentClient {
            client: self.client.clone(),
            kind: C::KIND,
            key: key_text(C::KIND, &key).map_err(|err| (key.to_key_string(), err.to_string())),
            timeout: self.timeout,
            retries: self.retries,
            trace: self.trace,
        })
    }
}

impl<C> Clone for KindClient<C> {
    fn clone(&self) -> Self {
        KindClient {
            client: self.client.clone(),
            timeout: self.timeout,
            retries: self.retries,
            trace: self.trace,
            typed: PhantomData,
        }
    }
}

impl<C: TypedClient> fmt::Debug for KindClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindClient")
            .field("kind", &C::KIND)
            .field("namespace", &self.client.namespace)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The untyped client of one agent, which the generated methods call with the handler's name
/// and arguments.
#[doc(hidden)]
#[derive(Clone)]
pub struct AgentClient {
    client: Client,
    kind: &'static str,
    /// The key's text, or (its text, why it is invalid).
    key: Result<String, (String, String)>,
    timeout: Duration,
    retries: u32,
    trace: Option<TraceParent>,
}

/// A handler's arguments, as the JSON object the front door takes.
#[doc(hidden)]
#[derive(Default)]
pub struct Args {
    fields: Map<String, Value>,
    unencodable: Option<String>,
}

impl Args {
    /// Adds the argument `name`.
    pub fn arg<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Args {
        match serde_json::to_value(value) {
            Ok(value) => {
                self.fields.insert(name.to_owned(), value);
            }
            Err(err) => {
                self.unencodable
                    .get_or_insert_with(|| format!("argument `{name}` as JSON: {err}"));
            }
        }
        self
    }
}

impl AgentClient {
    /// An empty argument list.
    pub fn args() -> Args {
        Args::default()
    }

    /// The agent's key as text (as given, when it is invalid).
    pub fn key(&self) -> &str {
        match &self.key {
            Ok(key) | Err((key, _)) => key,
        }
    }

    fn target(&self, handler: &'static str) -> CallTarget {
        CallTarget {
            kind: self.kind,
            key: self.key().to_owned(),
            handler,
        }
    }

    /// The subject of `handler` and the arguments' JSON, or why there is no request to send.
    fn prepare(&self, handler: &'static str, args: Args) -> Result<(String, Vec<u8>), CallError> {
        let failed = |reason| CallError {
            target: self.target(handler),
            reason,
        };
        let key = match &self.key {
            Ok(key) => key,
            Err((_, why)) => return Err(failed(CallFailure::InvalidKey(why.clone()))),
        };
        if let Some(why) = args.unencodable {
            return Err(failed(CallFailure::Unsendable(why)));
        }
        let payload = serde_json::to_vec(&Value::Object(args.fields))
            .map_err(|err| failed(CallFailure::Unsendable(err.to_string())))?;
        let subject = format!("{}.{}.{key}.{handler}", self.client.namespace, self.kind);
        Ok((subject, payload))
    }

    /// Calls `handler` and waits for its answer, decoded as `R` (the handler's return type),
    /// retrying as the client was told (see [`KindClient::retries`]) under one request id.
    pub async fn request<R: DeserializeOwned>(
        &self,
        handler: &'static str,
        args: Args,
    ) -> Result<R, CallError> {
        // Only a call that may be sent again needs an id (the agent keeps each one it gets).
        let id = (self.retries > 0).then(|| nuid::next().to_string());
        self.request_with_id(handler, args, id.as_deref()).await
    }

    /// [`AgentClient::request`] with the request id `id` (1 to 128 visible ASCII bytes), if
    /// any: a call with an id the agent applied already is answered with its first answer.
    pub async fn request_with_id<R: DeserializeOwned>(
        &self,
        handler: &'static str,
        args: Args,
        id: Option<&str>,
    ) -> Result<R, CallError> {
        let (subject, payload) = self.prepare(handler, args)?;
        let failed = |reason| CallError {
            target: self.target(handler),
            reason,
        };
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert(crate::request_id::HEADER, id);
        }
        if let Some(trace) = self.trace {
            headers.insert(crate::trace::HEADER, trace.to_string().as_str());
        }
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        let answer = loop {
            let request = async_nats::Request::new()
                .payload(payload.clone().into())
                .headers(headers.clone())
                .timeout(Some(self.timeout));
            let outcome = match self
                .client
                .nats
                .send_request(subject.clone(), request)
                .await
            {
                Ok(reply) => decode_reply(&reply.payload, self.timeout),
                Err(err) => {
                    use async_nats::RequestErrorKind as Kind;
                    Err(match err.kind() {
                        Kind::TimedOut => CallFailure::TimedOut(self.timeout),
                        Kind::NoResponders => CallFailure::NoResponders(format!(
                            "no node serves {} in namespace {:?}",
                            self.kind, self.client.namespace
                        )),
                        Kind::Other => CallFailure::Unavailable(format!("NATS: {err}")),
                    })
                }
            };
            match outcome {
                Err(failure) if attempt < self.retries && worth_retrying(&failure) => {
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                outcome => break outcome.map_err(failed)?,
            }
        };
        serde_json::from_value(answer).map_err(|err| {
            // The node answered with another type than this client's: different versions of
            // the agent. The call ran (its answer came back), so it is not safe to repeat.
            failed(CallFailure::Unencodable(format!(
                "the answer does not decode as this client's return type \
                 (is the node running another version of the agent?): {err}"
            )))
        })
    }

    /// Sends `handler` (a handler without an answer) without waiting: `Ok` means the message is
    /// on its way to the NATS server; nothing confirms that an agent got it.
    pub async fn publish(&self, handler: &'static str, args: Args) -> Result<(), CallError> {
        let (subject, payload) = self.prepare(handler, args)?;
        let published = match self.trace {
            Some(trace) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(crate::trace::HEADER, trace.to_string().as_str());
                self.client
                    .nats
                    .publish_with_headers(subject, headers, payload.into())
                    .await
            }
            None => self.client.nats.publish(subject, payload.into()).await,
        };
        published.map_err(|err| CallError {
            target: self.target(handler),
            reason: CallFailure::Unavailable(format!("NATS: {err}")),
        })
    }
}

/// Whether another attempt of the same call (same request id) may get an answer this one did
/// not: the failures that say nothing about the handler itself.
fn worth_retrying(failure: &CallFailure) -> bool {
    matches!(
        failure,
        CallFailure::TimedOut(_)
            | CallFailure::NoResponders(_)
            | CallFailure::Unavailable(_)
            | CallFailure::NodeLost(_)
            | CallFailure::Moved(_)
            | CallFailure::Overloaded(_)
            | CallFailure::Stopped
            | CallFailure::Expired
    )
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("kind", &self.kind)
            .field("key", &self.key())
            .field("namespace", &self.client.namespace)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_that_cannot_start_a_subject_are_refused() {
        for good in ["demo", "acme.prod", "a-b_c"] {
            assert!(validate_namespace(good).is_ok(), "{good}");
        }
        for bad in ["", ".demo", "demo.", "a..b", "de mo", "demo.*", "demo.>"] {
            let err = validate_namespace(bad).unwrap_err().to_string();
            assert!(err.contains("cannot start a NATS subject"), "{bad}: {err}");
        }
    }

    #[test]
    fn arguments_are_one_json_object() {
        let args = AgentClient::args().arg("author", "ada").arg("n", &3u32);
        assert_eq!(
            Value::Object(args.fields),
            serde_json::json!({"author": "ada", "n": 3})
        );
    }

    #[test]
    fn an_argument_json_cannot_hold_is_reported_not_dropped() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        let args = AgentClient::args().arg("map", &map);
        assert!(args.unencodable.unwrap().contains("argument `map`"));
    }
}

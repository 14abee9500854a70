//! The NATS services API (ADR-32) for the agents a node serves: stock NATS tooling (`nats micro
//! list`, any client's service discovery) finds each node with `$SRV.PING`, its kinds and
//! handlers with `$SRV.INFO` and per-handler counts with `$SRV.STATS`, each also addressed as
//! `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>`. The JSON is built in `service_api.rs`.
//!
//! **One service per connection and namespace.** The first [`serve_agents`](super::serve_agents)
//! for a namespace on a client connection starts a discovery process, registered in Lunatic's
//! registry under `swarm/nats-discovery/<connection>/<namespace>`; later ones find it and add
//! their kind. So a node serving three kinds is one service instance, `swarm-<namespace>`, with an
//! `id` of its own (16 random hex digits, or the one given to [`serve_discovery`] first), whose
//! endpoints are every handler of every kind: `<kind>-<handler>` on `<namespace>.<kind>.*.<handler>`
//! in queue group `<namespace>.<kind>`. A kind whose workers have all stopped is dropped; the
//! process ends (and the service disappears) when no kind is left or the connection is closed.
//!
//! **Processes.** Three listener processes, linked to the discovery process, subscribe to
//! `$SRV.*`, `$SRV.*.<name>` and `$SRV.*.<name>.<id>` and hand each request over (a process
//! waiting on one subscription sees nothing else, see the client's README); the discovery process
//! answers, so the answers always describe the kinds registered at that moment.
//!
//! **Counting.** Front-door workers and their responders count the answers they publish, per
//! handler, in their own memory (`Replier` in `responder.rs`): no message per request. For a
//! STATS the discovery process asks each of them for its counts (a [`StatsPull`], tag
//! [`STATS_PULL_TAG`]) and adds up what comes within [`STATS_WAIT`]; a process that does not
//! answer in time, or has ended, counts with what it answered last. A responder answers at once; a
//! worker looks between requests, at least every `PULL_CHECK` (100 ms). `processing_time` runs
//! from the worker taking the request to the answer being published.
//!
//! **STATS `data`.** ADR-32's `data` is per endpoint; every endpoint carries the node's figures:
//! `{"agents_live": <live agents of the node's registry>}`, plus `"cluster": {..}` when a process
//! is registered as `swarm/cluster-stats/<namespace>` (see [`ClusterStatsQuery`] for how it is
//! asked), or `"cluster_error"` saying why its figures are missing; and `"metrics": {..}` when
//! the node serves metrics (see `Discovery::metrics`): the calls per handler and outcome that
//! `/metrics` shows.
//!
//! **Observing a node.** What ADR-32's three verbs do not carry, an operator's view needs: the
//! node's supervision trees and its live agents. The same process answers one more subject,
//! `_SWARM.<namespace>.observe.<id>` (the instance's id; PING, INFO and STATS name it in their
//! metadata as `observe`), so that one mechanism, reachable from any NATS client (the `swarm
//! dashboard` page over WebSocket), serves it. A request (its body: empty, or `{"agents": n}`
//! for at most `n` live agents, default [`OBSERVE_AGENTS`], at most [`OBSERVE_AGENTS_MAX`]) is
//! answered with one JSON object:
//!
//! ```text
//! {"type": "io.swarm.observe.v1", "name": "swarm-<ns>", "id": "<id>", "namespace": "<ns>",
//!  "kinds": ["chat-room", ..],
//!  "agents_live": 3, "agents": [{"kind": "chat-room", "key": "lobby", "process": 41}, ..],
//!  "supervisors": [<swarm::supervisor::SupervisorInfo as JSON>, ..]}
//! ```
//!
//! `agents` are the first by kind and key; `agents_live` counts them all. `supervisors` are
//! [`crate::supervisor::trees`]: each with its state (`"up"`, `{"gave_up": {"reason": ..}}`,
//! `"stopped"`, `"gone"`), strategy, intensity and children, each child with its members'
//! process (`null` while it is down), starts, restarts and crashes, and a nested supervisor's own
//! description under `supervisor`. A part the node could not read is `null`, with
//! `"<part>_error"` saying why; an answer larger than the server's `max_payload` is cut to the
//! trees and the first agents that fit, and says so in `"cut"`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use lunatic::Tag;
use serde::{Deserialize, Serialize};

use super::client::NatsClient;
use super::codec::Msg;
use super::service_api::{self, Counter, Endpoint, Identity};
use super::NatsError;
use crate::runtime::agent::Agent;
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{
    call, cast, decode_envelope, reply_slot, wait_for, ReplyTo, WaitError, ENVELOPE_HANDLER_ID,
};
use crate::runtime::process::{spawn_linked, spawn_named, Named};

/// The tag of a [`StatsPull`] in a worker's or responder's mailbox. Top byte 0x7A: no Lunatic
/// handler number (those are below 64) and none of swarm's other tags (see the list in
/// `client/messages.rs`).
pub(crate) const STATS_PULL_TAG: i64 = (0x7A << 56) | 0x5354_4154;

/// How long a STATS waits for the counts of the workers and responders.
pub const STATS_WAIT: Duration = Duration::from_millis(500);

/// How long a STATS waits for the cluster's figures.
pub const CLUSTER_STATS_WAIT: Duration = Duration::from_millis(300);

/// How often the discovery process checks that its kinds still have workers and its connection
/// is open.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// How many live agents an `observe` answer lists unless asked for another number.
pub const OBSERVE_AGENTS: usize = 200;

/// The most live agents an `observe` answer lists.
pub const OBSERVE_AGENTS_MAX: usize = 10_000;
/// The longest `observe` body read; a longer one gets the default answer.
const OBSERVE_BODY_MAX: usize = 1024;

/// The subject on which the discovery process of `namespace` with instance `id` answers
/// `observe` requests (see the module docs).
pub fn observe_subject(namespace: &str, id: &str) -> String {
    format!("_SWARM.{namespace}.observe.{id}")
}

/// How long a caller waits for the discovery process to start or to take a kind.
const START_WAIT: Duration = Duration::from_secs(30);

/// The discovery process' request for a worker's or responder's counts: send them, as a
/// [`StatsAnswer`], to process `to` with tag `tag`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct StatsPull {
    to: u64,
    tag: i64,
}

impl StatsPull {
    pub(crate) fn answer(&self, answer: &StatsAnswer) {
        if let Err(err) = host::send(self.to, self.tag, answer) {
            eprintln!("swarm: the front door's counts do not encode: {err}");
        }
    }
}

/// A worker's or responder's counts, one per handler of its kind, in the kind's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatsAnswer {
    pub(crate) process: u64,
    pub(crate) counters: Vec<Counter>,
}

/// What the discovery process sends the process registered as `swarm/cluster-stats/<namespace>`
/// for each `$SRV.STATS`, as a swarm request (`mailbox::call`: an `Envelope<ClusterStatsQuery>`
/// whose tag's top byte is 1, with a `reply_to`). The process answers with
/// `reply_to.send::<String>(..)`: the text of a JSON object, which STATS shows as `"cluster"` in
/// every endpoint's `data`. An answer that is not a JSON object, or that takes longer than
/// [`CLUSTER_STATS_WAIT`], is left out, and `"cluster_error"` says why.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ClusterStatsQuery;

/// The registry name of the process giving a namespace's cluster figures.
pub fn cluster_stats_name(namespace: &str) -> String {
    format!("swarm/cluster-stats/{namespace}")
}

/// Who answers the services API for a namespace on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// `swarm-<namespace>`.
    pub name: String,
    /// This node's instance.
    pub id: String,
}

/// Starts answering the services API for `namespace` on `client`'s connection, with `id` if given
/// (ADR-32 name characters: `A-Z a-z 0-9 _ -`), else a random one. [`serve_agents`] does this
/// itself; call it first only to choose the id. Fails if the namespace cannot name a service, if
/// the service already runs with another id, or if the `$SRV` subscriptions are refused.
///
/// [`serve_agents`]: super::serve_agents
pub fn serve_discovery(
    client: &NatsClient,
    namespace: &str,
    id: Option<&str>,
) -> Result<ServiceInstance, NatsError> {
    let name = check_namespace(namespace)?;
    if let Some(id) = id {
        if !service_api::is_valid_name(id) {
            return Err(NatsError::Server(format!(
                "service id {id:?}: ids use A-Z a-z 0-9 _ - (it is a subject token of $SRV)"
            )));
        }
    }
    let process = discovery_process(client, namespace, id)?;
    match call::<Op, String>(process, Op::Id, Some(START_WAIT)) {
        Ok(running) if id.map_or(true, |id| id == running) => {
            Ok(ServiceInstance { name, id: running })
        }
        Ok(running) => Err(NatsError::Server(format!(
            "the services API of namespace {namespace:?} already runs on this connection with \
             id {running:?}; give the id before serving agents"
        ))),
        Err(err) => Err(unavailable(namespace, err)),
    }
}

/// The service name of `namespace`, or why it has none (an error of `serve_agents` before
/// anything starts).
pub(crate) fn check_namespace(namespace: &str) -> Result<String, NatsError> {
    service_api::service_name(namespace).map_err(NatsError::Server)
}

/// Adds kind `A`, served by `workers` (and `counted`: the workers and their responders, which
/// count answers), to the services API of `namespace` on `client`'s connection, starting it if
/// need be.
pub(crate) fn add_kind<A: Agent>(
    client: &NatsClient,
    namespace: &str,
    workers: &[u64],
    counted: &[u64],
) -> Result<(), NatsError> {
    // Once per kind served, here rather than in the discovery process: the schemas depend on
    // `A`'s types, the discovery process only on text.
    let schemas = A::schemas().unwrap_or_default();
    for schema in &schemas {
        for (key, why) in schema.metadata() {
            if key == crate::schema::SCHEMA_OMITTED_KEY {
                eprintln!("swarm: agent kind `{}`: {why}", A::KIND);
            }
        }
    }
    let op = || Op::AddKind {
        kind: A::KIND.to_owned(),
        handlers: A::HANDLERS
            .iter()
            .map(|handler| {
                let metadata = schemas
                    .iter()
                    .find(|schema| schema.handler == handler.name)
                    .map(|schema| schema.metadata())
                    .unwrap_or_default();
                (handler.name.to_owned(), handler.request, metadata)
            })
            .collect(),
        workers: workers.to_vec(),
        counted: counted.to_vec(),
    };
    // A discovery process may end (its last kind stopped) just as this finds it: then a new one.
    let mut last = None;
    for _ in 0..3 {
        let process = discovery_process(client, namespace, None)?;
        match call::<Op, String>(process, op(), Some(START_WAIT)) {
            Ok(_id) => return Ok(()),
            Err(WaitError::ServerGone) => last = Some(WaitError::ServerGone),
            Err(err) => return Err(unavailable(namespace, err)),
        }
    }
    Err(unavailable(
        namespace,
        last.unwrap_or(WaitError::ServerGone),
    ))
}

fn unavailable(namespace: &str, err: WaitError) -> NatsError {
    NatsError::Server(format!(
        "the services API ($SRV) of namespace {namespace:?} did not answer: {err:?}"
    ))
}

/// The live discovery process of `namespace` on `client`'s connection, started if there is none.
fn discovery_process(
    client: &NatsClient,
    namespace: &str,
    id: Option<&str>,
) -> Result<u64, NatsError> {
    let name = format!(
        "swarm/nats-discovery/{}/{namespace}",
        client.connection_id()
    );
    for _ in 0..3 {
        let ready = reply_slot();
        let capture = Capture {
            client: client.clone(),
            namespace: namespace.to_owned(),
            id: id.map(str::to_owned),
            ready,
        };
        match spawn_named(&name, capture, run_discovery) {
            Ok(Named::Started(process)) => {
                return match wait_for::<Result<(), String>>(ready, process, Some(START_WAIT)) {
                    Ok(Ok(())) => Ok(process),
                    Ok(Err(reason)) => Err(NatsError::Server(reason)),
                    Err(err) => {
                        host::kill(process);
                        Err(unavailable(namespace, err))
                    }
                };
            }
            Ok(Named::Found(process)) if host::exists(process) => return Ok(process),
            Ok(Named::Found(dead)) => {
                // Lunatic keeps a name after its process ended: free it (unless another caller
                // already started the next one) and try again.
                if host::registry_get(&name).map(|pid| pid.id) == Some(dead) {
                    host::registry_remove(&name);
                }
            }
            Err(err) => return Err(NatsError::Server(err.to_string())),
        }
    }
    Err(NatsError::Server(format!(
        "the services API of namespace {namespace:?} did not start: its process kept ending"
    )))
}

#[derive(Serialize, Deserialize)]
struct Capture {
    client: NatsClient,
    namespace: String,
    id: Option<String>,
    ready: ReplyTo,
}

/// What the discovery process is asked, as swarm requests (`Envelope`s).
#[derive(Debug, Serialize, Deserialize)]
enum Op {
    /// Serve the endpoints of a kind; answers the service id. Each handler: its name, whether
    /// it answers, and metadata of its own (its JSON Schemas, see `crate::schema`).
    AddKind {
        kind: String,
        handlers: Vec<EndpointSpec>,
        workers: Vec<u64>,
        counted: Vec<u64>,
    },
    /// Answers the service id.
    Id,
    /// A `$SRV` request, from a listener.
    Request(Msg),
}

/// A handler's name, whether it answers, and its endpoint's own metadata entries.
type EndpointSpec = (String, bool, Vec<(String, String)>);

/// One kind the service describes.
struct Kind {
    endpoints: Vec<Endpoint>,
    workers: Vec<u64>,
    counted: Vec<u64>,
}

struct Discovery {
    client: NatsClient,
    namespace: String,
    identity: Identity,
    started: String,
    /// In the order they were added (`kinds` in the metadata).
    kinds: Vec<(String, Kind)>,
    /// The counts each worker and responder gave last.
    counts: HashMap<u64, Vec<Counter>>,
    listeners: Vec<u64>,
}

fn run_discovery(capture: Capture) {
    let Capture {
        client,
        namespace,
        id,
        ready,
    } = capture;
    // A listener that ends (its client closed) arrives as a message, not as this process' end.
    host::die_when_link_dies(false);
    let started = match start(client, namespace, id) {
        Ok(discovery) => discovery,
        Err(reason) => return ready.send::<Result<(), String>>(Err(reason)),
    };
    ready.send::<Result<(), String>>(Ok(()));
    started.serve();
}

fn start(client: NatsClient, namespace: String, id: Option<String>) -> Result<Discovery, String> {
    let name = service_api::service_name(&namespace)?;
    let id = match id {
        Some(id) => id,
        None => random_id()?,
    };
    let mut discovery = Discovery {
        client,
        identity: Identity {
            name,
            metadata: [
                ("node", id.clone()),
                ("kinds", String::new()),
                ("observe", observe_subject(&namespace, &id)),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
            id,
        },
        namespace,
        started: service_api::rfc3339(SystemTime::now()),
        kinds: Vec::new(),
        counts: HashMap::new(),
        listeners: Vec::new(),
    };
    let Identity { name, id, .. } = &discovery.identity;
    for subject in [
        "$SRV.*".to_owned(),
        format!("$SRV.*.{name}"),
        format!("$SRV.*.{name}.{id}"),
        observe_subject(&discovery.namespace, id),
    ] {
        match start_listener(&discovery.client, &subject) {
            Ok(listener) => discovery.listeners.push(listener),
            Err(reason) => {
                discovery.stop_listeners();
                return Err(format!(
                    "the services API ({subject}) of namespace {:?} could not be served: {reason}",
                    discovery.namespace
                ));
            }
        }
    }
    Ok(discovery)
}

/// 16 random hex digits.
fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| format!("no random service id (the host gave no randomness): {err}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Starts a listener on `subject`; returns once its subscription is confirmed.
fn start_listener(client: &NatsClient, subject: &str) -> Result<u64, String> {
    let ready = reply_slot();
    let capture = (client.clone(), subject.to_owned(), host::this().id, ready);
    let listener =
        spawn_linked(capture, run_listener, Tag::new()).map_err(|err| err.to_string())?;
    match wait_for::<Result<(), String>>(ready, listener, Some(START_WAIT)) {
        Ok(result) => result.map(|()| listener),
        Err(err) => {
            host::kill(listener);
            Err(format!("{err:?}"))
        }
    }
}

/// A listener: hands each `$SRV` request of its subscription to the discovery process.
fn run_listener((client, subject, discovery, ready): (NatsClient, String, u64, ReplyTo)) {
    let subscription = match client.subscribe(&subject) {
        Ok(subscription) => subscription,
        Err(err) => return ready.send::<Result<(), String>>(Err(err.to_string())),
    };
    ready.send::<Result<(), String>>(Ok(()));
    while let Some(request) = subscription.next() {
        cast(discovery, Op::Request(request));
    }
}

impl Discovery {
    fn serve(mut self) {
        let mut housekept = Instant::now();
        loop {
            match host::receive(&[], Some(HOUSEKEEPING)) {
                Received::Data if host::tag() >> 56 == ENVELOPE_HANDLER_ID => {
                    match decode_envelope::<Op>(host::tag()) {
                        Ok(envelope) => self.handle(envelope.message, envelope.reply_to),
                        Err(err) => eprintln!("swarm: $SRV of {}: {err}", self.namespace),
                    }
                }
                // Counts that came after their STATS had stopped waiting: still the latest.
                Received::Data => {
                    if let Ok(answer) = host::decode::<StatsAnswer>() {
                        self.counts.insert(answer.process, answer.counters);
                    }
                }
                // A listener ended: its connection is closed.
                Received::LinkDied => break,
                Received::ProcessDied | Received::TimedOut => {}
            }
            if housekept.elapsed() >= HOUSEKEEPING {
                housekept = Instant::now();
                if !self.keep_serving() {
                    break;
                }
            }
        }
        self.stop_listeners();
        // The next serve_agents of this namespace starts a new instance, under the same name.
        let name = format!(
            "swarm/nats-discovery/{}/{}",
            self.client.connection_id(),
            self.namespace
        );
        if host::registry_get(&name).map(|pid| pid.id) == Some(host::this().id) {
            host::registry_remove(&name);
        }
    }

    fn handle(&mut self, op: Op, reply_to: Option<ReplyTo>) {
        match op {
            Op::AddKind {
                kind,
                handlers,
                workers,
                counted,
            } => {
                self.add_kind(kind, &handlers, workers, counted);
                if let Some(reply_to) = reply_to {
                    reply_to.send(self.identity.id.clone());
                }
            }
            Op::Id => {
                if let Some(reply_to) = reply_to {
                    reply_to.send(self.identity.id.clone());
                }
            }
            Op::Request(request) => self.answer(&request),
        }
    }

    fn add_kind(
        &mut self,
        kind: String,
        handlers: &[EndpointSpec],
        workers: Vec<u64>,
        counted: Vec<u64>,
    ) {
        if let Some((_, known)) = self.kinds.iter_mut().find(|(name, _)| *name == kind) {
            // One more `serve_agents` of a kind already served: more workers, same endpoints.
            known.workers.extend(workers);
            known.counted.extend(counted);
            return;
        }
        let endpoints = handlers
            .iter()
            .map(|(handler, request, metadata)| {
                let mut endpoint = Endpoint::new(&self.namespace, &kind, handler, *request);
                endpoint.metadata.extend(metadata.iter().cloned());
                endpoint
            })
            .collect();
        self.kinds.push((
            kind,
            Kind {
                endpoints,
                workers,
                counted,
            },
        ));
        self.describe_kinds();
    }

    fn describe_kinds(&mut self) {
        let kinds: Vec<&str> = self.kinds.iter().map(|(name, _)| name.as_str()).collect();
        self.identity
            .metadata
            .insert("kinds".to_owned(), kinds.join(","));
    }

    /// Drops the kinds whose workers have all ended; whether there is anything left to serve.
    fn keep_serving(&mut self) -> bool {
        if self.client.is_closed() {
            return false;
        }
        let before = self.kinds.len();
        self.kinds
            .retain(|(_, kind)| kind.workers.iter().any(|&worker| host::exists(worker)));
        if self.kinds.len() != before {
            let counted: HashSet<u64> = self
                .kinds
                .iter()
                .flat_map(|(_, kind)| kind.counted.iter().copied())
                .collect();
            self.counts.retain(|process, _| counted.contains(process));
            self.describe_kinds();
        }
        !self.kinds.is_empty()
    }

    fn stop_listeners(&mut self) {
        for listener in self.listeners.drain(..) {
            host::unlink(listener);
            host::kill(listener);
        }
    }

    /// Answers one `$SRV.<VERB>[.<name>[.<id>]]` request (the subscriptions only deliver those
    /// for this name and id, or for every service), or an `observe` request.
    fn answer(&mut self, request: &Msg) {
        let Some(reply_subject) = request.reply_to.as_deref() else {
            return;
        };
        let verb = if request.subject.starts_with("$SRV.") {
            request.subject.split('.').nth(1)
        } else {
            Some("OBSERVE")
        };
        let answer = match verb {
            Some("PING") => self.identity.ping_json(),
            Some("INFO") => {
                let endpoints: Vec<Endpoint> = self
                    .kinds
                    .iter()
                    .flat_map(|(_, kind)| kind.endpoints.iter().cloned())
                    .collect();
                self.identity.info_json(&self.description(), &endpoints)
            }
            Some("STATS") => self.stats_json(),
            Some("OBSERVE") => self.observe_json(&request.payload),
            // Another verb: not one this service knows (ADR-32 has these three).
            _ => return,
        };
        if let Err(err) = self.client.publish(reply_subject, &answer) {
            eprintln!(
                "swarm: $SRV of {}: could not answer on {reply_subject:?}: {err}",
                self.namespace
            );
        }
    }

    /// The answer to an `observe` request (see the module docs).
    fn observe_json(&self, body: &[u8]) -> Vec<u8> {
        // Anything but `{"agents": n}` asks for the default: a request is never refused. Read
        // into a struct (serde skips other members without building them), and only a short
        // body: a large one is not a question this answers.
        #[derive(serde::Deserialize)]
        struct Ask {
            agents: Option<u64>,
        }
        let limit = (body.len() <= OBSERVE_BODY_MAX)
            .then(|| serde_json::from_slice::<Ask>(body).ok())
            .flatten()
            .and_then(|ask| ask.agents)
            .map_or(OBSERVE_AGENTS, |n| {
                usize::try_from(n).map_or(OBSERVE_AGENTS_MAX, |n| n.min(OBSERVE_AGENTS_MAX))
            });
        let mut answer = serde_json::json!({
            "type": "io.swarm.observe.v1",
            "name": self.identity.name,
            "id": self.identity.id,
            "namespace": self.namespace,
            "kinds": self.kinds.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        });
        match crate::runtime::registry::live_agents(limit) {
            Ok(live) => {
                answer["agents_live"] = live.total.into();
                answer["agents"] = serde_json::json!(live.agents);
            }
            Err(err) => {
                answer["agents_live"] = serde_json::Value::Null;
                answer["agents"] = serde_json::Value::Null;
                answer["agents_error"] = err.into();
            }
        }
        match crate::supervisor::trees() {
            Ok(trees) => answer["supervisors"] = serde_json::json!(trees),
            Err(err) => {
                answer["supervisors"] = serde_json::Value::Null;
                answer["supervisors_error"] = err.to_string().into();
            }
        }
        let max = self.client.max_payload() as usize;
        let mut text = serde_json::to_vec(&answer).unwrap_or_default();
        // Too large for the server: fewer agents until it fits (the trees are what an operator
        // came for); halving keeps it to a few encodings.
        while text.len() > max {
            let Some(agents) = answer["agents"].as_array_mut().filter(|a| !a.is_empty()) else {
                break;
            };
            let keep = agents.len() / 2;
            agents.truncate(keep);
            answer["cut"] = format!(
                "the answer was larger than the server's max_payload ({max} bytes): {keep} \
                 agents listed"
            )
            .into();
            text = serde_json::to_vec(&answer).unwrap_or_default();
        }
        if text.len() > max {
            answer["supervisors"] = serde_json::Value::Null;
            answer["cut"] = format!(
                "the supervision trees are larger than the server's max_payload ({max} bytes)"
            )
            .into();
            text = serde_json::to_vec(&answer).unwrap_or_default();
        }
        text
    }

    fn description(&self) -> String {
        format!(
            "swarm agents of namespace {ns}: request {ns}.<kind>.<key>.<handler> with a JSON \
             object of the handler's arguments; the answer is {{\"ok\": ..}} or {{\"error\": \
             {{\"kind\": .., \"message\": ..}}}}",
            ns = self.namespace
        )
    }

    fn stats_json(&mut self) -> Vec<u8> {
        self.pull_counts();
        let data = self.data();
        let zero = Counter::default();
        let totals: Vec<(&Endpoint, Counter)> = self
            .kinds
            .iter()
            .flat_map(|(_, kind)| {
                kind.endpoints
                    .iter()
                    .enumerate()
                    .map(|(handler, endpoint)| {
                        let mut total = Counter::default();
                        for process in &kind.counted {
                            let counts = self.counts.get(process);
                            total.add(counts.and_then(|c| c.get(handler)).unwrap_or(&zero));
                        }
                        (endpoint, total)
                    })
            })
            .collect();
        let endpoints: Vec<(&Endpoint, &Counter)> = totals
            .iter()
            .map(|(endpoint, total)| (*endpoint, total))
            .collect();
        self.identity.stats_json(&self.started, &endpoints, &data)
    }

    /// Asks every worker and responder for its counts; keeps what comes within [`STATS_WAIT`].
    fn pull_counts(&mut self) {
        let pull = StatsPull {
            to: host::this().id,
            tag: Tag::new().id(),
        };
        let mut waiting: HashSet<u64> = HashSet::new();
        for (_, kind) in &self.kinds {
            for &process in &kind.counted {
                if host::exists(process) && host::send(process, STATS_PULL_TAG, &pull).is_ok() {
                    waiting.insert(process);
                }
            }
        }
        let deadline = Instant::now() + STATS_WAIT;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match host::receive(&[pull.tag], Some(left.min(Duration::from_millis(50)))) {
                Received::Data => {
                    if let Ok(answer) = host::decode::<StatsAnswer>() {
                        waiting.remove(&answer.process);
                        self.counts.insert(answer.process, answer.counters);
                    }
                }
                // Nothing yet: a process that ended will not answer.
                _ => waiting.retain(|&process| host::exists(process)),
            }
        }
    }

    /// When the node serves metrics (`crate::metrics`), the same numbers for this namespace's
    /// kinds: `{"<kind>": {"<handler>": {"calls": {"<outcome>": n, ..}, "latency_count": n,
    /// "latency_sum_seconds": s}}}`, as `swarm_calls_total` and `swarm_call_duration_seconds`
    /// count them (calls that reached the agent, however they came: this node's front door, a
    /// handle, another node).
    fn metrics(&self) -> Option<serde_json::Value> {
        let collector = host::registry_get(crate::metrics::collector::NAME)?;
        let snapshot = crate::metrics::collector::snapshot(collector.id).ok()?;
        let mut kinds = serde_json::Map::new();
        for ((kind, handler), counts) in &snapshot.totals.calls {
            if !self.kinds.iter().any(|(name, _)| name == kind) {
                continue;
            }
            let calls: serde_json::Map<String, serde_json::Value> =
                crate::metrics::model::Outcome::ALL
                    .iter()
                    .filter(|outcome| counts.outcomes[outcome.index()] > 0)
                    .map(|outcome| {
                        (
                            outcome.as_str().to_owned(),
                            counts.outcomes[outcome.index()].into(),
                        )
                    })
                    .collect();
            let entry = kinds
                .entry(kind.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            entry[handler.as_str()] = serde_json::json!({
                "calls": calls,
                "latency_count": counts.latency.count,
                "latency_sum_seconds": counts.latency.sum_nanos as f64 / 1e9,
            });
        }
        Some(serde_json::Value::Object(kinds))
    }

    /// The node's figures, the `data` of every endpoint in STATS.
    fn data(&self) -> serde_json::Value {
        let live = crate::runtime::node::node_stats()
            .map(|stats| serde_json::Value::from(stats.live_agents))
            .unwrap_or(serde_json::Value::Null);
        let mut data = serde_json::json!({ "agents_live": live });
        if let Some(metrics) = self.metrics() {
            data["metrics"] = metrics;
        }
        let name = cluster_stats_name(&self.namespace);
        let Some(cluster) = host::registry_get(&name).filter(|pid| host::exists(pid.id)) else {
            return data;
        };
        match call::<ClusterStatsQuery, String>(
            cluster.id,
            ClusterStatsQuery,
            Some(CLUSTER_STATS_WAIT),
        ) {
            Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(figures @ serde_json::Value::Object(_)) => data["cluster"] = figures,
                _ => {
                    data["cluster_error"] =
                        format!("{name} answered something else than a JSON object").into()
                }
            },
            Err(err) => data["cluster_error"] = format!("{name} did not answer: {err:?}").into(),
        }
        data
    }
}

//! One swarm across many nodes: a key names one agent in the whole cluster, wherever it runs, and
//! when its node dies it comes back on another with every acknowledged write.
//!
//! Built on NATS JetStream only (no control plane of our own), after a study of how Orleans, Akka
//! sharding, Dapr and NATS KV keep one activation per key and where each lets a stale owner write:
//!
//! - **Membership** (`lease`): each node holds a lease `SWARM_NODES_<ns>/<node id>`, renewed
//!   every TTL/3 and trusted for 80% of the TTL from the send of its last acknowledged renewal,
//!   on the node's monotonic clock. A node that cannot renew in time fences itself (drops its
//!   agents, claims nothing) and rejoins as a new incarnation.
//! - **Single activation** (`directory`): `SWARM_DIR_<ns>/<kind>/<key>` names the owner (node id,
//!   incarnation, epoch), claimed by compare-and-set: of any number of racing nodes exactly one
//!   wins. Placement prefers the node that got the request.
//! - **Fencing** (`store::nats_kv`): agents keep their `#[persist]` state in
//!   `SWARM_STATE_<ns>`; a new owner fences the record before it serves, and every write is a
//!   compare-and-set on the revision the owner last wrote. A stale owner's write fails: it answers
//!   `moved` and stops. No acknowledged write is lost; no stale write is accepted.
//! - **Routing**: every node serves the front door `<ns>.<kind>.<key>.<handler>` in one queue
//!   group per kind; a node that is not the owner forwards the request, once, to the owner's node
//!   subject `_SWARM.<ns>.node.<node id>.<kind>.<key>.<handler>`, and the owner answers the
//!   caller directly.
//! - **Failover**: a dead node's lease expires after at most the TTL; the next request for one of
//!   its agents finds the directory naming a dead owner, claims it, and the agent starts here with
//!   its state from KV. Agents of a kind served with `ServeOptions::stay_up` do not wait for a
//!   request: each node's `keeper` activates them on a survivor once their node's lease is gone, or
//!   as soon as a draining node has stopped them.
//! - **Handles** (`remote`): `A::get_or_start(key)` on a node serving `A` returns a handle that
//!   reaches the agent here (mailbox) or on its owner (NATS, the owner's node subject), and finds it
//!   again when a call shows it gone without having applied anything (see `AgentRef`).
//! - **Placement**: the node that got the request claims the agent; a node at its
//!   `NodeLimits::max_agents` forwards the request to the node with the most room, which claims it.
//! - **Passivation** (`ServeOptions::idle`): an idle agent stops in order and the lease releases
//!   its directory entry; its next call activates it again wherever it lands.
//! - **Drain** (`_SWARM.<ns>.control.<node name>.drain`, or `Cluster::drain`): the node stops
//!   claiming, stops each of its agents in order (queued calls finish, state saved), releases each
//!   directory entry as soon as its agent stopped, and leaves.
//!
//! A node without a cluster is untouched by all this: nothing here runs unless `join` is called.

pub mod config;
#[cfg(target_arch = "wasm32")]
pub(crate) mod directory;
pub mod entries;
#[cfg(target_arch = "wasm32")]
mod keeper;
#[cfg(target_arch = "wasm32")]
mod lease;
#[cfg(target_arch = "wasm32")]
pub(crate) mod remote;

pub use config::{ClusterConfig, ConfigError, DEFAULT_LEASE_TTL, MIN_LEASE_TTL};

#[cfg(target_arch = "wasm32")]
pub(crate) use node::{get_or_start, locate, route_for, serves};
#[cfg(target_arch = "wasm32")]
pub use node::{join, Cluster, ClusterError, ServeOptions};

#[cfg(target_arch = "wasm32")]
mod node {
    use std::time::{Duration, Instant};

    use serde::{Deserialize, Serialize};

    use super::config::{ClusterConfig, Names};
    use super::directory::{ClusterRoute, Directory, KindOptions, Located};
    use super::lease::{self, Activation, LeaseArgs, LeaseOp};
    use crate::error::{CallFailure, StartError};
    use crate::nats::agents::{start_workers, Role};
    use crate::nats::ClusterStatsQuery;
    use crate::nats::{AgentService, JetStream, JsError, KvConfig, NatsClient, NatsError};
    use crate::runtime::agent::Agent;
    use crate::runtime::handle::{AgentHandle, AgentRef};
    use crate::runtime::host;
    use crate::runtime::host::Received;
    use crate::runtime::mailbox::{
        decode_envelope, shutdown_abstract_process, Envelope, ENVELOPE_HANDLER_ID,
    };
    use crate::runtime::process::spawn;
    use crate::store::StoreConfig;

    /// Why a node could not join, serve or drain.
    #[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
    pub enum ClusterError {
        /// The NATS connection failed.
        #[error("cluster: NATS: {0}")]
        Nats(#[from] NatsError),
        /// A JetStream call failed (a bucket that cannot be created or read, no permission, ...).
        #[error("cluster: {what}: {source}")]
        JetStream {
            /// What the node was doing.
            what: String,
            /// JetStream's error.
            source: JsError,
        },
        /// A process of the node could not be started or did not answer.
        #[error("cluster: {0}")]
        Node(String),
    }

    fn js_error(what: impl Into<String>) -> impl FnOnce(JsError) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::JetStream { what, source }
    }

    /// How [`Cluster::serve_with`] serves a kind.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServeOptions {
        /// Worker processes on the front door, and as many on the node's own subject. Default 2.
        pub workers: usize,
        /// Whether this node takes callers' requests for the kind (the front door). Default true.
        pub front_door: bool,
        /// Passivation: an agent without a message for this long runs `#[on_stop]`, saves, stops
        /// and releases its directory entry (within a third of the lease TTL); its next call
        /// activates it again, here or on another node, with its state. Default: the kind's
        /// `PASSIVATE_AFTER` (`#[agent(passivate_after = ..)]`), else never.
        pub idle: Option<Duration>,
        /// Keep every agent of the kind up across node losses (Akka's "remember entities"):
        /// when the node holding one dies (its lease runs out), is fenced, or drains, another
        /// node activates it at once, with its state, instead of on its next call. The agent's
        /// own end (a crash, a stop) on a live node is not a node loss: it comes back on its
        /// next call, as any agent does. Not passivated (`idle` is ignored). Default false.
        pub stay_up: bool,
    }

    impl Default for ServeOptions {
        fn default() -> Self {
            ServeOptions {
                workers: 2,
                front_door: true,
                idle: None,
                stay_up: false,
            }
        }
    }

    /// A node that joined a cluster: serve agent kinds on it with [`Cluster::serve`].
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Cluster {
        names: Names,
        node_name: String,
        node_id: String,
        client: NatsClient,
        route: ClusterRoute,
        lease_ttl: Duration,
    }

    /// Joins the cluster of `config`: connects, creates the namespace's buckets if they are
    /// missing, takes a lease, and makes the node's NATS connection the one the NATS KV store uses.
    pub fn join(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let names = Names::new(&config.namespace);
        let connect = config
            .connect
            .clone()
            .name(format!("swarm-{}-{}", config.namespace, config.node_name));
        let client = NatsClient::connect(connect)?;
        let js = JetStream::new(client.clone());
        let bucket = |name: String, max_age: Option<Duration>| {
            let mut kv = KvConfig::new(name.clone());
            kv.replicas = config.replicas;
            kv.max_age = max_age;
            js.create_kv(&kv)
                .map_err(js_error(format!("opening bucket {name}")))
        };
        let nodes = bucket(names.nodes_bucket(), Some(config.lease_ttl))?;
        let directory = bucket(names.directory_bucket(), None)?;
        let _state = bucket(names.state_bucket(), None)?;
        // Only now that the buckets are there: the NATS KV store of agents uses this connection.
        crate::runtime::node::set_node_nats(client.clone()).map_err(ClusterError::Node)?;
        let node_id = format!("{}-{}", config.node_name, unique_suffix());
        let capacity = crate::runtime::node::limits().max_agents as u64;
        let sent = Instant::now();
        let revision = lease::join(&nodes, &node_id, &config.node_name, capacity).map_err(
            js_error(format!("taking the lease {}/{node_id}", nodes.name())),
        )?;
        let lease = spawn(
            LeaseArgs {
                nodes: nodes.clone(),
                node_id: node_id.clone(),
                node_name: config.node_name.clone(),
                ttl: config.lease_ttl,
                capacity,
                revision,
                sent_millis_ago: sent.elapsed().as_millis() as u64,
            },
            lease::run_lease,
        )
        .map_err(|err| ClusterError::Node(format!("starting the lease process: {err}")))?;
        // The services API's STATS shows the cluster's figures (see `nats::discovery`).
        let relay = spawn(lease, relay_stats)
            .map_err(|err| ClusterError::Node(format!("starting the stats relay: {err}")))?;
        host::registry_put(
            &crate::nats::cluster_stats_name(&names.namespace),
            host::Pid::local(relay),
        );
        let route = ClusterRoute {
            names: names.clone(),
            node_id: node_id.clone(),
            node_name: config.node_name.clone(),
            directory,
            nodes,
            lease,
            state: StoreConfig::nats_kv_replicated(names.state_bucket(), config.replicas),
            kinds: Default::default(),
        };
        crate::runtime::mailbox::cast(lease, LeaseOp::SetRoute(Box::new(route.clone())));
        Ok(Cluster {
            names,
            node_name: config.node_name,
            node_id,
            client,
            route,
            lease_ttl: config.lease_ttl,
        })
    }

    /// The registry name that marks kind `kind` as served by this node's cluster (its value is
    /// the lease process).
    fn served_kind_name(kind: &str) -> String {
        format!("swarm/cluster/kind/{kind}")
    }

    /// Whether this node serves `A` in a cluster (then its agents are the cluster's).
    pub(crate) fn serves<A: Agent>() -> bool {
        host::registry_get(&served_kind_name(A::KIND)).is_some()
    }

    /// `A::get_or_start(key)` on a node that serves `A` in a cluster: the agent of the whole
    /// cluster, found or claimed here, or a handle that reaches it on the node that owns it.
    pub(crate) fn get_or_start<A: Agent>(
        key: A::Key,
        key_text: &str,
    ) -> Result<A::Handle, StartError> {
        let refuse = |reason: String| StartError::Registry {
            kind: A::KIND.into(),
            key: key_text.into(),
            reason,
        };
        match find::<A>(key, key_text).map_err(&refuse)? {
            Located::Here(agent) => Ok(agent),
            Located::Forward(node) => Ok(A::Handle::from_raw(AgentRef::remote(
                node,
                key_text.to_owned(),
            ))),
            Located::Refused("overloaded", message) => Err(StartError::Overloaded {
                kind: A::KIND.into(),
                key: key_text.into(),
                limit: message,
            }),
            Located::Refused(kind, message) => Err(refuse(format!("{kind}: {message}"))),
        }
    }

    /// Where a handle's agent is now (see `AgentRef`): found here, or on the node that owns it,
    /// or claimed and started here if nobody holds it.
    pub(crate) fn locate<A: Agent>(key_text: &str) -> Result<A::Handle, CallFailure> {
        let key = crate::key::parse_key_text::<A::Key>(A::KIND, key_text).map_err(|err| {
            CallFailure::Refused {
                kind: "invalid_key".into(),
                message: err.to_string(),
            }
        })?;
        match find::<A>(key, key_text).map_err(CallFailure::Unavailable)? {
            Located::Here(agent) => Ok(agent),
            Located::Forward(node) => Ok(A::Handle::from_raw(AgentRef::remote(
                node,
                key_text.to_owned(),
            ))),
            Located::Refused(kind @ ("unavailable" | "overloaded"), message) => {
                Err(CallFailure::Unavailable(format!("{kind}: {message}")))
            }
            Located::Refused("moved", message) => Err(CallFailure::Moved(message)),
            Located::Refused(kind, message) => Err(CallFailure::Refused {
                kind: kind.into(),
                message,
            }),
        }
    }

    /// Looks `A`'s `key` up in the cluster's directory, as a front door worker of this node
    /// would (claiming it for this node if nobody holds it).
    fn find<A: Agent>(key: A::Key, key_text: &str) -> Result<Located<A>, String> {
        Ok(Directory::new(*route_for::<A>()?).locate::<A>(key, key_text, false))
    }

    /// The route of this node's cluster, which serves `A`.
    pub(crate) fn route_for<A: Agent>() -> Result<Box<ClusterRoute>, String> {
        let lease = host::registry_get(&served_kind_name(A::KIND))
            .ok_or_else(|| "the cluster stopped serving this kind".to_owned())?;
        let route: Option<Box<ClusterRoute>> = lease::ask(lease.id, LeaseOp::Route)?;
        route.ok_or_else(|| "the node is still joining its cluster".to_owned())
    }

    /// Answers the discovery's [`ClusterStatsQuery`] with the lease process' figures; ends
    /// with the lease process.
    fn relay_stats(lease: u64) {
        loop {
            if host::receive(&[], Some(Duration::from_secs(1))) != Received::Data {
                if !host::exists(lease) {
                    return;
                }
                continue;
            }
            if host::tag() >> 56 != ENVELOPE_HANDLER_ID {
                continue;
            }
            let Ok(Envelope {
                reply_to: Some(reply_to),
                ..
            }) = decode_envelope::<ClusterStatsQuery>(host::tag())
            else {
                continue;
            };
            match lease::ask::<String>(lease, LeaseOp::Stats) {
                Ok(figures) => reply_to.send(figures),
                Err(_lease_gone) => return,
            }
        }
    }

    /// Six random hex digits: two runs of one node name never share an id, so the directory
    /// entries of a run that died read as dead to the next.
    fn unique_suffix() -> String {
        let mut bytes = [0u8; 3];
        if getrandom::getrandom(&mut bytes).is_err() {
            // No entropy from the host: the clock's nanoseconds differ between runs too.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.subsec_nanos());
            bytes.copy_from_slice(&nanos.to_le_bytes()[..3]);
        }
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    impl Cluster {
        /// This node's id in the cluster: its name and a suffix unique to this run.
        pub fn node_id(&self) -> &str {
            &self.node_id
        }

        /// This node's configured name.
        pub fn node_name(&self) -> &str {
            &self.node_name
        }

        /// The namespace.
        pub fn namespace(&self) -> &str {
            &self.names.namespace
        }

        /// The node's NATS connection.
        pub fn client(&self) -> &NatsClient {
            &self.client
        }

        /// The lease TTL this node was configured with.
        pub fn lease_ttl(&self) -> Duration {
            self.lease_ttl
        }

        /// Serves agents of kind `A` across the cluster: `workers` processes on the front door
        /// `<ns>.<kind>.<key>.<handler>` (shared by every node in one queue group) and as many
        /// on this node's own subject, where other nodes forward the requests for agents it
        /// owns. Agents are started with their state in the cluster's KV bucket.
        pub fn serve<A: Agent>(&self, workers: usize) -> Result<Vec<AgentService>, ClusterError> {
            self.serve_with::<A>(ServeOptions {
                workers,
                ..ServeOptions::default()
            })
        }

        /// As [`Cluster::serve`], but without the front door: this node holds and serves agents
        /// of kind `A` that requests are forwarded to (it claims them when a request is forwarded
        /// here to be placed), and takes no requests from callers itself.
        pub fn serve_owned_only<A: Agent>(
            &self,
            workers: usize,
        ) -> Result<Vec<AgentService>, ClusterError> {
            self.serve_with::<A>(ServeOptions {
                workers,
                front_door: false,
                ..ServeOptions::default()
            })
        }

        /// Serves agents of kind `A` across the cluster as `options` say (see [`ServeOptions`]).
        pub fn serve_with<A: Agent>(
            &self,
            options: ServeOptions,
        ) -> Result<Vec<AgentService>, ClusterError> {
            let ServeOptions {
                workers,
                front_door,
                idle,
                stay_up,
            } = options;
            let kind = A::KIND;
            let options = KindOptions {
                idle: idle.or(A::PASSIVATE_AFTER).filter(|_| !stay_up),
                stay_up,
            };
            let mut route = self.route.clone();
            route.kinds.insert(kind.to_owned(), options);
            crate::runtime::mailbox::cast(
                self.route.lease,
                LeaseOp::ServeKind(kind.to_owned(), options),
            );
            let front = if !front_door {
                None
            } else {
                Some(start_workers::<A>(
                    &self.client,
                    self.names.front_door(kind),
                    self.names.front_door_queue(kind),
                    format!("{}.{kind}.", self.names.namespace),
                    workers,
                    Some(Role {
                        route: route.clone(),
                        owner: false,
                    }),
                    Some(&self.names.namespace),
                )?)
            };
            host::registry_put(&served_kind_name(kind), host::Pid::local(self.route.lease));
            let own = self.names.node_prefix(&self.node_id);
            let owner = start_workers::<A>(
                &self.client,
                format!("{own}.{kind}.*.*"),
                own.clone(),
                format!("{own}.{kind}."),
                workers,
                Some(Role {
                    route: route.clone(),
                    owner: true,
                }),
                // Counted where they came in, at the front door.
                None,
            );
            match owner {
                Ok(owner) => {
                    let services: Vec<AgentService> = front.into_iter().chain([owner]).collect();
                    if stay_up {
                        if let Err(err) = spawn(route, super::keeper::keep_up::<A>) {
                            services.iter().for_each(AgentService::stop);
                            return Err(ClusterError::Node(format!(
                                "starting the keeper of {kind}: {err}"
                            )));
                        }
                    }
                    crate::runtime::mailbox::cast(
                        self.route.lease,
                        LeaseOp::Served(services.clone()),
                    );
                    Ok(services)
                }
                Err(err) => {
                    if let Some(front) = front {
                        front.stop();
                    }
                    Err(err.into())
                }
            }
        }

        /// The cluster's figures for STATS, as a JSON object (activations, forwards, CAS
        /// conflicts, lease renewals and their latency, ...).
        pub fn stats(&self) -> Result<serde_json::Value, ClusterError> {
            let text: String =
                lease::ask(self.route.lease, LeaseOp::Stats).map_err(ClusterError::Node)?;
            serde_json::from_str(&text).map_err(|err| ClusterError::Node(err.to_string()))
        }

        /// Drains the node: it stops claiming agents, stops each of its agents in order (calls
        /// already queued finish, state is saved) and releases its directory entry at once, so
        /// another node takes it on its next call; then leaves the cluster. Returns how long it
        /// took. The node's front door keeps answering meanwhile (forwarding, or `unavailable`
        /// for its own agents while they move); stop serving afterwards.
        pub fn drain(&self) -> Result<Duration, ClusterError> {
            let started = Instant::now();
            let (activations, services): (Vec<Activation>, Vec<AgentService>) =
                lease::ask(self.route.lease, LeaseOp::StartDrain).map_err(ClusterError::Node)?;
            for activation in &activations {
                let _gone_or_stopped =
                    shutdown_abstract_process(activation.pid, Duration::from_secs(5));
                if host::exists(activation.pid) {
                    host::kill(activation.pid);
                }
                let _another_node_claimed_it_already = self
                    .route
                    .directory
                    .delete(&activation.dir_key, Some(activation.revision));
            }
            // Agents kept up are activated elsewhere now that they stopped here: tell the other
            // nodes' keepers to look (they would at their next tick anyway).
            let kept_up: std::collections::BTreeSet<&str> = activations
                .iter()
                .filter(|activation| activation.stay_up.is_some())
                .filter_map(|activation| activation.dir_key.split_once('/'))
                .map(|(kind, _)| kind)
                .collect();
            for kind in kept_up {
                let _they_look_at_their_next_tick =
                    self.client.publish(&self.names.keeper_nudge(kind), b"");
            }
            // Then stop taking requests: every worker unsubscribes and answers what it was already
            // given (forwarded, or `unavailable` for the agents that just moved).
            for service in &services {
                service.stop_gracefully(Duration::from_secs(2));
            }
            lease::ask::<()>(self.route.lease, LeaseOp::Leave).map_err(ClusterError::Node)?;
            Ok(started.elapsed())
        }

        /// Serves `_SWARM.<ns>.control.<node name>.drain` and blocks the calling process until a
        /// drain asked there is over (the reply to the drain request is sent first). Returns the
        /// drain's duration; the node should then end (return from `main`).
        pub fn run_until_drained(&self) -> Result<Duration, ClusterError> {
            let subject = self.names.control(&self.node_name, "drain");
            let subscription = self.client.subscribe(&subject)?;
            loop {
                let Some(request) = subscription.next() else {
                    return Err(ClusterError::Node(format!(
                        "the subscription to {subject} ended"
                    )));
                };
                let took = self.drain();
                let reply = match &took {
                    Ok(took) => {
                        serde_json::json!({ "ok": { "drained_ms": took.as_millis() as u64 } })
                    }
                    Err(err) => {
                        serde_json::json!({ "error": { "kind": "drain_failed", "message": err.to_string() } })
                    }
                };
                if request.reply_to.is_some() {
                    let _caller_gone = self.client.respond(&request, reply.to_string());
                    let _ = self.client.flush();
                }
                if let Ok(took) = took {
                    return Ok(took);
                }
            }
        }
    }
}

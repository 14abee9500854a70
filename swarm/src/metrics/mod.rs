//! Operating a node: metrics in Prometheus' text format, and liveness and readiness, served over
//! HTTP by the node itself. Off unless asked: [`serve`] (or `SWARM_METRICS_ADDR` for the nodes
//! that read it with [`MetricsConfig::from_env`]) starts them.
//!
//! ```no_run
//! # #[cfg(target_arch = "wasm32")]
//! # fn run() -> Result<(), swarm::metrics::MetricsError> {
//! let bound = swarm::metrics::serve(swarm::metrics::MetricsConfig::listen("127.0.0.1:9464"))?;
//! println!("metrics on http://{bound}/metrics");
//! # Ok(())
//! # }
//! # fn main() {}
//! ```
//!
//! `GET /metrics` answers these families (counters reset when the node restarts):
//!
//! | family | type | labels |
//! |---|---|---|
//! | `swarm_calls_total` | counter | `kind`, `handler`, `outcome` (`ok`, `panicked`, `persist_failed`, `over_memory`, `moved`, `expired`, `overloaded`, `replayed`) |
//! | `swarm_call_duration_seconds` | histogram | `kind`, `handler`: from the agent taking the call to its answer; sampled (every call up to 32 per agent and second, then one in 64) |
//! | `swarm_agents_live` | gauge | `kind` |
//! | `swarm_agent_starts_total` | counter | `result` (`started`, `failed`, `refused`) |
//! | `swarm_supervisor_child_{starts,restarts,crashes}_total` | counter | `supervisor`, `child` |
//! | `swarm_supervisor_give_ups_total` | counter | `supervisor` |
//! | `swarm_store_operations_total` | counter | `backend`, `operation` (`load`, `save`), `result` |
//! | `swarm_store_operation_duration_seconds` | histogram | `backend`, `operation` |
//! | `swarm_nats_*` (with [`MetricsConfig::nats`]) | | connected, reconnects, dropped, subscriptions, pending requests, messages and bytes per `direction` |
//! | `swarm_cluster_*` (with [`MetricsConfig::cluster`]) | | activations, forwards, CAS conflicts, moved replies, lease renewals and their latency, agents, fencings |
//!
//! `GET /livez` is 200 while the node's processes answer; `GET /readyz` is 200 when the store
//! answers a read, the NATS connection (if configured) is connected and every supervisor that
//! started on the node is up, else 503, with one line per check saying why.
//!
//! **What it costs.** Agents count in their own memory (a Lunatic process is single-threaded:
//! no lock, no host call; two clock reads per timed call, and a busy agent times one call in
//! 64) and send their counts to the node's
//! metrics process at most once a second, when they end, and when they crash; a scrape reads
//! the totals from it. Agents started while metrics are off count nothing, so start serving
//! metrics before starting agents. An agent killed from outside loses what it counted in its
//! last second. `BENCHMARKS.md` has the cost on the local request path.

// The pure parts (the text format, HTTP request lines, the counts and their rendering) are
// used by the Lunatic side only; natively they are unit tested.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod exposition;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod http;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod model;
// Used by the agent runtime, which exists only inside Lunatic; its unit tests run natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod variant;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod otlp;

#[cfg(target_arch = "wasm32")]
pub(crate) mod collector;
#[cfg(target_arch = "wasm32")]
mod exporter;
#[cfg(target_arch = "wasm32")]
mod listener;
#[cfg(target_arch = "wasm32")]
pub(crate) mod local;

#[cfg(target_arch = "wasm32")]
use crate::store::StoreConfig;

/// What the node's operations listener serves, and where.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    listen: String,
    store: Option<StoreConfig>,
    #[cfg(all(target_arch = "wasm32", feature = "nats"))]
    nats: Option<crate::nats::NatsClient>,
    #[cfg(all(target_arch = "wasm32", feature = "nats"))]
    cluster: Option<String>,
}

#[cfg(target_arch = "wasm32")]
impl MetricsConfig {
    /// Listens on `addr` (`host:port`; port 0 picks a free one, which [`serve`] returns).
    pub fn listen(addr: impl Into<String>) -> Self {
        MetricsConfig {
            listen: addr.into(),
            store: None,
            #[cfg(all(target_arch = "wasm32", feature = "nats"))]
            nats: None,
            #[cfg(all(target_arch = "wasm32", feature = "nats"))]
            cluster: None,
        }
    }

    /// `SWARM_METRICS_ADDR` from the environment, if it is set and not empty: how the nodes in
    /// this repository (examples, test nodes) are asked to serve metrics.
    pub fn from_env() -> Option<Self> {
        std::env::var("SWARM_METRICS_ADDR")
            .ok()
            .filter(|addr| !addr.trim().is_empty())
            .map(|addr| MetricsConfig::listen(addr.trim()))
    }

    /// The store readiness reads from (default: the node's default store when asked).
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = Some(store);
        self
    }

    /// Shows this NATS connection's figures, and makes readiness require it connected.
    #[cfg(all(target_arch = "wasm32", feature = "nats"))]
    pub fn nats(mut self, client: &crate::nats::NatsClient) -> Self {
        self.nats = Some(client.clone());
        self
    }

    /// Shows the figures of this node's cluster in `namespace` (see [`crate::cluster`]).
    #[cfg(all(target_arch = "wasm32", feature = "nats"))]
    pub fn cluster(mut self, namespace: impl Into<String>) -> Self {
        self.cluster = Some(namespace.into());
        self
    }
}

/// Why metrics could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// This node serves metrics already.
    #[error("this node serves metrics already")]
    AlreadyServing,
    /// This node exports spans already.
    #[error("this node exports spans already")]
    AlreadyExporting,
    /// The listener could not start (the address is taken, not valid, or not allowed).
    #[error("the metrics listener did not start: {0}")]
    Listen(String),
    /// A process could not be spawned.
    #[error("the metrics processes did not start: {0}")]
    Spawn(String),
}

/// Starts serving metrics, liveness and readiness on `config`'s address; returns the address
/// bound (`host:port`). Agents started from now on count their calls.
#[cfg(target_arch = "wasm32")]
pub fn serve(config: MetricsConfig) -> Result<String, MetricsError> {
    use crate::runtime::host::{self, Named};
    use crate::runtime::mailbox::{reply_slot, wait_for};
    use crate::runtime::process::{spawn, spawn_named};

    let sources = collector::Sources {
        store: config.store.clone(),
        #[cfg(all(target_arch = "wasm32", feature = "nats"))]
        nats: config.nats.clone(),
        #[cfg(all(target_arch = "wasm32", feature = "nats"))]
        cluster: config.cluster.clone(),
    };
    let collector = match spawn_named(collector::NAME, sources, collector::collector_main) {
        Ok(Named::Started(id)) => id,
        Ok(Named::Found(_)) => return Err(MetricsError::AlreadyServing),
        Err(err) => return Err(MetricsError::Spawn(err.to_string())),
    };
    // Without a listener there are no metrics: take the name back, so agents count nothing.
    let undo = |collector: u64| {
        host::registry_remove(collector::NAME);
        host::kill(collector);
    };
    let ready = reply_slot();
    let listener = match spawn((config.listen.clone(), ready), listener::listener_main) {
        Ok(id) => id,
        Err(err) => {
            undo(collector);
            return Err(MetricsError::Spawn(err.to_string()));
        }
    };
    match wait_for::<Result<String, String>>(
        ready,
        listener,
        Some(std::time::Duration::from_secs(10)),
    ) {
        Ok(Ok(bound)) => {
            crate::log::info(
                "metrics.listening",
                &[("addr", &bound)],
                "serving /metrics, /livez and /readyz",
            );
            Ok(bound)
        }
        Ok(Err(reason)) => {
            undo(collector);
            Err(MetricsError::Listen(reason))
        }
        Err(err) => {
            undo(collector);
            host::kill(listener);
            Err(MetricsError::Listen(format!("{err:?}")))
        }
    }
}

/// A NATS connection's figures, for a scrape (zeros, disconnected, if it does not answer).
#[cfg(all(target_arch = "wasm32", feature = "nats"))]
fn nats_figures(client: &crate::nats::NatsClient) -> model::NatsFigures {
    match client.status() {
        Ok(status) => model::NatsFigures {
            connected: status.state == crate::nats::ConnState::Connected,
            reconnects: status.reconnects,
            dropped: status.dropped,
            subscriptions: status.subscriptions as u64,
            pending_requests: status.pending_requests as u64,
            messages_out: status.messages_out,
            bytes_out: status.bytes_out,
            messages_in: status.messages_in,
            bytes_in: status.bytes_in,
        },
        Err(_) => model::NatsFigures::default(),
    }
}

/// The figures of the cluster in `namespace` on this node, from the process that gives them to
/// `$SRV.STATS`; `None` if it does not run or answer.
#[cfg(all(target_arch = "wasm32", feature = "nats"))]
fn cluster_figures(namespace: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use crate::nats::{cluster_stats_name, ClusterStatsQuery, CLUSTER_STATS_WAIT};
    use crate::runtime::mailbox::call;
    let stats = crate::runtime::host::registry_get(&cluster_stats_name(namespace))?;
    let text: String = call(stats.id, ClusterStatsQuery, Some(CLUSTER_STATS_WAIT)).ok()?;
    match serde_json::from_str(&text).ok()? {
        serde_json::Value::Object(figures) => Some(figures),
        _ => None,
    }
}

/// Exports a span for every call that reaches an agent with a trace context (a W3C
/// `traceparent`: the NATS header, a native client's `trace(..)`, or a handler's own call) to an
/// OpenTelemetry collector's OTLP/HTTP endpoint at `addr` (`host:port`; spans are posted to
/// `/v1/traces` as JSON, in batches, at most a second late), as service `service`. Each span is
/// the agent's own: its parent is the caller's span, its name `<kind>.<handler>`, with the key
/// as an attribute and an error status when the call failed (panicked, not saved, ...). Agents
/// started from now on record them; a call without a trace context records nothing. A batch the
/// collector does not take is dropped and logged (`trace.export_failed`).
#[cfg(target_arch = "wasm32")]
pub fn export_spans(addr: &str, service: &str) -> Result<(), MetricsError> {
    use crate::runtime::host::Named;
    use crate::runtime::process::spawn_named;
    let target = exporter::Target {
        addr: addr.to_owned(),
        service: service.to_owned(),
    };
    match spawn_named(exporter::NAME, target, exporter::exporter_main) {
        Ok(Named::Started(_)) => Ok(()),
        Ok(Named::Found(_)) => Err(MetricsError::AlreadyExporting),
        Err(err) => Err(MetricsError::Spawn(err.to_string())),
    }
}

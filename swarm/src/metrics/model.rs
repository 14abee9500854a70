//! What a node counts, as plain data: the deltas processes send the node's metrics process, the
//! totals it keeps, and how one scrape renders them (see [`render`]). Pure, so it is tested
//! natively; the processes that move these values around are in `collector.rs` and `local.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::exposition::{Exposition, Histogram, Type};

/// How one call to an agent ended, as `swarm_calls_total`'s `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler ran and its answer was sent (a handler's own `Err` is an answer too).
    Ok,
    /// The handler panicked.
    Panicked,
    /// The handler's change could not be saved.
    PersistFailed,
    /// The agent held more memory than its `max_memory` after the handler.
    OverMemory,
    /// A save found the record taken over by another node (cluster fencing).
    Moved,
    /// The caller had stopped waiting before the agent took the call: not run.
    Expired,
    /// Refused at the agent's mailbox bound: not run.
    Overloaded,
    /// A repeated request id, answered with the first answer: not run again.
    Replayed,
}

impl Outcome {
    /// Every outcome, in the order of [`Outcome::index`].
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Panicked,
        Outcome::PersistFailed,
        Outcome::OverMemory,
        Outcome::Moved,
        Outcome::Expired,
        Outcome::Overloaded,
        Outcome::Replayed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Panicked => "panicked",
            Outcome::PersistFailed => "persist_failed",
            Outcome::OverMemory => "over_memory",
            Outcome::Moved => "moved",
            Outcome::Expired => "expired",
            Outcome::Overloaded => "overloaded",
            Outcome::Replayed => "replayed",
        }
    }

    /// Its slot in a per-outcome array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One handler's calls since the last delta of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerCounts {
    /// Calls per outcome, indexed by [`Outcome::index`].
    pub outcomes: [u64; Outcome::ALL.len()],
    /// Time from the agent taking the call to its answer, for calls that ran.
    pub latency: Histogram,
}

impl HandlerCounts {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.outcomes.iter().all(|&n| n == 0)
    }

    fn add(&mut self, other: &HandlerCounts) {
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes.iter()) {
            *mine += theirs;
        }
        self.latency.add(&other.latency);
    }
}

/// One kind of store operation's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Their duration, failed or not.
    pub latency: Histogram,
}

impl StoreCounts {
    fn add(&mut self, other: &StoreCounts) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latency.add(&other.latency);
    }
}

/// What an agent process counted since its last delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsDelta {
    /// The agent kind.
    pub kind: String,
    /// `(handler, counts)` for the handlers it served.
    pub handlers: Vec<(String, HandlerCounts)>,
    /// `(backend, operation, counts)` for its store operations.
    pub store: Vec<(String, String, StoreCounts)>,
}

/// What a supervisor did, as it tells the node's metrics process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorEvent {
    /// Supervisor `supervisor` (process `process`) has started its children.
    Up {
        /// Its name (the `supervisor!` definition's).
        supervisor: String,
        /// Its process.
        process: u64,
    },
    /// It started a child (`restart`: as a restart).
    ChildStarted {
        /// The supervisor.
        supervisor: String,
        /// The child's name in the definition (a pool's members count under the pool's name).
        child: String,
        /// Whether it was a restart.
        restart: bool,
    },
    /// A child ended abnormally (a crash or a kill).
    ChildCrashed {
        /// The supervisor.
        supervisor: String,
        /// The child.
        child: String,
    },
    /// It went past its restart intensity, or a child could not restart: it stops and fails.
    GaveUp {
        /// The supervisor.
        supervisor: String,
        /// Its process.
        process: u64,
    },
    /// It was shut down in order (not a failure).
    Stopped {
        /// The supervisor.
        supervisor: String,
        /// Its process.
        process: u64,
    },
}

/// A supervisor child's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    /// Starts, restarts included.
    pub starts: u64,
    /// Restarts.
    pub restarts: u64,
    /// Abnormal ends.
    pub crashes: u64,
}

/// The state of the latest instance of a supervisor, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorState {
    /// Running (as far as events tell; readiness also checks that the process exists).
    Up(u64),
    /// It gave up: it failed, and nothing restarted it since.
    GaveUp,
    /// Shut down in order.
    Stopped,
}

/// Everything the node's metrics process adds up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Per `(kind, handler)`.
    pub calls: BTreeMap<(String, String), HandlerCounts>,
    /// Per `(backend, operation)`.
    pub store: BTreeMap<(String, String), StoreCounts>,
    /// Per `(supervisor, child)`.
    pub children: BTreeMap<(String, String), ChildCounts>,
    /// Give-ups per supervisor.
    pub give_ups: BTreeMap<String, u64>,
    /// The latest instance of each supervisor.
    pub supervisors: BTreeMap<String, SupervisorState>,
    /// Messages that reached handlers bound to subjects, per `(kind, handler, outcome)`.
    pub subjects: BTreeMap<(String, String, String), u64>,
}

/// What became of the messages published on a subject a handler is bound to, counted by the
/// process that subscribes (`nats::subjects`): `(kind, handler, outcome, count)`, with outcome
/// `delivered` (in the agent's mailbox), `malformed` (a payload that is not the handler's
/// argument as JSON), `invalid_key` (a key token that is not a valid key), `start_failed` (the
/// agent could not start). Only `delivered` reached an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectsDelta {
    /// The counts since the subscriber's last delta.
    pub counts: Vec<(String, String, String, u64)>,
}

impl Totals {
    /// Adds an agent process' delta.
    pub fn add_calls(&mut self, delta: CallsDelta) {
        for (handler, counts) in delta.handlers {
            self.calls
                .entry((delta.kind.clone(), handler))
                .or_default()
                .add(&counts);
        }
        for (backend, operation, counts) in delta.store {
            self.store
                .entry((backend, operation))
                .or_default()
                .add(&counts);
        }
    }

    /// Adds a subject subscriber's delta.
    pub fn add_subjects(&mut self, delta: SubjectsDelta) {
        for (kind, handler, outcome, n) in delta.counts {
            *self.subjects.entry((kind, handler, outcome)).or_default() += n;
        }
    }

    /// Takes a supervisor's event into account.
    pub fn add_supervisor(&mut self, event: SupervisorEvent) {
        match event {
            SupervisorEvent::Up {
                supervisor,
                process,
            } => {
                self.supervisors
                    .insert(supervisor, SupervisorState::Up(process));
            }
            SupervisorEvent::ChildStarted {
                supervisor,
                child,
                restart,
            } => {
                let counts = self.children.entry((supervisor, child)).or_default();
                counts.starts += 1;
                counts.restarts += u64::from(restart);
            }
            SupervisorEvent::ChildCrashed { supervisor, child } => {
                self.children
                    .entry((supervisor, child))
                    .or_default()
                    .crashes += 1;
            }
            SupervisorEvent::GaveUp {
                supervisor,
                process,
            } => {
                *self.give_ups.entry(supervisor.clone()).or_default() += 1;
                // Only the instance that gave up: a newer one may be up already.
                if self.supervisors.get(&supervisor) == Some(&SupervisorState::Up(process)) {
                    self.supervisors.insert(supervisor, SupervisorState::GaveUp);
                }
            }
            SupervisorEvent::Stopped {
                supervisor,
                process,
            } => {
                if self.supervisors.get(&supervisor) == Some(&SupervisorState::Up(process)) {
                    self.supervisors
                        .insert(supervisor, SupervisorState::Stopped);
                }
            }
        }
    }
}

/// A NATS connection's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsFigures {
    /// Whether it is connected now.
    pub connected: bool,
    /// Reconnects since it first connected.
    pub reconnects: u64,
    /// Publishes dropped (see the client's status).
    pub dropped: u64,
    /// Live subscriptions.
    pub subscriptions: u64,
    /// Requests waiting for a reply.
    pub pending_requests: u64,
    /// Messages the connection queued for the server.
    pub messages_out: u64,
    /// Their header and payload bytes.
    pub bytes_out: u64,
    /// Messages the server delivered to it.
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
}

/// What a scrape reads from other processes at the moment it is taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFigures {
    /// Live agents per kind (from the node's registry).
    pub live_by_kind: BTreeMap<String, u64>,
    /// Agents started, failed and refused starts (the registry's [`crate::NodeStats`]).
    pub starts: Option<(u64, u64, u64)>,
    /// The configured NATS connection, if any; `Err` when it could not be asked.
    pub nats: Option<NatsFigures>,
    /// The cluster's figures (the JSON object its stats process answers), if the node is in one.
    pub cluster: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Renders one scrape.
pub fn render(totals: &Totals, node: &NodeFigures) -> String {
    let mut text = Exposition::default();
    text.family(
        "swarm_calls_total",
        Type::Counter,
        "Calls agents of this node took, per kind, handler and outcome.",
    );
    for ((kind, handler), counts) in &totals.calls {
        for outcome in Outcome::ALL {
            let n = counts.outcomes[outcome.index()];
            // Outcomes that never happened stay out: a handful of series per handler, not eight.
            if n > 0 || outcome == Outcome::Ok {
                text.sample(
                    "swarm_calls_total",
                    &[
                        ("kind", kind),
                        ("handler", handler),
                        ("outcome", outcome.as_str()),
                    ],
                    n as f64,
                );
            }
        }
    }
    text.family(
        "swarm_call_duration_seconds",
        Type::Histogram,
        "Time from an agent taking a call to its answer (handler run and save), per kind and handler; sampled: every call up to 32 per agent and second, then one in 64.",
    );
    for ((kind, handler), counts) in &totals.calls {
        text.histogram(
            "swarm_call_duration_seconds",
            &[("kind", kind), ("handler", handler)],
            &counts.latency,
        );
    }
    if !totals.subjects.is_empty() {
        text.family(
            "swarm_subject_messages_total",
            Type::Counter,
            "Messages published on subjects that handlers are bound to (core NATS or a JetStream stream), per kind, handler and outcome (delivered, malformed, invalid_key, start_failed; for a stream also failed: delivered again later); only delivered ones reached an agent (for a stream: applied and acked).",
        );
        for ((kind, handler, outcome), n) in &totals.subjects {
            text.sample(
                "swarm_subject_messages_total",
                &[("kind", kind), ("handler", handler), ("outcome", outcome)],
                *n as f64,
            );
        }
    }
    text.family(
        "swarm_agents_live",
        Type::Gauge,
        "Agents with a key running on this node, per kind.",
    );
    for (kind, live) in &node.live_by_kind {
        text.sample("swarm_agents_live", &[("kind", kind)], *live as f64);
    }
    if let Some((started, failed, refused)) = node.starts {
        text.family(
            "swarm_agent_starts_total",
            Type::Counter,
            "Agent starts on this node's registry, per result.",
        );
        for (result, n) in [
            ("started", started),
            ("failed", failed),
            ("refused", refused),
        ] {
            text.sample("swarm_agent_starts_total", &[("result", result)], n as f64);
        }
    }
    for (name, help, pick) in [
        (
            "swarm_supervisor_child_starts_total",
            "Starts of a supervisor's child, restarts included.",
            (|c: &ChildCounts| c.starts) as fn(&ChildCounts) -> u64,
        ),
        (
            "swarm_supervisor_child_restarts_total",
            "Restarts of a supervisor's child.",
            |c: &ChildCounts| c.restarts,
        ),
        (
            "swarm_supervisor_child_crashes_total",
            "Abnormal ends (crashes, kills) of a supervisor's child.",
            |c: &ChildCounts| c.crashes,
        ),
    ] {
        text.family(name, Type::Counter, help);
        for ((supervisor, child), counts) in &totals.children {
            text.sample(
                name,
                &[("supervisor", supervisor), ("child", child)],
                pick(counts) as f64,
            );
        }
    }
    text.family(
        "swarm_supervisor_give_ups_total",
        Type::Counter,
        "Times a supervisor went past its restart intensity (or could not restart a child) and failed.",
    );
    for supervisor in totals.supervisors.keys() {
        let n = totals.give_ups.get(supervisor).copied().unwrap_or(0);
        text.sample(
            "swarm_supervisor_give_ups_total",
            &[("supervisor", supervisor)],
            n as f64,
        );
    }
    text.family(
        "swarm_store_operations_total",
        Type::Counter,
        "Store operations of agents (load at start, save after a change), per backend, operation and result.",
    );
    for ((backend, operation), counts) in &totals.store {
        for (result, n) in [("ok", counts.ok), ("error", counts.failed)] {
            text.sample(
                "swarm_store_operations_total",
                &[
                    ("backend", backend),
                    ("operation", operation),
                    ("result", result),
                ],
                n as f64,
            );
        }
    }
    text.family(
        "swarm_store_operation_duration_seconds",
        Type::Histogram,
        "Duration of agents' store operations, per backend and operation.",
    );
    for ((backend, operation), counts) in &totals.store {
        text.histogram(
            "swarm_store_operation_duration_seconds",
            &[("backend", backend), ("operation", operation)],
            &counts.latency,
        );
    }
    if let Some(nats) = &node.nats {
        render_nats(&mut text, nats);
    }
    if let Some(cluster) = &node.cluster {
        render_cluster(&mut text, cluster);
    }
    text.finish()
}

fn render_nats(text: &mut Exposition, nats: &NatsFigures) {
    let gauge = |text: &mut Exposition, name: &str, help: &str, value: u64| {
        text.family(name, Type::Gauge, help);
        text.sample(name, &[], value as f64);
    };
    let counter = |text: &mut Exposition, name: &str, help: &str, value: u64| {
        text.family(name, Type::Counter, help);
        text.sample(name, &[], value as f64);
    };
    gauge(
        text,
        "swarm_nats_connected",
        "1 when the node's NATS connection is up, else 0.",
        u64::from(nats.connected),
    );
    counter(
        text,
        "swarm_nats_reconnects_total",
        "Reconnects of the node's NATS connection.",
        nats.reconnects,
    );
    counter(
        text,
        "swarm_nats_dropped_total",
        "Publishes the NATS connection dropped (over its buffer while disconnected, or too large).",
        nats.dropped,
    );
    gauge(
        text,
        "swarm_nats_subscriptions",
        "Live subscriptions of the NATS connection.",
        nats.subscriptions,
    );
    gauge(
        text,
        "swarm_nats_pending_requests",
        "Requests on the NATS connection waiting for their reply.",
        nats.pending_requests,
    );
    for (name, help, figures) in [
        (
            "swarm_nats_messages_total",
            "Messages on the node's NATS connection, per direction (in: delivered to it, out: queued by it).",
            [nats.messages_in, nats.messages_out],
        ),
        (
            "swarm_nats_bytes_total",
            "Bytes of those messages, per direction (in: payloads; out: headers and payloads).",
            [nats.bytes_in, nats.bytes_out],
        ),
    ] {
        text.family(name, Type::Counter, help);
        for (direction, value) in ["in", "out"].into_iter().zip(figures) {
            text.sample(name, &[("direction", direction)], value as f64);
        }
    }
}

/// The cluster's figures, from the JSON its lease process gives `$SRV.STATS` too.
fn render_cluster(text: &mut Exposition, cluster: &serde_json::Map<String, serde_json::Value>) {
    let node = cluster
        .get("node_id")
        .and_then(|id| id.as_str())
        .unwrap_or("")
        .to_owned();
    let labels = [("node", node.as_str())];
    let number = |field: &str| cluster.get(field).and_then(|value| value.as_f64());
    for (field, name, help) in [
        (
            "activations",
            "swarm_cluster_activations_total",
            "Agents this node claimed and activated in the cluster.",
        ),
        (
            "forwards",
            "swarm_cluster_forwards_total",
            "Requests this node forwarded to the owner's node.",
        ),
        (
            "cas_conflicts",
            "swarm_cluster_cas_conflicts_total",
            "Directory claims this node lost to another (compare-and-set conflicts).",
        ),
        (
            "moved_replies",
            "swarm_cluster_moved_replies_total",
            "Writes refused because another node had taken the agent over (`moved`).",
        ),
        (
            "lease_renewals",
            "swarm_cluster_lease_renewals_total",
            "Renewals of this node's lease.",
        ),
        (
            "fenced",
            "swarm_cluster_fencings_total",
            "Times this node fenced itself (its lease could not be renewed in time) and rejoined.",
        ),
    ] {
        if let Some(value) = number(field) {
            text.family(name, Type::Counter, help);
            text.sample(name, &labels, value);
        }
    }
    for (field, name, help, scale) in [
        (
            "cluster_agents",
            "swarm_cluster_agents",
            "Cluster agents active on this node.",
            1.0,
        ),
        (
            "incarnation",
            "swarm_cluster_incarnation",
            "This node's incarnation (it grows when the node rejoins after fencing itself).",
            1.0,
        ),
        (
            "lease_renew_avg_us",
            "swarm_cluster_lease_renew_average_seconds",
            "Average time of a lease renewal.",
            1e-6,
        ),
        (
            "lease_renew_max_us",
            "swarm_cluster_lease_renew_max_seconds",
            "Longest lease renewal.",
            1e-6,
        ),
    ] {
        if let Some(value) = number(field) {
            text.family(name, Type::Gauge, help);
            text.sample(name, &labels, value * scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_up_and_render_per_outcome() {
        let mut totals = Totals::default();
        let mut counts = HandlerCounts::default();
        counts.outcomes[Outcome::Ok.index()] = 2;
        counts.outcomes[Outcome::Panicked.index()] = 1;
        counts.latency.observe(30_000);
        let delta = CallsDelta {
            kind: "chat-room".into(),
            handlers: vec![("post".into(), counts)],
            store: vec![("file".into(), "save".into(), StoreCounts::default())],
        };
        totals.add_calls(delta.clone());
        totals.add_calls(delta);
        let text = render(&totals, &NodeFigures::default());
        assert!(text
            .contains("swarm_calls_total{kind=\"chat-room\",handler=\"post\",outcome=\"ok\"} 4\n"));
        assert!(text.contains(
            "swarm_calls_total{kind=\"chat-room\",handler=\"post\",outcome=\"panicked\"} 2\n"
        ));
        assert!(!text.contains("outcome=\"moved\""));
        assert!(text.contains(
            "swarm_call_duration_seconds_count{kind=\"chat-room\",handler=\"post\"} 2\n"
        ));
        // No NATS configured: no NATS families.
        assert!(!text.contains("swarm_nats_"));
    }

    #[test]
    fn a_supervisor_that_gave_up_is_not_up_until_it_starts_again() {
        let mut totals = Totals::default();
        let up = |process| SupervisorEvent::Up {
            supervisor: "S".into(),
            process,
        };
        totals.add_supervisor(up(1));
        totals.add_supervisor(SupervisorEvent::ChildStarted {
            supervisor: "S".into(),
            child: "a".into(),
            restart: true,
        });
        totals.add_supervisor(SupervisorEvent::GaveUp {
            supervisor: "S".into(),
            process: 1,
        });
        assert_eq!(totals.supervisors["S"], SupervisorState::GaveUp);
        totals.add_supervisor(up(2));
        // A late give-up of the old instance does not mark the new one.
        totals.add_supervisor(SupervisorEvent::GaveUp {
            supervisor: "S".into(),
            process: 1,
        });
        assert_eq!(totals.supervisors["S"], SupervisorState::Up(2));
        assert_eq!(totals.give_ups["S"], 2);
        let text = render(&totals, &NodeFigures::default());
        assert!(text
            .contains("swarm_supervisor_child_restarts_total{supervisor=\"S\",child=\"a\"} 1\n"));
        assert!(text.contains("swarm_supervisor_give_ups_total{supervisor=\"S\"} 2\n"));
    }
}

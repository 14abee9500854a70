//! The node's membership: one process per joined node that holds its lease in
//! `SWARM_NODES_<ns>/<node id>`, renews it every TTL/3, and fences the node when it cannot.
//!
//! **Deadlines are the node's own, on its monotonic clock**, measured from when the last renewal
//! that JetStream acknowledged was *sent* (a renewal acknowledged late still only counts from its
//! send). The node trusts its lease until `sent + 80% of the TTL`; the server removes the entry at
//! `acknowledged + TTL` at the earliest. So the node stops acting as an owner before any other
//! node can see it gone, whatever happened in between: a paused process (SIGSTOP, a VM stall), a
//! partition, a slow server.
//!
//! **Fencing.** Past the deadline, or when a renewal finds the entry changed or gone, the node
//! fences itself: it kills the agents it activated (their state is whatever was acknowledged, all
//! of it in KV), refuses to claim anything until it has rejoined, and rejoins at once as a new
//! incarnation. Directory entries of the old incarnation then name a dead owner, and are claimed
//! again by whichever node gets a request for them first. Writes an agent of the old incarnation
//! still tries fail their compare-and-set once a new owner fenced the record (see
//! `store::nats_kv`).
//!
//! The same process counts what the cluster's STATS report (activations, forwards, conflicts,
//! renewal latency) and answers the discovery's `swarm/cluster-stats/<ns>` requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::entries::{self, DirEntry, NodeEntry};
use crate::nats::{JsError, KvBucket};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{call, decode_envelope, Envelope, ENVELOPE_HANDLER_ID};

/// How long callers wait for the lease process.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// The share of the TTL the node trusts its lease for, from the send of its last renewal.
const TRUSTED_SHARE: f64 = 0.8;

/// What the lease process is told or asked.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LeaseOp {
    /// The incarnation to claim with; `None` while fenced or draining (claim nothing).
    Incarnation,
    /// A worker activated an agent here after claiming its directory entry at `revision`;
    /// `stay_up` is the incarnation of its stay-up record, for a kind kept up.
    Activated {
        pid: u64,
        dir_key: String,
        revision: u64,
        stay_up: Option<u64>,
    },
    /// The node serves `kind` so (handles and keepers read it from the route).
    ServeKind(String, super::directory::KindOptions),
    /// Counters to add (from workers: forwards, conflicts).
    Count(Counters),
    /// The figures for STATS, as a JSON object.
    Stats,
    /// The route workers use (set once by `join`); asked by handles on this node.
    SetRoute(Box<super::directory::ClusterRoute>),
    Route,
    /// A kind's workers (front door, then owner), for the drain to stop.
    Served(Vec<crate::nats::AgentService>),
    /// Stop claiming (a drain starts); answers the agents activated here and the workers.
    StartDrain,
    /// A drain is over: remove the node's entry and stop renewing.
    Leave,
}

/// Counters kept by the lease process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub activations: u64,
    pub forwards: u64,
    pub cas_conflicts: u64,
    pub moved_replies: u64,
}

/// An agent this node activated, as the drain needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Activation {
    pub pid: u64,
    pub dir_key: String,
    pub revision: u64,
    /// The incarnation of its stay-up record, for a kind kept up.
    pub stay_up: Option<u64>,
}

/// Everything the lease process starts with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LeaseArgs {
    pub nodes: KvBucket,
    pub node_id: String,
    pub node_name: String,
    pub ttl: Duration,
    pub capacity: u64,
    /// The revision of the entry written by `join` (incarnation 1), and when that write was sent.
    pub revision: u64,
    pub sent_millis_ago: u64,
}

/// Asks the lease process `lease`.
pub(crate) fn ask<T: Serialize + for<'de> Deserialize<'de>>(
    lease: u64,
    op: LeaseOp,
) -> Result<T, String> {
    call::<LeaseOp, T>(lease, op, Some(ASK_TIMEOUT))
        .map_err(|err| format!("the node's lease process did not answer: {err:?}"))
}

/// Writes the first entry of a node (incarnation 1): returns its revision.
pub(crate) fn join(
    nodes: &KvBucket,
    node_id: &str,
    node_name: &str,
    capacity: u64,
) -> Result<u64, JsError> {
    let entry = NodeEntry {
        name: node_name.to_owned(),
        incarnation: 1,
        agents: 0,
        capacity,
        draining: false,
    };
    nodes.create(node_id, &entries::encode(&entry))
}

struct Lease {
    args: LeaseArgs,
    incarnation: u64,
    revision: u64,
    /// Until when the node may act as an owner.
    trusted_until: Instant,
    /// `false` while draining or left: claims are refused.
    claiming: bool,
    /// Fenced, and not yet rejoined as the next incarnation: claims are refused.
    rejoining: bool,
    left: bool,
    activations: HashMap<u64, Activation>,
    route: Option<Box<super::directory::ClusterRoute>>,
    served: Vec<crate::nats::AgentService>,
    counters: Counters,
    renewals: u64,
    renew_latency_max: Duration,
    renew_latency_total: Duration,
    fenced: u64,
}

pub(crate) fn run_lease(args: LeaseArgs) {
    let ttl = args.ttl;
    let sent = Instant::now() - Duration::from_millis(args.sent_millis_ago);
    let mut lease = Lease {
        incarnation: 1,
        revision: args.revision,
        trusted_until: sent + ttl.mul_f64(TRUSTED_SHARE),
        args,
        claiming: true,
        rejoining: false,
        left: false,
        activations: HashMap::new(),
        route: None,
        served: Vec::new(),
        counters: Counters::default(),
        renewals: 0,
        renew_latency_max: Duration::ZERO,
        renew_latency_total: Duration::ZERO,
        fenced: 0,
    };
    let every = ttl / 3;
    let mut next_renewal = Instant::now() + every;
    loop {
        if lease.left {
            return;
        }
        // Checked first on every wake-up: after a pause, the node must not act on a lease it no
        // longer holds, not even to answer one question.
        if !lease.rejoining && Instant::now() >= lease.trusted_until {
            lease.fence("the lease could not be renewed within its TTL");
            next_renewal = Instant::now();
        }
        let now = Instant::now();
        if now >= next_renewal {
            let was_rejoining = lease.rejoining;
            let done = if was_rejoining {
                lease.rejoin()
            } else {
                lease.renew()
            };
            next_renewal = match done {
                Ok(()) => Instant::now() + every,
                // A failed renewal or rejoin (server restarting, timeout): try again soon, and
                // answer questions meanwhile (a fenced node claims nothing).
                Err(()) => Instant::now() + Duration::from_millis(250).min(every),
            };
            if lease.rejoining && !was_rejoining {
                // Fenced by this renewal's answer: rejoin at once.
                next_renewal = Instant::now();
            }
            continue;
        }
        match host::receive(&[], Some(next_renewal - now)) {
            Received::Data if host::tag() >> 56 == ENVELOPE_HANDLER_ID => {
                match decode_envelope::<LeaseOp>(host::tag()) {
                    Ok(envelope) => lease.handle(envelope),
                    Err(err) => eprintln!("swarm: the cluster lease dropped a message: {err}"),
                }
            }
            _ => {}
        }
    }
}

impl Lease {
    fn handle(&mut self, envelope: Envelope<LeaseOp>) {
        let reply_to = envelope.reply_to;
        match envelope.message {
            LeaseOp::Incarnation => {
                let incarnation =
                    (self.claiming && !self.rejoining && Instant::now() < self.trusted_until)
                        .then_some(self.incarnation);
                if let Some(reply_to) = reply_to {
                    reply_to.send(incarnation);
                }
            }
            LeaseOp::Activated {
                pid,
                dir_key,
                revision,
                stay_up,
            } => {
                self.counters.activations += 1;
                self.activations.insert(
                    pid,
                    Activation {
                        pid,
                        dir_key,
                        revision,
                        stay_up,
                    },
                );
            }
            LeaseOp::ServeKind(kind, options) => {
                if let Some(route) = &mut self.route {
                    route.kinds.insert(kind, options);
                }
            }
            LeaseOp::Count(more) => {
                self.counters.activations += more.activations;
                self.counters.forwards += more.forwards;
                self.counters.cas_conflicts += more.cas_conflicts;
                self.counters.moved_replies += more.moved_replies;
            }
            LeaseOp::Stats => {
                if let Some(reply_to) = reply_to {
                    reply_to.send(self.stats().to_string());
                }
            }
            LeaseOp::SetRoute(route) => self.route = Some(route),
            LeaseOp::Route => {
                if let Some(reply_to) = reply_to {
                    reply_to.send(self.route.clone());
                }
            }
            LeaseOp::Served(services) => self.served.extend(services),
            LeaseOp::StartDrain => {
                self.claiming = false;
                // Said in the lease at once: other nodes' keepers take the agents kept up here
                // as soon as each has stopped, not only once the node has left.
                if !self.rejoining {
                    let _renewed_again_on_schedule = self.renew();
                }
                self.prune();
                if let Some(reply_to) = reply_to {
                    reply_to.send((
                        self.activations.values().cloned().collect::<Vec<_>>(),
                        self.served.clone(),
                    ));
                }
            }
            LeaseOp::Leave => {
                let _gone_anyway_after_the_ttl = self
                    .args
                    .nodes
                    .delete(&self.args.node_id, Some(self.revision));
                self.left = true;
                if let Some(reply_to) = reply_to {
                    reply_to.send(());
                }
            }
        }
    }

    fn stats(&self) -> serde_json::Value {
        let average = if self.renewals == 0 {
            0
        } else {
            (self.renew_latency_total / self.renewals as u32).as_micros() as u64
        };
        serde_json::json!({
            "node_id": self.args.node_id,
            "node_name": self.args.node_name,
            "incarnation": self.incarnation,
            "cluster_agents": self.activations.len(),
            "activations": self.counters.activations,
            "forwards": self.counters.forwards,
            "cas_conflicts": self.counters.cas_conflicts,
            "moved_replies": self.counters.moved_replies,
            "fenced": self.fenced,
            "lease_renewals": self.renewals,
            "lease_renew_avg_us": average,
            "lease_renew_max_us": self.renew_latency_max.as_micros() as u64,
        })
    }

    /// Forgets agents whose process has ended, and releases their directory entries (an agent
    /// that passivated, stopped or crashed here is claimed afresh by whichever node gets its next
    /// call). The release is a delete on the revision the agent was started at: a start here since
    /// (which claims again on that revision first) makes it fail, and the entry stays.
    ///
    /// An agent kept up that ended here while the node serves is no longer kept up (its own end:
    /// a crash or a stop comes back on its next call, as any agent's does); its stay-up record
    /// goes. While the node drains, the records stay: they are how the other nodes know to
    /// activate those agents at once when this node has left.
    fn prune(&mut self) {
        let ended: Vec<Activation> = self
            .activations
            .values()
            .filter(|activation| !host::exists(activation.pid))
            .cloned()
            .collect();
        self.activations.retain(|&pid, _| host::exists(pid));
        let Some(route) = &self.route else { return };
        for activation in ended {
            let live_again = self
                .activations
                .values()
                .any(|live| live.dir_key == activation.dir_key);
            if !live_again {
                let _claimed_again_meanwhile = route
                    .directory
                    .delete(&activation.dir_key, Some(activation.revision));
            }
            if let (Some(incarnation), true) = (activation.stay_up, self.claiming && !live_again) {
                if let Some((kind, key)) = activation.dir_key.split_once('/') {
                    let record =
                        super::directory::stay_up_key(kind, &self.args.node_id, incarnation, key);
                    let _gone_already = route.directory.delete(&record, None);
                }
            }
        }
    }

    fn entry(&self) -> Vec<u8> {
        entries::encode(&NodeEntry {
            name: self.args.node_name.clone(),
            incarnation: self.incarnation,
            agents: self.activations.len() as u64,
            capacity: self.args.capacity,
            draining: !self.claiming,
        })
    }

    fn renew(&mut self) -> Result<(), ()> {
        self.prune();
        let sent = Instant::now();
        match self
            .args
            .nodes
            .update(&self.args.node_id, &self.entry(), self.revision)
        {
            Ok(revision) => {
                let took = sent.elapsed();
                self.revision = revision;
                self.renewals += 1;
                self.renew_latency_total += took;
                self.renew_latency_max = self.renew_latency_max.max(took);
                // Only if the deadline has not passed meanwhile (a renewal that took longer than
                // the rest of the lease): the fence below handles that one.
                if Instant::now() < self.trusted_until {
                    self.trusted_until = sent + self.args.ttl.mul_f64(TRUSTED_SHARE);
                }
                Ok(())
            }
            // The entry is not the one this node last wrote: it expired (the node was paused or cut
            // off for longer than the TTL) or was removed.
            Err(JsError::WrongLastSequence { .. }) => {
                self.fence("the lease entry expired or changed before it was renewed");
                Ok(())
            }
            Err(err) => {
                eprintln!(
                    "swarm: cluster node={} lease renewal failed: {err}",
                    self.args.node_name
                );
                Err(())
            }
        }
    }

    /// Stops acting as an owner; the loop then rejoins as the next incarnation (`rejoin`).
    fn fence(&mut self, reason: &str) {
        self.fenced += 1;
        let killed = self.activations.len();
        for &pid in self.activations.keys() {
            host::kill(pid);
        }
        self.activations.clear();
        println!(
            "swarm-cluster-node fenced name={} reason={reason:?} agents_stopped={killed}",
            self.args.node_name
        );
        // A new incarnation, so that directory entries of the old one read as dead.
        self.incarnation += 1;
        self.rejoining = true;
    }

    /// Writes the lease of the next incarnation; `Err` to try again a little later.
    fn rejoin(&mut self) -> Result<(), ()> {
        let sent = Instant::now();
        match self.args.nodes.put(&self.args.node_id, &self.entry()) {
            Ok(revision) => {
                self.revision = revision;
                self.trusted_until = sent + self.args.ttl.mul_f64(TRUSTED_SHARE);
                self.rejoining = false;
                println!(
                    "swarm-cluster-node rejoined name={} incarnation={}",
                    self.args.node_name, self.incarnation
                );
                Ok(())
            }
            Err(err) => {
                eprintln!(
                    "swarm: cluster node={} cannot rejoin yet: {err}",
                    self.args.node_name
                );
                Err(())
            }
        }
    }
}

/// Whether the directory entry `entry` names a node whose lease is live now.
pub(crate) fn owner_is_live(nodes: &KvBucket, entry: &DirEntry) -> Result<bool, String> {
    let bucket = nodes.name().to_owned();
    match nodes.get_from_leader(&entry.node) {
        Ok(None) => Ok(false),
        Ok(Some(found)) => {
            let node: NodeEntry = entries::decode(
                "node entry",
                &bucket,
                &entry.node,
                found.revision,
                &found.value,
            )
            .map_err(|err| err.to_string())?;
            Ok(node.incarnation == entry.incarnation)
        }
        Err(err) => Err(format!("reading node {:?} in {bucket}: {err}", entry.node)),
    }
}

//! Where an agent of the cluster lives: the directory `SWARM_DIR_<ns>/<kind>/<key>` → owner,
//! claimed by compare-and-set, and each front-door worker's small cache of it.
//!
//! A worker that gets a request for a key:
//! 1. finds the agent in this node's registry: it is the owner, the request goes to the mailbox;
//! 2. or knows the owner from its cache (checked against the directory at most [`FRESH_FOR`]
//!    ago): the request is forwarded to the owner's node subject, once;
//! 3. or reads the entry from the stream leader. An entry naming a live node is cached and
//!    forwarded to; an absent entry is claimed with `Create`, an entry naming a dead node (its
//!    lease gone, or an older incarnation) with `Update` on the entry's revision. Of any number of
//!    nodes racing for one key exactly one wins; the others read the winner and forward to it.
//!    The winner starts the agent here (placement prefers the node that got the request), whose
//!    store then fences the record (see `store::nats_kv`).
//!
//! A request that reached this node as the owner (on its node subject) is never forwarded again:
//! if the directory names another node, the caller gets `moved` and asks again.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::entries::{self, DirEntry};
use super::lease::{self, Counters, LeaseOp};
use crate::error::StartError;
use crate::nats::{JsError, KvBucket};
use crate::runtime::agent::Agent;
use crate::runtime::handle::{AgentHandle, Launcher};
use crate::store::StoreConfig;

/// How long a worker trusts what it learnt about an owner before reading the directory again: a
/// drained or dead owner's keys move within about this long after its entry changed.
pub const FRESH_FOR: Duration = Duration::from_millis(500);
/// Claims tried before a request is refused (each lost claim means another node won it).
const CLAIM_ATTEMPTS: usize = 4;
/// How long a live owner has to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_millis(250);

/// What a worker needs to find owners and claim keys (plain data: it travels to the workers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterRoute {
    pub names: super::config::Names,
    pub node_id: String,
    pub node_name: String,
    pub directory: KvBucket,
    pub nodes: KvBucket,
    pub lease: u64,
    pub state: StoreConfig,
    /// How this node serves each kind (as `Cluster::serve_with` was told).
    pub kinds: BTreeMap<String, KindOptions>,
}

/// How agents of one kind are kept (see `ServeOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KindOptions {
    /// Passivation after this long without a message.
    pub idle: Option<Duration>,
    /// Kept up across node losses: each activation is recorded under this node
    /// ([`stay_up_key`]), and another node activates it at once when this one is gone (see
    /// `keeper`).
    pub stay_up: bool,
}

/// The record `up.<kind>.<node id>.<incarnation>.<key>` in the directory bucket: agent `key` of
/// `kind` is kept up, and runs on that incarnation of that node. Its value is empty: the key says
/// it all, so that finding the records of a dead node reads no value.
pub(crate) fn stay_up_key(kind: &str, node_id: &str, incarnation: u64, key: &str) -> String {
    format!("up.{kind}.{node_id}.{incarnation}.{key}")
}

/// The node id, incarnation and key of a [`stay_up_key`] of `kind`.
pub(crate) fn parse_stay_up_key<'a>(
    kind: &str,
    record: &'a str,
) -> Option<(&'a str, u64, &'a str)> {
    let rest = record
        .strip_prefix("up.")?
        .strip_prefix(kind)?
        .strip_prefix('.')?;
    let (node, rest) = rest.split_once('.')?;
    let (incarnation, key) = rest.split_once('.')?;
    Some((node, incarnation.parse().ok()?, key))
}

/// Where one request goes.
pub(crate) enum Located<A: Agent> {
    /// The agent runs here.
    Here(A::Handle),
    /// Another node owns it: forward to this subject prefix (`_SWARM.<ns>.node.<id>`).
    Forward(String),
    /// Refused, with the error kind and message for the caller.
    Refused(&'static str, String),
}

struct Known {
    node: String,
    checked: Instant,
    /// The owner did not answer a ping: until this is checked again, callers are told to call
    /// again rather than have their request forwarded into the void.
    unreachable: bool,
}

/// One worker's view of the directory.
pub(crate) struct Directory {
    route: ClusterRoute,
    owners: HashMap<String, Known>,
    counters: Counters,
    last_flush: Instant,
    /// New agents this worker placed on other nodes since their lease entry's revision (the
    /// first number) said their load: node id → (revision, agents placed).
    placed: HashMap<String, (u64, u64)>,
}

impl Directory {
    pub fn new(route: ClusterRoute) -> Directory {
        Directory {
            route,
            owners: HashMap::new(),
            counters: Counters::default(),
            last_flush: Instant::now(),
            placed: HashMap::new(),
        }
    }

    /// Finds (or claims and starts) the owner of `A`'s `key` for a request; `forwarded` is true
    /// when the request came to this node as the owner already.
    pub fn locate<A: Agent>(&mut self, key: A::Key, key_text: &str, forwarded: bool) -> Located<A> {
        let located = self.locate_inner::<A>(key, key_text, forwarded);
        match &located {
            Located::Forward(_) => self.counters.forwards += 1,
            Located::Refused("moved", _) => self.counters.moved_replies += 1,
            _ => {}
        }
        self.flush_counters();
        located
    }

    fn locate_inner<A: Agent>(
        &mut self,
        key: A::Key,
        key_text: &str,
        forwarded: bool,
    ) -> Located<A> {
        if let Some(agent) = Launcher::<A>::default().lookup(key.clone()) {
            return Located::Here(agent);
        }
        let dir_key = format!("{}/{key_text}", A::KIND);
        if let Some(known) = self.owners.get(&dir_key) {
            if known.checked.elapsed() < FRESH_FOR && known.node != self.route.node_id {
                if known.unreachable {
                    return unreachable(&dir_key, &known.node);
                }
                let node = known.node.clone();
                return self.elsewhere(&dir_key, &node, forwarded);
            }
        }
        let bucket = self.route.directory.name().to_owned();
        for _ in 0..CLAIM_ATTEMPTS {
            let current = match self.route.directory.get_from_leader(&dir_key) {
                Ok(current) => current,
                Err(err) => {
                    return unavailable(format!(
                        "reading the directory entry {bucket}/{dir_key}: {err}"
                    ))
                }
            };
            let found = match current {
                None => None,
                Some(found) => match entries::decode::<DirEntry>(
                    "directory entry",
                    &bucket,
                    &dir_key,
                    found.revision,
                    &found.value,
                ) {
                    Ok(entry) => Some((entry, found)),
                    Err(corrupt) => {
                        return Located::Refused("corrupt_directory", corrupt.to_string())
                    }
                },
            };
            // Another node's entry: go there if it is alive (a draining or rejoining node still
            // forwards; only claiming needs this node's lease).
            if let Some((entry, _)) = found.as_ref().filter(|(e, _)| e.node != self.route.node_id) {
                match lease::owner_is_live(&self.route.nodes, entry) {
                    Ok(true) => {
                        let unreachable = !forwarded && !self.answers::<A>(&entry.node);
                        self.owners.insert(
                            dir_key.clone(),
                            Known {
                                node: entry.node.clone(),
                                checked: Instant::now(),
                                unreachable,
                            },
                        );
                        if unreachable {
                            return self::unreachable(&dir_key, &entry.node);
                        }
                        return self.elsewhere(&dir_key, &entry.node, forwarded);
                    }
                    Ok(false) => {}
                    Err(err) => return unavailable(err),
                }
            }
            let Some(incarnation) = self.incarnation() else {
                return Located::Refused(
                    "unavailable",
                    format!(
                        "node {} is rejoining the cluster or draining and takes no agents now; call again",
                        self.route.node_name
                    ),
                );
            };
            let claimed = match found {
                None => {
                    let entry = DirEntry {
                        node: self.route.node_id.clone(),
                        incarnation,
                        epoch: 1,
                    };
                    self.route
                        .directory
                        .create(&dir_key, &entries::encode(&entry))
                }
                Some((entry, found)) => {
                    if entry.node == self.route.node_id && entry.incarnation == incarnation {
                        // Ours already (the agent passivated, stopped or crashed here since):
                        // claim it again on its revision, so that the lease's release of the
                        // ended agent's entry (a delete on that same revision) and this start
                        // cannot both happen; then start it again.
                        self.route
                            .directory
                            .update(&dir_key, &found.value, found.revision)
                    } else {
                        // A dead owner (its lease gone, or an earlier incarnation of this node).
                        let claim = DirEntry {
                            node: self.route.node_id.clone(),
                            incarnation,
                            epoch: entry.epoch + 1,
                        };
                        self.route.directory.update(
                            &dir_key,
                            &entries::encode(&claim),
                            found.revision,
                        )
                    }
                }
            };
            match claimed {
                Ok(revision) => {
                    return self.activate::<A>(
                        key,
                        key_text,
                        &dir_key,
                        (revision, incarnation),
                        forwarded,
                    )
                }
                // Another node claimed it first: read who, and go there.
                Err(JsError::WrongLastSequence { .. } | JsError::KeyExists { .. }) => {
                    self.counters.cas_conflicts += 1;
                }
                Err(err) => return unavailable(format!("claiming {bucket}/{dir_key}: {err}")),
            }
        }
        unavailable(format!(
            "the directory entry {bucket}/{dir_key} changed {CLAIM_ATTEMPTS} times while this node read it"
        ))
    }

    fn elsewhere<A: Agent>(&mut self, dir_key: &str, node: &str, forwarded: bool) -> Located<A> {
        if forwarded {
            // One hop only: the caller asks again and reaches the owner through the front door.
            self.owners.remove(dir_key);
            return Located::Refused(
                "moved",
                format!(
                    "{dir_key} is owned by node {node}, not {}; call again",
                    self.route.node_id
                ),
            );
        }
        Located::Forward(self.route.names.node_prefix(node))
    }

    /// The live node other than this one with the most room (fewest agents for its capacity, as
    /// its lease last said, plus what this worker placed there since), if any has room at all.
    /// The placement is counted: a lease says a node's load only every few seconds, and without
    /// the count a burst of new keys would all go to the node that looked emptiest.
    fn least_loaded(&mut self) -> Option<String> {
        let nodes = &self.route.nodes;
        let bucket = nodes.name().to_owned();
        let mut best: Option<(f64, String, u64)> = None;
        for id in nodes.keys().ok()? {
            if id == self.route.node_id {
                continue;
            }
            let Ok(Some(found)) = nodes.get(&id) else {
                continue;
            };
            let Ok(node) = entries::decode::<super::entries::NodeEntry>(
                "node entry",
                &bucket,
                &id,
                found.revision,
                &found.value,
            ) else {
                continue;
            };
            let placed = match self.placed.get(&id) {
                Some(&(revision, count)) if revision == found.revision => count,
                _ => 0,
            };
            let agents = node.agents + placed;
            if agents >= node.capacity || node.draining {
                continue;
            }
            let load = agents as f64 / node.capacity.max(1) as f64;
            if best.as_ref().map_or(true, |(least, ..)| load < *least) {
                best = Some((load, id, found.revision));
            }
        }
        let (_, id, revision) = best?;
        let placed = self.placed.entry(id.clone()).or_insert((revision, 0));
        if placed.0 != revision {
            // The node's lease was renewed since: its count includes the earlier placements.
            *placed = (revision, 0);
        }
        placed.1 += 1;
        Some(id)
    }

    /// Starts `A`'s agent `key` here, its entry `dir_key` claimed at `revision` by this node's
    /// `incarnation`.
    fn activate<A: Agent>(
        &mut self,
        key: A::Key,
        key_text: &str,
        dir_key: &str,
        (revision, incarnation): (u64, u64),
        forwarded: bool,
    ) -> Located<A> {
        let options = self.route.kinds.get(A::KIND).copied().unwrap_or_default();
        let started = Launcher::<A>::default()
            .claimed()
            .idle_timeout(options.idle)
            .store(self.route.state.clone())
            .get_or_start(key);
        match started {
            Ok(agent) => {
                self.owners.remove(dir_key);
                if options.stay_up {
                    let record = stay_up_key(A::KIND, &self.route.node_id, incarnation, key_text);
                    if let Err(err) = self.route.directory.put(&record, b"") {
                        // It runs; only a loss of this node before its next activation would
                        // leave it down until its next call.
                        eprintln!(
                            "swarm: cluster: {}/{key_text} is not recorded as kept up: {err}",
                            A::KIND
                        );
                    }
                }
                crate::runtime::mailbox::cast(
                    self.route.lease,
                    LeaseOp::Activated {
                        pid: agent.process_id().unwrap_or_default(),
                        dir_key: dir_key.to_owned(),
                        revision,
                        stay_up: options.stay_up.then_some(incarnation),
                    },
                );
                Located::Here(agent)
            }
            Err(err) => {
                // Give the key back, so that another node (or a later call) can take it.
                let _a_later_claim_takes_it_anyway =
                    self.route.directory.delete(dir_key, Some(revision));
                let refused = format!("{} {key_text:?}: {err}", A::KIND);
                match err {
                    // Full: place it on the node with the most room instead, unless the request
                    // was sent here to be placed already (one hop).
                    StartError::Overloaded { .. } if !forwarded => match self.least_loaded() {
                        Some(node) => Located::Forward(self.route.names.node_prefix(&node)),
                        None => Located::Refused(
                            "overloaded",
                            format!("{refused}; no other node of the cluster has room"),
                        ),
                    },
                    StartError::Overloaded { .. } => Located::Refused("overloaded", refused),
                    _ => Located::Refused("start_failed", refused),
                }
            }
        }
    }

    /// Whether `node` answers on its node subject now. A request forwarded there with the
    /// caller's reply subject cannot tell: when nobody listens, nats-server sends its "no
    /// responders" status only to the publisher's own subscriptions, so the caller would wait out
    /// its timeout. This ping is this node's own request: a dead node's subscriptions are gone at
    /// once (no responders), a paused one does not answer within [`PING_TIMEOUT`]. Any answer,
    /// even an error, means the node is there.
    fn answers<A: Agent>(&self, node: &str) -> bool {
        // `!` is no key character: the owner answers `invalid_key` at once, starting nothing.
        let subject = format!(
            "{}.{}.!ping.ping",
            self.route.names.node_prefix(node),
            A::KIND
        );
        self.route
            .directory
            .jetstream()
            .client()
            .request(&subject, b"", PING_TIMEOUT)
            .is_ok()
    }

    fn incarnation(&self) -> Option<u64> {
        lease::ask::<Option<u64>>(self.route.lease, LeaseOp::Incarnation)
            .ok()
            .flatten()
    }

    /// Hands the counters to the lease process now and then (never per request).
    fn flush_counters(&mut self) {
        if self.last_flush.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_flush = Instant::now();
        let counters = std::mem::take(&mut self.counters);
        crate::runtime::mailbox::cast(self.route.lease, LeaseOp::Count(counters));
    }
}

/// The owner's lease is live but the owner does not answer: it died (its lease runs out within
/// the TTL, then this node claims the agent) or is cut off. The caller calls again.
fn unreachable<A: Agent>(dir_key: &str, node: &str) -> Located<A> {
    Located::Refused(
        "unavailable",
        format!(
            "{dir_key} is owned by node {node}, which does not answer; it moves once that \
             node's lease runs out; call again"
        ),
    )
}

fn unavailable<A: Agent>(reason: String) -> Located<A> {
    Located::Refused("unavailable", reason)
}

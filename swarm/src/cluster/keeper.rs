//! Agents kept up across node losses (`ServeOptions::stay_up`, Akka's "remember entities").
//!
//! Each activation of such an agent is recorded in the directory bucket as
//! `up.<kind>.<node id>.<incarnation>.<key>` (see `directory::stay_up_key`) by the node that
//! activated it. One keeper process per kept-up kind and node reads the nodes' leases every
//! [`CHECK_EVERY`]; when the set of live node incarnations changes (a node's lease ran out, a
//! node was fenced and rejoined as a new incarnation, a node started draining or left), or at its
//! start, it lists the kind's records and activates, through the directory as a request would,
//! each agent whose record names a node incarnation that is not live, or one that drains (as
//! soon as the draining node has stopped it and released its entry; until then the directory
//! names the draining node, and the keeper looks again at its next look). The directory's compare-and-set makes
//! one node win each agent however many keepers try. To spread a dead node's agents over the
//! survivors, a keeper takes first the agents that rendezvous hashing gives to it, and the others
//! only once they were still down at its previous look (their preferred node did not take them).
//!
//! A record whose agent is running elsewhere again (or was taken over here) is deleted; the new
//! owner wrote its own. A record whose agent could not be activated (no room, the state does not
//! load) stays, and is tried again at every look.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::directory::{parse_stay_up_key, ClusterRoute, Directory, Located};
use super::entries::{self, NodeEntry};
use crate::key::parse_key_text;
use crate::runtime::agent::Agent;
use crate::runtime::host;

/// How often a keeper reads the leases. A dead node's agents are back within about the lease TTL
/// (until its lease runs out) plus this plus their activation.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Runs until the node's lease process ends (the node left or stopped).
pub(crate) fn keep_up<A: Agent>(route: ClusterRoute) {
    // A draining node publishes here once it has stopped its agents: look at once, rather than
    // at the next tick (it is how a drain hands agents kept up over within a second).
    let client = route.directory.jetstream().client().clone();
    let nudges = client.subscribe(&route.names.keeper_nudge(A::KIND)).ok();
    let mut live: Option<BTreeMap<String, Lease>> = None;
    // Records seen down at the previous look: taken now whatever the hashing says.
    let mut down_before: BTreeSet<String> = BTreeSet::new();
    while host::exists(route.lease) {
        let nudged = match &nudges {
            Some(nudges) => {
                let nudged = nudges.next_timeout(CHECK_EVERY).is_ok();
                while nudges.try_next().is_some() {}
                nudged
            }
            None => {
                host::sleep(CHECK_EVERY);
                false
            }
        };
        let Some(now) = live_nodes(&route) else {
            continue;
        };
        if !nudged && live.as_ref() == Some(&now) && down_before.is_empty() {
            continue;
        }
        // A draining node claims nothing: its own keeper leaves the work to the others.
        down_before = match now.get(&route.node_id) {
            Some(this) if this.draining => BTreeSet::new(),
            _ => take_over::<A>(&route, &now, &down_before),
        };
        live = Some(now);
    }
}

/// A live node's lease, as a keeper needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    incarnation: u64,
    draining: bool,
}

/// Node id → lease of every node whose lease is live now; `None` if the bucket cannot be read
/// (tried again at the next look).
fn live_nodes(route: &ClusterRoute) -> Option<BTreeMap<String, Lease>> {
    let bucket = route.nodes.name().to_owned();
    let mut live = BTreeMap::new();
    for id in route.nodes.keys().ok()? {
        // Gone since it was listed: not live.
        let Some(found) = route.nodes.get(&id).ok()? else {
            continue;
        };
        if let Ok(node) =
            entries::decode::<NodeEntry>("node entry", &bucket, &id, found.revision, &found.value)
        {
            live.insert(
                id,
                Lease {
                    incarnation: node.incarnation,
                    draining: node.draining,
                },
            );
        }
    }
    Some(live)
}

/// Activates the agents whose records name a node incarnation not in `live`; returns the records
/// still down after this look.
fn take_over<A: Agent>(
    route: &ClusterRoute,
    live: &BTreeMap<String, Lease>,
    down_before: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut still_down = BTreeSet::new();
    let Ok(records) = route.directory.keys_matching(&format!("up.{}.>", A::KIND)) else {
        // Not readable now: look again next time, as if all were down.
        return down_before.clone();
    };
    let mut directory = Directory::new(route.clone());
    for record in records {
        let Some((node, incarnation, key_text)) = parse_stay_up_key(A::KIND, &record) else {
            continue;
        };
        let draining = match live.get(node) {
            Some(lease) if lease.incarnation == incarnation && !lease.draining => continue,
            Some(lease) => lease.incarnation == incarnation,
            None => false,
        };
        if preferred_node(live, key_text) != Some(route.node_id.as_str())
            && !down_before.contains(&record)
        {
            still_down.insert(record);
            continue;
        }
        let Ok(key) = parse_key_text::<A::Key>(A::KIND, key_text) else {
            // Not a key of this kind's (written by another version): leave it alone.
            continue;
        };
        match directory.locate::<A>(key, key_text, false) {
            // Still running on the draining node: look again next time.
            Located::Forward(owner) if draining && owner == route.names.node_prefix(node) => {
                still_down.insert(record);
            }
            located @ (Located::Here(_) | Located::Forward(_)) => {
                let _deleted_by_another_taker_already = route.directory.delete(&record, None);
                if let Located::Here(_) = located {
                    println!(
                        "swarm-cluster-node kept-up name={} kind={} key={key_text} from={node}",
                        route.node_name,
                        A::KIND
                    );
                }
            }
            Located::Refused(kind, message) => {
                eprintln!(
                    "swarm: cluster: {}/{key_text} (kept up, its node {node} is gone) could not \
                     be activated here yet: {kind}: {message}",
                    A::KIND
                );
                still_down.insert(record);
            }
        }
    }
    still_down
}

/// The live node, not draining, that rendezvous hashing gives `key` to.
fn preferred_node<'a>(live: &'a BTreeMap<String, Lease>, key: &str) -> Option<&'a str> {
    live.iter()
        .filter(|(_, lease)| !lease.draining)
        .map(|(node, _)| node)
        .max_by_key(|node| fnv1a(key.bytes().chain([0]).chain(node.bytes())))
        .map(String::as_str)
}

/// 64-bit FNV-1a: stable across nodes and runs (std's hasher is seeded per process).
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

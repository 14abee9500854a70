//! Rates from two STATS readings: calls/s and errors/s per kind and in total, and cluster
//! activations/s when the nodes report them. STATS counts grow from a node's start, so a rate is
//! the growth between two readings over the time between them.
//!
//! What STATS offers to watch: per endpoint `num_requests`/`num_errors`; per node `agents_live`
//! and, in a cluster, `cluster.activations` (agents started on the node, a failover's included).
//! No figure counts supervisor restarts, so there is no restarts/s.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::services::{kind_and_handler, Stats};

/// One reading of the namespace's STATS.
#[derive(Debug, Default, Clone)]
pub struct Reading {
    /// (node id, kind, handler) -> (requests, errors).
    counts: HashMap<(String, String, String), (u64, u64)>,
    /// Node id -> cluster activations, for the nodes that report them.
    activations: HashMap<String, u64>,
    nodes: usize,
    agents_live: u64,
}

impl Reading {
    pub fn from_stats(namespace: &str, stats: &[Stats]) -> Reading {
        let mut reading = Reading {
            nodes: stats.len(),
            ..Reading::default()
        };
        for node in stats {
            let data = node.endpoints.iter().find_map(|e| e.data.as_ref());
            if let Some(data) = data {
                reading.agents_live += data["agents_live"].as_u64().unwrap_or(0);
                if let Some(activations) = data["cluster"]["activations"].as_u64() {
                    reading.activations.insert(node.id.clone(), activations);
                }
            }
            for endpoint in &node.endpoints {
                if let Some((kind, handler)) = kind_and_handler(namespace, &endpoint.subject) {
                    reading.counts.insert(
                        (node.id.clone(), kind, handler),
                        (endpoint.num_requests, endpoint.num_errors),
                    );
                }
            }
        }
        reading
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

/// What changed between two readings, per second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rates {
    pub interval_s: f64,
    pub nodes: usize,
    pub agents_live: u64,
    pub calls_per_s: f64,
    pub errors_per_s: f64,
    /// Kind -> its calls/s and errors/s.
    pub kinds: BTreeMap<String, KindRates>,
    /// Only when the nodes report cluster figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindRates {
    pub calls_per_s: f64,
    pub errors_per_s: f64,
}

/// The rates from `before` to `after`, `elapsed` apart. A node or endpoint that was not in
/// `before` has no rate yet (its counts since it started are not this interval's), and a count
/// that went down (a kind served again from zero) counts as no change.
pub fn rates(before: &Reading, after: &Reading, elapsed: Duration) -> Rates {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let mut kinds: BTreeMap<String, KindRates> = BTreeMap::new();
    let (mut calls, mut errors) = (0u64, 0u64);
    for (key, &(requests, failed)) in &after.counts {
        let (_, kind, _) = key;
        let entry = kinds.entry(kind.clone()).or_default();
        let Some(&(requests_before, failed_before)) = before.counts.get(key) else {
            continue;
        };
        let new_calls = requests.saturating_sub(requests_before);
        let new_errors = failed.saturating_sub(failed_before);
        calls += new_calls;
        errors += new_errors;
        entry.calls_per_s += new_calls as f64 / seconds;
        entry.errors_per_s += new_errors as f64 / seconds;
    }
    let activations_per_s = (!after.activations.is_empty()).then(|| {
        let grown: u64 = after
            .activations
            .iter()
            .filter_map(|(node, &now)| Some(now.saturating_sub(*before.activations.get(node)?)))
            .sum();
        grown as f64 / seconds
    });
    for kind in kinds.values_mut() {
        kind.calls_per_s = rounded(kind.calls_per_s);
        kind.errors_per_s = rounded(kind.errors_per_s);
    }
    Rates {
        interval_s: rounded(seconds),
        nodes: after.nodes,
        agents_live: after.agents_live,
        calls_per_s: rounded(calls as f64 / seconds),
        errors_per_s: rounded(errors as f64 / seconds),
        kinds,
        activations_per_s: activations_per_s.map(rounded),
    }
}

/// Three decimals: a rate is an estimate, and JSON lines stay short.
fn rounded(rate: f64) -> f64 {
    (rate * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::EndpointStats;
    use serde_json::json;

    fn node(id: &str, add: (u64, u64), data: serde_json::Value) -> Stats {
        Stats {
            name: "swarm-ns".into(),
            id: id.into(),
            version: "0.1.0".into(),
            started: String::new(),
            endpoints: vec![EndpointStats {
                name: "counter-add".into(),
                subject: "ns.counter.*.add".into(),
                num_requests: add.0,
                num_errors: add.1,
                last_error: String::new(),
                average_processing_time: 0,
                data: Some(data),
            }],
        }
    }

    #[test]
    fn rates_are_growth_over_time_and_new_nodes_wait_a_reading() {
        let before = Reading::from_stats("ns", &[node("a", (10, 1), json!({"agents_live": 2}))]);
        let after = Reading::from_stats(
            "ns",
            &[
                node("a", (30, 2), json!({"agents_live": 3})),
                node("b", (500, 0), json!({"agents_live": 1})),
            ],
        );
        let rates = rates(&before, &after, Duration::from_secs(2));
        assert_eq!(rates.calls_per_s, 10.0);
        assert_eq!(rates.errors_per_s, 0.5);
        assert_eq!(rates.kinds["counter"].calls_per_s, 10.0);
        assert_eq!((rates.nodes, rates.agents_live), (2, 4));
        assert_eq!(rates.activations_per_s, None);
    }

    #[test]
    fn a_count_that_went_down_is_no_change_and_cluster_activations_are_rated() {
        let cluster = |n| json!({"agents_live": 0, "cluster": {"activations": n}});
        let before = Reading::from_stats("ns", &[node("a", (10, 5), cluster(4))]);
        let after = Reading::from_stats("ns", &[node("a", (3, 0), cluster(8))]);
        let rates = rates(&before, &after, Duration::from_secs(1));
        assert_eq!((rates.calls_per_s, rates.errors_per_s), (0.0, 0.0));
        assert_eq!(rates.activations_per_s, Some(4.0));
    }
}

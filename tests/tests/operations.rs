//! A node's operations endpoints from inside Lunatic, for what needs a cluster: one node joins a
//! cluster on the harness's JetStream server (`SWARM_NATS_JS_URL`), serves metrics with the
//! cluster's figures, and scrapes itself over TCP. (`tests/support/metrics_check.py` checks the
//! rest from outside, with a real Prometheus parser.) Its own test binary: metrics are node-wide,
//! and every test of one file runs on one Lunatic node.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::cluster::{join, ClusterConfig};
use swarm::metrics::{serve, MetricsConfig, MetricsError};
use swarm::prelude::*;
use swarm_tests::nats::{connect, eventually, options, server, unique};

/// An append-only list, kept in the cluster's KV bucket.
#[agent(kind = "ledger")]
pub struct Ledger {
    #[key]
    id: String,
    #[persist]
    entries: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appended {
    pub len: u64,
}

#[agent]
impl Ledger {
    #[handler]
    pub fn append(&mut self, value: u64) -> Appended {
        self.entries.push(value);
        Appended {
            len: self.entries.len() as u64,
        }
    }
}

/// `GET path` on `addr`: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = lunatic::net::TcpStream::connect(addr).expect("the listener accepts");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: node\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[lunatic::test]
fn a_cluster_node_shows_its_cluster_calls_and_store_in_its_metrics() {
    let Some(url) = server("JS_URL") else { return };
    let ns = unique("ops").replace('.', "_");
    let cluster = join(
        ClusterConfig::new(options(&url), &ns, "ops")
            .unwrap()
            .lease_ttl(Duration::from_secs(3))
            .unwrap(),
    )
    .unwrap_or_else(|err| panic!("join {ns}: {err}"));
    let client = connect(&url);
    // Before any agent starts: agents started while metrics are off count nothing.
    let addr = serve(
        MetricsConfig::listen("127.0.0.1:0")
            .cluster(&ns)
            .nats(&client)
            // Readiness reads the store the cluster's agents use.
            .store(StoreConfig::nats_kv(format!("SWARM_STATE_{ns}"))),
    )
    .expect("metrics are served");
    assert_eq!(
        serve(MetricsConfig::listen("127.0.0.1:0")),
        Err(MetricsError::AlreadyServing)
    );
    let _served = cluster.serve::<Ledger>(2).unwrap();
    for value in 0..3 {
        let reply = client
            .request(
                &format!("{ns}.ledger.a.append"),
                format!(r#"{{"value": {value}}}"#).as_bytes(),
                Duration::from_secs(5),
            )
            .expect("the front door answers");
        let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(reply["ok"]["len"], value + 1, "{reply}");
    }
    // Agents send their counts at least once a second: wait for the three calls and saves (a
    // busy machine may take longer), then every figure must be exact.
    // The lease is renewed once a second: wait for a renewal too.
    let node = cluster.node_id();
    let at_least = |text: &str, series: &str, n: f64| sample(text, series).is_some_and(|v| v >= n);
    let text = eventually(Duration::from_secs(10), || {
        let (status, text) = get(&addr, "/metrics");
        assert_eq!(status, 200, "{text}");
        (at_least(
            &text,
            "swarm_calls_total{kind=\"ledger\",handler=\"append\",outcome=\"ok\"}",
            3.0,
        ) && at_least(
            &text,
            "swarm_store_operations_total{backend=\"nats_kv\",operation=\"save\",result=\"ok\"}",
            3.0,
        ) && at_least(
            &text,
            &format!("swarm_cluster_lease_renewals_total{{node=\"{node}\"}}"),
            1.0,
        ))
        .then_some(text)
    })
    .unwrap_or_else(|| get(&addr, "/metrics").1);
    assert_eq!(
        sample(
            &text,
            &format!("swarm_cluster_activations_total{{node=\"{node}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("swarm_cluster_fencings_total{{node=\"{node}\"}}")
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            &format!("swarm_cluster_lease_renewals_total{{node=\"{node}\"}}")
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "swarm_calls_total{kind=\"ledger\",handler=\"append\",outcome=\"ok\"}"
        ),
        Some(3.0),
        "{text}"
    );
    // Every append is a compare-and-set write to the KV bucket; the start read the record.
    assert_eq!(
        sample(
            &text,
            "swarm_store_operations_total{backend=\"nats_kv\",operation=\"save\",result=\"ok\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "swarm_store_operations_total{backend=\"nats_kv\",operation=\"load\",result=\"ok\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "swarm_agents_live{kind=\"ledger\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "swarm_nats_connected"), Some(1.0), "{text}");
    let (status, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("store: ok"), "{body}");
}

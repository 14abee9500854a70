//! The NATS services API (ADR-32) as swarm nodes answer it: the service name of a namespace, one
//! request gathered from every node within a short window, and the parts of the
//! `io.nats.micro.v1` INFO and STATS answers this tool reads.
//!
//! A request to `$SRV.<VERB>.swarm-<namespace>` reaches every node of the namespace, and nothing
//! tells how many will answer: like `nats micro ls`, we take what comes within a window.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::time::Instant;

use crate::failure::Failure;

/// How long INFO answers are collected: a node answers at once unless it is busy with a STATS.
pub const INFO_WINDOW: Duration = Duration::from_millis(1000);

/// How long STATS answers are collected: a node waits up to 0.5 s for its workers' counts and
/// 0.3 s for the cluster's figures before it answers.
pub const STATS_WINDOW: Duration = Duration::from_millis(1500);

/// How long to wait for when to stop collecting.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// At most this long.
    pub max: Duration,
    /// Stop once nothing more came for this long after the first answer (for a caller that
    /// needs any node, not every node).
    pub quiet: Option<Duration>,
    /// Stop once this many answers came.
    pub expect: Option<usize>,
}

impl Window {
    pub fn full(max: Duration) -> Window {
        Window {
            max,
            quiet: None,
            expect: None,
        }
    }
}

/// The service name of `namespace`: `swarm-<namespace>` with each `.` written `_`, as the nodes
/// name it (`swarm/src/nats/service_api.rs`); a namespace the nodes would refuse is bad input.
pub fn service_name(namespace: &str) -> Result<String, Failure> {
    let bad = namespace
        .chars()
        .find(|&ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')));
    if namespace.is_empty() || bad.is_some() || namespace.split('.').any(str::is_empty) {
        let why = match bad {
            Some(ch) => format!("character {ch:?} is not allowed"),
            None => "a token is empty".to_owned(),
        };
        return Err(Failure::usage(format!(
            "namespace `{namespace}` cannot be a swarm namespace: {why}; namespaces are tokens \
             of A-Z a-z 0-9 _ - separated by '.' (-n / SWARM_NAMESPACE)"
        )));
    }
    Ok(format!("swarm-{}", namespace.replace('.', "_")))
}

/// `io.nats.micro.v1.info_response`, the parts we read.
#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    pub name: String,
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub endpoints: Vec<EndpointInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointInfo {
    pub subject: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `io.nats.micro.v1.stats_response`, the parts we read.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub name: String,
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub started: String,
    #[serde(default)]
    pub endpoints: Vec<EndpointStats>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointStats {
    pub name: String,
    pub subject: String,
    pub num_requests: u64,
    pub num_errors: u64,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub average_processing_time: u64,
    /// swarm puts the node's figures here (`agents_live`, `cluster`), the same on every endpoint.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// Which kind and handler an endpoint serves: from its subject `<namespace>.<kind>.*.<handler>`
/// (STATS endpoints carry no metadata, and a kind may hold `-`, so the name `<kind>-<handler>`
/// cannot be split).
pub fn kind_and_handler(namespace: &str, subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix(namespace)?.strip_prefix('.')?;
    match rest.split('.').collect::<Vec<_>>().as_slice() {
        [kind, "*", handler] => Some(((*kind).to_owned(), (*handler).to_owned())),
        _ => None,
    }
}

/// Sends one `$SRV.<verb>.<service>` request and returns every answer of that service that came
/// within `window`. An answer that does not parse is skipped, with a warning.
pub async fn gather<T: DeserializeOwned + Named>(
    client: &Client,
    verb: &str,
    service: &str,
    window: Window,
) -> Result<Vec<T>, Failure> {
    let subject = format!("$SRV.{verb}.{service}");
    let lost = |err: &dyn std::fmt::Display| {
        Failure::connect(format!(
            "lost the NATS server while asking {subject}: {err}"
        ))
    };
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| lost(&e))?;
    client
        .publish_with_reply(subject.clone(), inbox, Vec::new().into())
        .await
        .map_err(|e| lost(&e))?;
    client.flush().await.map_err(|e| lost(&e))?;
    let deadline = Instant::now() + window.max;
    let mut found = Vec::new();
    loop {
        let until = match window.quiet {
            Some(quiet) if !found.is_empty() => deadline.min(Instant::now() + quiet),
            _ => deadline,
        };
        let Ok(Some(message)) = tokio::time::timeout_at(until, answers.next()).await else {
            break;
        };
        // The server says at once when nothing subscribes to the subject: no node runs.
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            break;
        }
        if message.status.is_some() {
            continue;
        }
        match serde_json::from_slice::<T>(&message.payload) {
            Ok(answer) if answer.service_name() == service => found.push(answer),
            Ok(_) => {}
            Err(err) => eprintln!(
                "swarm: warning: skipped an answer to {subject} that does not parse: {err}"
            ),
        }
        if window.expect.is_some_and(|expect| found.len() >= expect) {
            break;
        }
    }
    Ok(found)
}

/// An answer that names the service it comes from.
pub trait Named {
    fn service_name(&self) -> &str;
}

impl Named for Info {
    fn service_name(&self) -> &str {
        &self.name
    }
}

impl Named for Stats {
    fn service_name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_names_its_service_as_the_nodes_do() {
        assert_eq!(service_name("swarm").unwrap(), "swarm-swarm");
        assert_eq!(service_name("acme.prod-1").unwrap(), "swarm-acme_prod-1");
        let bad = service_name("chat$1").unwrap_err();
        assert!(
            bad.message.contains("'$'") && bad.message.contains("-n"),
            "{bad}"
        );
        assert!(service_name("").is_err() && service_name("a..b").is_err());
    }

    #[test]
    fn an_endpoint_subject_names_its_kind_and_handler() {
        assert_eq!(
            kind_and_handler("acme.prod", "acme.prod.chat-room.*.post"),
            Some(("chat-room".into(), "post".into()))
        );
        assert_eq!(kind_and_handler("acme", "acme.prod.x.*.y"), None);
        assert_eq!(kind_and_handler("ns", "other.k.*.h"), None);
    }
}

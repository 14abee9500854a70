//! What a node needs to join a cluster, checked before anything is sent, and the names every
//! node of a namespace derives from it (buckets, subjects) — one place, so that two nodes can
//! never disagree on where the directory lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::nats::ConnectOptions;

/// The shortest lease TTL accepted: a renewal every TTL/3 must fit between the server's own
/// expiry checks and a JetStream round trip on a loaded machine.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
/// The lease TTL unless told otherwise (Orleans detects a dead silo in ~15 s, Dapr in 3 s).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How a node joins a cluster: [`ClusterConfig::new`], then the builder methods.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub(crate) connect: ConnectOptions,
    pub(crate) namespace: String,
    pub(crate) node_name: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) replicas: usize,
}

/// A configuration the cluster cannot use, said before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ConfigError {
    /// A namespace or node name that cannot be a NATS subject token and a KV bucket name.
    #[error("cluster {what} {value:?}: {reason}")]
    InvalidName {
        /// `namespace` or `node name`.
        what: &'static str,
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A lease TTL below [`MIN_LEASE_TTL`].
    #[error("cluster lease TTL {0:?} is below the minimum of 3 s")]
    LeaseTooShort(Duration),
    /// A replica count JetStream does not accept.
    #[error("cluster replicas {0}: JetStream keeps 1 to 5 copies (1 or 3 are usual)")]
    Replicas(usize),
}

impl ClusterConfig {
    /// A node named `node_name` joining the cluster `namespace` through the NATS servers of
    /// `connect`. Names are 1-64 characters of `A-Z a-z 0-9 _ -` (they become subject tokens and
    /// bucket names as they are). Defaults: lease TTL 10 s, buckets with one replica.
    pub fn new(
        connect: ConnectOptions,
        namespace: impl Into<String>,
        node_name: impl Into<String>,
    ) -> Result<ClusterConfig, ConfigError> {
        let namespace = namespace.into();
        let node_name = node_name.into();
        check_name("namespace", &namespace)?;
        check_name("node name", &node_name)?;
        Ok(ClusterConfig {
            connect,
            namespace,
            node_name,
            lease_ttl: DEFAULT_LEASE_TTL,
            replicas: 1,
        })
    }

    /// How long a node's lease lives without renewal: a node that cannot renew within it fences
    /// itself, and its agents move to other nodes about this long after it died.
    pub fn lease_ttl(mut self, ttl: Duration) -> Result<ClusterConfig, ConfigError> {
        if ttl < MIN_LEASE_TTL {
            return Err(ConfigError::LeaseTooShort(ttl));
        }
        self.lease_ttl = ttl;
        Ok(self)
    }

    /// Copies JetStream keeps of the cluster's buckets (3 in production: a bucket survives the
    /// loss of one server). Only the node that creates a bucket decides; later nodes use it as it is.
    pub fn replicas(mut self, replicas: usize) -> Result<ClusterConfig, ConfigError> {
        if !(1..=5).contains(&replicas) {
            return Err(ConfigError::Replicas(replicas));
        }
        self.replicas = replicas;
        Ok(self)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), ConfigError> {
    let refuse = |reason: String| {
        Err(ConfigError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() || value.len() > 64 {
        return refuse(format!("{} characters; 1 to 64 are allowed", value.len()));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return refuse(format!(
            "character {c:?} is not allowed (A-Z a-z 0-9 _ -: it becomes a NATS subject token \
             and part of KV bucket names)"
        ));
    }
    Ok(())
}

/// The names of one namespace's buckets and subjects (used by the node, inside Lunatic).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Names {
    pub namespace: String,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl Names {
    pub fn new(namespace: &str) -> Names {
        Names {
            namespace: namespace.to_owned(),
        }
    }

    /// One key per live node, removed by the server when its lease runs out (bucket `max_age`).
    pub fn nodes_bucket(&self) -> String {
        format!("SWARM_NODES_{}", self.namespace)
    }

    /// `<kind>/<key>` → the owning node and incarnation; no TTL.
    pub fn directory_bucket(&self) -> String {
        format!("SWARM_DIR_{}", self.namespace)
    }

    /// Agents' `#[persist]` state, `<kind>/<key>`; no TTL.
    pub fn state_bucket(&self) -> String {
        format!("SWARM_STATE_{}", self.namespace)
    }

    /// The front door of a kind, served by every node in one queue group.
    pub fn front_door(&self, kind: &str) -> String {
        format!("{}.{kind}.*.*", self.namespace)
    }

    /// The queue group of a kind's front door.
    pub fn front_door_queue(&self, kind: &str) -> String {
        format!("{}.{kind}", self.namespace)
    }

    /// Where a node takes the requests forwarded to it as the owner:
    /// `_SWARM.<ns>.node.<node id>.<kind>.<key>.<handler>`.
    pub fn node_prefix(&self, node_id: &str) -> String {
        format!("_SWARM.{}.node.{node_id}", self.namespace)
    }

    /// Where a draining node tells the keepers of `kind` (see `keeper`) to look now.
    pub fn keeper_nudge(&self, kind: &str) -> String {
        format!("_SWARM.{}.keep.{kind}", self.namespace)
    }

    /// The control subject of a node by name (`drain`).
    pub fn control(&self, node_name: &str, command: &str) -> String {
        format!("_SWARM.{}.control.{node_name}.{command}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ConnectOptions {
        ConnectOptions::new(["nats://127.0.0.1:4222"]).unwrap()
    }

    #[test]
    fn names_must_be_subject_tokens_and_bucket_names() {
        assert!(ClusterConfig::new(options(), "prod_1", "node-a").is_ok());
        for (bad, why) in [
            ("", "0 characters"),
            ("a.b", "character '.'"),
            ("a b", "character ' '"),
            ("a*", "character '*'"),
            ("ä", "character 'ä'"),
        ] {
            let err = ClusterConfig::new(options(), bad, "n").unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
            let err = ClusterConfig::new(options(), "ns", bad).unwrap_err();
            assert!(err.to_string().contains("node name"), "{bad:?}: {err}");
        }
        assert!(ClusterConfig::new(options(), "x".repeat(65), "n").is_err());
    }

    #[test]
    fn lease_and_replicas_are_bounded() {
        let config = ClusterConfig::new(options(), "ns", "n").unwrap();
        assert_eq!(config.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(
            config
                .clone()
                .lease_ttl(Duration::from_secs(2))
                .unwrap_err(),
            ConfigError::LeaseTooShort(Duration::from_secs(2))
        );
        assert!(config.clone().lease_ttl(Duration::from_secs(3)).is_ok());
        assert!(config.clone().replicas(0).is_err());
        assert!(config.clone().replicas(6).is_err());
        assert_eq!(config.replicas(3).unwrap().replicas, 3);
    }

    #[test]
    fn names_of_a_namespace() {
        let names = Names::new("demo");
        assert_eq!(names.nodes_bucket(), "SWARM_NODES_demo");
        assert_eq!(names.directory_bucket(), "SWARM_DIR_demo");
        assert_eq!(names.state_bucket(), "SWARM_STATE_demo");
        assert_eq!(names.front_door("ledger"), "demo.ledger.*.*");
        assert_eq!(names.node_prefix("n1-ab12"), "_SWARM.demo.node.n1-ab12");
        assert_eq!(names.control("n1", "drain"), "_SWARM.demo.control.n1.drain");
    }
}

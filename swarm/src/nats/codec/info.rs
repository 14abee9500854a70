//! The server's INFO document.
//!
//! The server omits keys whose value is false or empty, and newer servers add keys, so every
//! field has a default and unknown keys are ignored; `null` is read as the default too, in case
//! a server marshals an empty list as `null`. The raw JSON is kept for anything not modelled.
//!
//! It also serializes, so that the process that reads the socket can hand the parsed document to
//! another process (in bincode, which is not self-describing: the fields read with
//! `null_default` as an `Option` are written as one, `raw` is not carried).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Server information, sent on connect and again at any time with `protocol: 1` (cluster
/// topology changes, lame-duck mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// Unique server id.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub server_id: String,
    /// Configured server name.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub server_name: String,
    /// Server version, such as `2.9.10`.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub version: String,
    /// Go version the server was built with.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub go: String,
    /// Host the server listens on.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub host: String,
    /// Port the server listens on.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub port: u16,
    /// Whether the server supports headers (HPUB/HMSG).
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub headers: bool,
    /// Largest message (headers + payload) the server accepts, in bytes.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub max_payload: u64,
    /// Protocol version; 1 or more means echo control and async INFO are supported.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub proto: i32,
    /// The server's id for this connection.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub client_id: u64,
    /// This client's address as the server sees it.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub client_ip: String,
    /// Whether the client must authenticate.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub auth_required: bool,
    /// Whether the client must use TLS.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub tls_required: bool,
    /// Whether the server verifies client certificates.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub tls_verify: bool,
    /// Whether TLS is offered but optional.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub tls_available: bool,
    /// Other servers of the cluster this client may connect to.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub connect_urls: Vec<String>,
    /// WebSocket URLs of the cluster.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub ws_connect_urls: Vec<String>,
    /// Lame-duck mode: the server is shutting down, reconnect elsewhere.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub ldm: bool,
    /// Git commit the server was built from.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub git_commit: String,
    /// Whether JetStream is enabled.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub jetstream: bool,
    /// Server IP advertised for the cluster.
    #[serde(deserialize_with = "null_default", serialize_with = "as_some")]
    pub ip: String,
    /// Nonce to sign for nkey/JWT authentication.
    pub nonce: Option<String>,
    /// Cluster name.
    pub cluster: Option<String>,
    /// JetStream domain.
    pub domain: Option<String>,
    /// The JSON document exactly as received (empty once handed to another process).
    #[serde(skip)]
    pub raw: String,
}

impl ServerInfo {
    /// Parses the JSON after `INFO `, keeping it in [`ServerInfo::raw`].
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        let mut info: ServerInfo = serde_json::from_str(json)?;
        json.clone_into(&mut info.raw);
        Ok(info)
    }
}

/// Writes a value the way [`null_default`] reads it: as a present `Option`.
fn as_some<S, T>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    serializer.serialize_some(value)
}

fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_observed_2_9_10_info() {
        let json = r#"{"server_id":"NCX2","server_name":"NCX2","version":"2.9.10","proto":1,"go":"go1.19.8","host":"127.0.0.1","port":36225,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":4,"client_ip":"127.0.0.1"}"#;
        let info = ServerInfo::parse(json).unwrap();
        assert_eq!(info.version, "2.9.10");
        assert_eq!(info.port, 36225);
        assert!(info.headers && info.jetstream);
        assert!(!info.auth_required && !info.tls_required && !info.ldm);
        assert_eq!(info.max_payload, 1_048_576);
        assert_eq!(info.proto, 1);
        assert_eq!(info.client_id, 4);
        assert_eq!(info.nonce, None);
        assert_eq!(info.raw, json);
    }

    #[test]
    fn tolerates_nulls_and_unknown_keys() {
        let info = ServerInfo::parse(
            r#"{"connect_urls":null,"max_payload":null,"ldm":true,"xkey":"X","nonce":"abc","future":{"a":[1]}}"#,
        )
        .unwrap();
        assert!(info.connect_urls.is_empty());
        assert_eq!(info.max_payload, 0);
        assert!(info.ldm);
        assert_eq!(info.nonce.as_deref(), Some("abc"));
    }

    #[test]
    fn goes_through_bincode_as_it_came_from_json() {
        let json = r#"{"server_id":"S","version":"2.15.1","max_payload":1048576,"proto":1,"headers":true,"connect_urls":["a:1"],"nonce":"n0","ldm":true}"#;
        let info = ServerInfo::parse(json).unwrap();
        let bytes = bincode::serialize(&info).unwrap();
        let back: ServerInfo = bincode::deserialize(&bytes).unwrap();
        assert_eq!(
            back,
            ServerInfo {
                raw: String::new(),
                ..info
            }
        );
    }

    #[test]
    fn refuses_wrong_types() {
        assert!(ServerInfo::parse(r#"{"port":"x"}"#).is_err());
        assert!(ServerInfo::parse("not json").is_err());
    }
}

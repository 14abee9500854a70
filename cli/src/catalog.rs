//! What a namespace serves, read from the nodes' `$SRV.INFO` answers: its kinds, each kind's
//! handlers, whether a handler answers, and the JSON Schemas of its arguments and reply when the
//! endpoint publishes them (an agent kind with `#[agent(schema)]` does). Looking up a name that is not there fails with the names that are.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::failure::Failure;
use crate::services::{kind_and_handler, Info};

/// The endpoint metadata key holding the JSON Schema (as text: metadata values are strings) of a
/// handler's arguments (`swarm::schema::ARGUMENTS_SCHEMA_KEY`): `swarm call` checks arguments
/// against it before sending.
pub const ARGUMENTS_SCHEMA_KEY: &str = "arguments_schema";

/// The endpoint metadata key holding the JSON Schema of a handler's whole reply, `{"ok": ..}` or
/// `{"error": ..}` (`swarm::schema::REPLY_SCHEMA_KEY`), shown by `swarm handlers --json`.
pub const REPLY_SCHEMA_KEY: &str = "reply_schema";

/// The endpoint metadata key saying whether the caller gets the handler's answer (`"true"`) or
/// the handler is fire-and-forget (`"false"`).
pub const REQUEST_KEY: &str = "request";

/// Every kind served in a namespace, over all the nodes that answered.
#[derive(Debug, Default, Serialize)]
pub struct Catalog {
    pub namespace: String,
    pub kinds: BTreeMap<String, Kind>,
}

#[derive(Debug, Default, Serialize)]
pub struct Kind {
    /// The nodes (service ids) serving it.
    pub nodes: BTreeSet<String>,
    pub handlers: BTreeMap<String, Handler>,
}

#[derive(Debug, Default, Serialize)]
pub struct Handler {
    /// `Some(false)` for a fire-and-forget handler; `None` when the endpoint does not say.
    pub answers: Option<bool>,
    /// The schema text, as published.
    pub arguments_schema: Option<String>,
    /// The reply's schema text, as published.
    pub reply_schema: Option<String>,
    pub nodes: BTreeSet<String>,
}

impl Catalog {
    pub fn from_infos(namespace: &str, infos: &[Info]) -> Catalog {
        let mut catalog = Catalog {
            namespace: namespace.to_owned(),
            kinds: BTreeMap::new(),
        };
        for info in infos {
            for endpoint in &info.endpoints {
                let metadata = endpoint.metadata.clone().unwrap_or_default();
                let named = metadata
                    .get("kind")
                    .zip(metadata.get("handler"))
                    .map(|(kind, handler)| (kind.clone(), handler.clone()));
                let Some((kind, handler)) =
                    named.or_else(|| kind_and_handler(namespace, &endpoint.subject))
                else {
                    continue;
                };
                let kind = catalog.kinds.entry(kind).or_default();
                kind.nodes.insert(info.id.clone());
                let handler = kind.handlers.entry(handler).or_default();
                handler.nodes.insert(info.id.clone());
                if let Some(request) = metadata.get(REQUEST_KEY) {
                    handler.answers = Some(request == "true");
                }
                if let Some(schema) = metadata.get(ARGUMENTS_SCHEMA_KEY) {
                    handler.arguments_schema = Some(schema.clone());
                }
                if let Some(schema) = metadata.get(REPLY_SCHEMA_KEY) {
                    handler.reply_schema = Some(schema.clone());
                }
            }
        }
        catalog
    }

    /// The kind named `name`, or why it cannot be used.
    pub fn kind(&self, name: &str) -> Result<&Kind, Failure> {
        if self.kinds.is_empty() {
            return Err(self.nothing_served());
        }
        self.kinds.get(name).ok_or_else(|| {
            Failure::usage(format!(
                "no kind `{name}` in namespace `{}`; kinds: {} (see `swarm kinds`)",
                self.namespace,
                list(self.kinds.keys())
            ))
        })
    }

    /// The handler `handler` of kind `kind`, or why it cannot be used.
    pub fn handler(&self, kind: &str, handler: &str) -> Result<&Handler, Failure> {
        let found = self.kind(kind)?;
        found.handlers.get(handler).ok_or_else(|| {
            Failure::usage(format!(
                "kind `{kind}` has no handler `{handler}`; handlers: {} (see `swarm handlers {kind}`)",
                list(found.handlers.keys())
            ))
        })
    }

    /// No node answered, or none serves a kind: the namespace is wrong or nothing runs.
    pub fn nothing_served(&self) -> Failure {
        Failure::usage(format!(
            "no swarm node serves agents in namespace `{}`; start a node, or choose the \
             namespace with -n / SWARM_NAMESPACE (see `swarm nodes`)",
            self.namespace
        ))
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::EndpointInfo;

    /// An endpoint as (kind, handler, metadata).
    type Served<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn info(id: &str, endpoints: &[Served]) -> Info {
        Info {
            name: "swarm-swarm".into(),
            id: id.into(),
            version: "0.1.0".into(),
            metadata: None,
            endpoints: endpoints
                .iter()
                .map(|(kind, handler, metadata)| EndpointInfo {
                    subject: format!("swarm.{kind}.*.{handler}"),
                    metadata: Some(
                        metadata
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                    ),
                })
                .collect(),
        }
    }

    fn catalog() -> Catalog {
        let infos = [
            info(
                "a1",
                &[
                    ("chat-room", "post", &[("request", "true")]),
                    ("chat-room", "join", &[("request", "false")]),
                ],
            ),
            info(
                "b2",
                &[(
                    "ledger",
                    "add",
                    &[(ARGUMENTS_SCHEMA_KEY, "{}"), (REPLY_SCHEMA_KEY, "true")],
                )],
            ),
        ];
        Catalog::from_infos("swarm", &infos)
    }

    #[test]
    fn kinds_and_handlers_come_from_every_node() {
        let catalog = catalog();
        assert_eq!(
            catalog.kinds.keys().collect::<Vec<_>>(),
            ["chat-room", "ledger"]
        );
        let join = catalog.handler("chat-room", "join").unwrap();
        assert_eq!(join.answers, Some(false));
        let add = catalog.handler("ledger", "add").unwrap();
        assert_eq!(add.arguments_schema.as_deref(), Some("{}"));
        assert_eq!(add.reply_schema.as_deref(), Some("true"));
        assert_eq!(add.answers, None);
        assert_eq!(add.nodes.iter().collect::<Vec<_>>(), ["b2"]);
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let catalog = catalog();
        let kind = catalog.kind("chat-rom").unwrap_err();
        assert_eq!(
            kind.message,
            "no kind `chat-rom` in namespace `swarm`; kinds: chat-room, ledger (see `swarm kinds`)"
        );
        let handler = catalog.handler("chat-room", "pots").unwrap_err();
        assert_eq!(
            handler.message,
            "kind `chat-room` has no handler `pots`; handlers: join, post (see `swarm handlers \
             chat-room`)"
        );
        let empty = Catalog::from_infos("prod", &[]).kind("x").unwrap_err();
        assert!(empty.message.contains("namespace `prod`"), "{empty}");
    }
}

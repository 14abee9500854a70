//! `swarm nodes`, `swarm kinds`, `swarm handlers [KIND]`: what the namespace serves, from the
//! nodes' `$SRV.INFO` answers.

use comfy_table::{Cell, Color};
use serde::Serialize;

use super::Context;
use crate::catalog::Catalog;
use crate::failure::Failure;
use crate::services::{self, Window};

#[derive(Serialize)]
struct NodeRow {
    id: String,
    version: String,
    kinds: Vec<String>,
    endpoints: usize,
}

pub async fn nodes(context: &Context) -> Result<(), Failure> {
    let infos = context.infos(Window::full(services::INFO_WINDOW)).await?;
    let rows: Vec<NodeRow> = infos
        .iter()
        .map(|info| {
            let listed = info
                .metadata
                .as_ref()
                .and_then(|metadata| metadata.get("kinds"))
                .map(|kinds| {
                    kinds
                        .split(',')
                        .filter(|kind| !kind.is_empty())
                        .map(str::to_owned)
                        .collect()
                });
            NodeRow {
                id: info.id.clone(),
                version: info.version.clone(),
                // The node's own list keeps the order it serves them in; an older node without
                // it still has its endpoints.
                kinds: listed.unwrap_or_else(|| {
                    Catalog::from_infos(&context.namespace, std::slice::from_ref(info))
                        .kinds
                        .into_keys()
                        .collect()
                }),
                endpoints: info.endpoints.len(),
            }
        })
        .collect();
    if context.output.json {
        return context.output.json(&rows);
    }
    if rows.is_empty() {
        return nothing_yet(context);
    }
    let mut table = context
        .output
        .table(&["NODE", "VERSION", "KINDS", "ENDPOINTS"]);
    for row in &rows {
        table.add_row(vec![
            Cell::new(&row.id).fg(Color::Cyan),
            Cell::new(&row.version),
            Cell::new(row.kinds.join(", ")),
            Cell::new(row.endpoints),
        ]);
    }
    context.output.table_out(&table)
}

#[derive(Serialize)]
struct KindRow<'a> {
    kind: &'a str,
    handlers: Vec<&'a str>,
    nodes: Vec<&'a str>,
}

pub async fn kinds(context: &Context) -> Result<(), Failure> {
    let catalog = context.catalog().await?;
    let rows: Vec<KindRow> = catalog
        .kinds
        .iter()
        .map(|(kind, served)| KindRow {
            kind,
            handlers: served.handlers.keys().map(String::as_str).collect(),
            nodes: served.nodes.iter().map(String::as_str).collect(),
        })
        .collect();
    if context.output.json {
        return context.output.json(&rows);
    }
    if rows.is_empty() {
        return nothing_yet(context);
    }
    let mut table = context.output.table(&["KIND", "NODES", "HANDLERS"]);
    for row in &rows {
        table.add_row(vec![
            Cell::new(row.kind).fg(Color::Cyan),
            Cell::new(row.nodes.len()),
            Cell::new(row.handlers.join(", ")),
        ]);
    }
    context.output.table_out(&table)
}

#[derive(Serialize)]
struct HandlerRow<'a> {
    kind: &'a str,
    handler: &'a str,
    /// `false` for fire-and-forget; `null` when the node does not say.
    answers: Option<bool>,
    nodes: Vec<&'a str>,
    /// The published JSON Schema of the arguments (parsed when it is JSON, else the text).
    arguments_schema: Option<serde_json::Value>,
    /// The published JSON Schema of the reply, the same way.
    reply_schema: Option<serde_json::Value>,
}

/// A published schema, parsed when it is JSON, else its text as published.
fn schema_value(text: &Option<String>) -> Option<serde_json::Value> {
    text.as_ref().map(|text| {
        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()))
    })
}

pub async fn handlers(context: &Context, only: Option<&str>) -> Result<(), Failure> {
    let catalog = context.catalog().await?;
    if let Some(kind) = only {
        catalog.kind(kind)?;
    }
    let rows: Vec<HandlerRow> = catalog
        .kinds
        .iter()
        .filter(|(kind, _)| only.is_none_or(|only| only == kind.as_str()))
        .flat_map(|(kind, served)| {
            served
                .handlers
                .iter()
                .map(move |(handler, about)| HandlerRow {
                    kind,
                    handler,
                    answers: about.answers,
                    nodes: about.nodes.iter().map(String::as_str).collect(),
                    arguments_schema: schema_value(&about.arguments_schema),
                    reply_schema: schema_value(&about.reply_schema),
                })
        })
        .collect();
    if context.output.json {
        return context.output.json(&rows);
    }
    if rows.is_empty() {
        return nothing_yet(context);
    }
    let mut table = context
        .output
        .table(&["KIND", "HANDLER", "ANSWERS", "SCHEMA", "NODES"]);
    for row in &rows {
        let answers = match row.answers {
            Some(true) => Cell::new("yes").fg(Color::Green),
            Some(false) => Cell::new("no (fire-and-forget)").fg(Color::Yellow),
            None => Cell::new("?"),
        };
        let schema = if row.arguments_schema.is_some() {
            "yes"
        } else {
            "-"
        };
        table.add_row(vec![
            Cell::new(row.kind).fg(Color::Cyan),
            Cell::new(row.handler),
            answers,
            Cell::new(schema),
            Cell::new(row.nodes.len()),
        ]);
    }
    context.output.table_out(&table)
}

/// An empty list is an answer (exit 0), but a person is told why it may be empty.
fn nothing_yet(context: &Context) -> Result<(), Failure> {
    eprintln!(
        "swarm: no node answers in namespace `{}` (is a node running? choose the namespace with \
         -n / SWARM_NAMESPACE)",
        context.namespace
    );
    Ok(())
}

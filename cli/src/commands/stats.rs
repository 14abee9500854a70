//! `swarm stats`: requests, errors and average processing time per node, kind and handler, and
//! each node's own figures (live agents, and the cluster's when it runs in one), from `$SRV.STATS`.

use comfy_table::{Cell, Color};
use serde::Serialize;
use serde_json::{Map, Value};

use super::Context;
use crate::failure::Failure;
use crate::output::{count_cell, duration_text};
use crate::services::{self, kind_and_handler, Stats, Window};

#[derive(Serialize)]
struct NodeStats {
    id: String,
    version: String,
    started: String,
    agents_live: Option<u64>,
    /// The cluster's figures (activations, forwards, CAS conflicts, lease renewals...), when the
    /// node runs in a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Map<String, Value>>,
    endpoints: Vec<EndpointRow>,
}

#[derive(Serialize)]
struct EndpointRow {
    kind: String,
    handler: String,
    requests: u64,
    errors: u64,
    average_processing_ns: u64,
    last_error: String,
}

pub async fn stats(context: &Context) -> Result<(), Failure> {
    let answers = context.stats(Window::full(services::STATS_WINDOW)).await?;
    let nodes: Vec<NodeStats> = answers
        .iter()
        .map(|node| node_stats(&context.namespace, node))
        .collect();
    if context.output.json {
        return context.output.json(&serde_json::json!({
            "namespace": context.namespace,
            "nodes": nodes,
        }));
    }
    if nodes.is_empty() {
        eprintln!(
            "swarm: no node answers in namespace `{}` (is a node running? choose the namespace \
             with -n / SWARM_NAMESPACE)",
            context.namespace
        );
        return Ok(());
    }
    let output = &context.output;
    let mut table = output.table(&[
        "NODE",
        "KIND",
        "HANDLER",
        "REQUESTS",
        "ERRORS",
        "AVG TIME",
        "LAST ERROR",
    ]);
    for node in &nodes {
        for row in &node.endpoints {
            table.add_row(vec![
                Cell::new(&node.id).fg(Color::Cyan),
                Cell::new(&row.kind),
                Cell::new(&row.handler),
                count_cell(row.requests, false),
                count_cell(row.errors, true),
                Cell::new(duration_text(row.average_processing_ns)),
                Cell::new(shorten(&row.last_error, 60)),
            ]);
        }
    }
    output.table_out(&table)?;

    // The node's own figures: one row per figure, one column per node.
    let mut header = vec!["NODE FIGURES"];
    header.extend(nodes.iter().map(|node| node.id.as_str()));
    let mut figures = output.table(&header);
    let mut row = vec![Cell::new("agents_live")];
    row.extend(
        nodes
            .iter()
            .map(|node| Cell::new(node.agents_live.map_or("-".into(), |n| n.to_string()))),
    );
    figures.add_row(row);
    let names: Vec<&String> = nodes
        .iter()
        .flat_map(|node| node.cluster.iter().flat_map(|cluster| cluster.keys()))
        .fold(Vec::new(), |mut names, name| {
            if !names.contains(&name) {
                names.push(name);
            }
            names
        });
    for name in names {
        let mut row = vec![Cell::new(format!("cluster.{name}"))];
        row.extend(nodes.iter().map(|node| {
            let value = node.cluster.as_ref().and_then(|cluster| cluster.get(name));
            Cell::new(match value {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "-".into(),
            })
        }));
        figures.add_row(row);
    }
    output.write("\n")?;
    output.table_out(&figures)
}

fn node_stats(namespace: &str, node: &Stats) -> NodeStats {
    let data = node
        .endpoints
        .iter()
        .find_map(|endpoint| endpoint.data.as_ref());
    NodeStats {
        id: node.id.clone(),
        version: node.version.clone(),
        started: node.started.clone(),
        agents_live: data.and_then(|data| data["agents_live"].as_u64()),
        cluster: data.and_then(|data| data["cluster"].as_object().cloned()),
        endpoints: node
            .endpoints
            .iter()
            .map(|endpoint| {
                let (kind, handler) = kind_and_handler(namespace, &endpoint.subject)
                    .unwrap_or_else(|| (endpoint.name.clone(), String::new()));
                EndpointRow {
                    kind,
                    handler,
                    requests: endpoint.num_requests,
                    errors: endpoint.num_errors,
                    average_processing_ns: endpoint.average_processing_time,
                    last_error: endpoint.last_error.clone(),
                }
            })
            .collect(),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

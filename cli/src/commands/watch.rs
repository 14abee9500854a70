//! `swarm watch`: calls/s and errors/s per kind, live, from successive `$SRV.STATS` readings
//! (see `rates.rs` for what the figures are). On a terminal the view is redrawn in place; with
//! `--json` each reading is one JSON line; piped without `--json`, one plain line per reading.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_table::Cell;
use tokio::time::Instant;

use super::Context;
use crate::failure::Failure;
use crate::rates::{rates, Rates, Reading};
use crate::services::{self, Window};

pub async fn watch(
    context: &Context,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), Failure> {
    tokio::select! {
        done = readings(context, interval, count) => done,
        // Ctrl-C is how a watch normally ends: not a failure.
        _ = tokio::signal::ctrl_c() => {
            if context.output.terminal && !context.output.json {
                context.output.write("\n")?;
            }
            Ok(())
        }
    }
}

async fn readings(
    context: &Context,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), Failure> {
    let mut taken_at = Instant::now();
    // The first reading waits the whole window: it learns how many nodes answer.
    let mut before = Reading::from_stats(
        &context.namespace,
        &context.stats(Window::full(services::STATS_WINDOW)).await?,
    );
    let mut drawn_lines = 0;
    let mut shown = 0u64;
    while count.is_none_or(|count| shown < count) {
        tokio::time::sleep_until(taken_at + interval).await;
        let now = Instant::now();
        let window = Window {
            max: services::STATS_WINDOW,
            quiet: None,
            // Stop as soon as the nodes of the last reading have answered.
            expect: (before.nodes() > 0).then_some(before.nodes()),
        };
        let after = Reading::from_stats(&context.namespace, &context.stats(window).await?);
        let rated = rates(&before, &after, now - taken_at);
        (before, taken_at) = (after, now);
        shown += 1;
        if context.output.json {
            json_line(context, &rated)?;
        } else if context.output.terminal {
            drawn_lines = redraw(context, &rated, interval, drawn_lines)?;
        } else {
            plain_line(context, &rated)?;
        }
    }
    Ok(())
}

fn json_line(context: &Context, rated: &Rates) -> Result<(), Failure> {
    let mut line = serde_json::to_value(rated)
        .map_err(|err| Failure::failed(format!("cannot write a reading as JSON: {err}")))?;
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    line["at"] = serde_json::json!((at * 1000.0).round() / 1000.0);
    line["namespace"] = context.namespace.clone().into();
    context.output.write(&format!("{line}\n"))
}

fn plain_line(context: &Context, rated: &Rates) -> Result<(), Failure> {
    let mut line = format!(
        "calls/s {:.1}  errors/s {:.1}  nodes {}  agents {}",
        rated.calls_per_s, rated.errors_per_s, rated.nodes, rated.agents_live
    );
    if let Some(activations) = rated.activations_per_s {
        line += &format!("  activations/s {activations:.1}");
    }
    context.output.write(&(line + "\n"))
}

/// Draws the view over the previous one (`drawn_lines` high); returns the new height.
fn redraw(
    context: &Context,
    rated: &Rates,
    interval: Duration,
    drawn_lines: usize,
) -> Result<usize, Failure> {
    let output = &context.output;
    let mut table = output.table(&["KIND", "CALLS/S", "ERRORS/S"]);
    for (kind, kind_rates) in &rated.kinds {
        table.add_row(vec![
            Cell::new(kind),
            Cell::new(format!("{:.1}", kind_rates.calls_per_s)),
            error_rate(kind_rates.errors_per_s, output.color),
        ]);
    }
    table.add_row(vec![
        Cell::new("total"),
        Cell::new(format!("{:.1}", rated.calls_per_s)),
        error_rate(rated.errors_per_s, output.color),
    ]);
    let mut text = format!(
        "namespace `{}`: {} node{}, {} agents live, every {:?} (Ctrl-C stops)\n",
        context.namespace,
        rated.nodes,
        if rated.nodes == 1 { "" } else { "s" },
        rated.agents_live,
        interval
    );
    text += &output.table_text(&table);
    if let Some(activations) = rated.activations_per_s {
        text += &format!("cluster activations/s: {activations:.1}\n");
    }
    let height = text.lines().count();
    // Up to the first line of the last view, then clear everything below.
    let back = if drawn_lines > 0 {
        format!("\x1b[{drawn_lines}F\x1b[J")
    } else {
        String::new()
    };
    output.write(&(back + &text))?;
    Ok(height)
}

fn error_rate(rate: f64, color: bool) -> Cell {
    let cell = Cell::new(format!("{rate:.1}"));
    if color && rate > 0.0 {
        cell.fg(comfy_table::Color::Red)
    } else {
        cell
    }
}

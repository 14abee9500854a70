//! The node's span exporter, registered as [`NAME`]: agents started while it runs send it a span
//! for every call that came with a trace context (a W3C `traceparent`); it posts them in batches
//! to an OTLP/HTTP collector (`POST /v1/traces`, JSON), at most every [`BATCH_EVERY`] or
//! [`BATCH_MAX`] spans. A collector that does not take a batch loses it (counted and logged: a
//! node never blocks on its tracing).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::otlp::{export_request, Span};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{decode_envelope, ENVELOPE_HANDLER_ID};

/// The registry name of the node's span exporter.
pub(crate) const NAME: &str = "swarm/spans";
/// The longest a span waits before it is posted.
const BATCH_EVERY: Duration = Duration::from_secs(1);
/// The most spans in one post.
const BATCH_MAX: usize = 512;
/// How long a post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the exporter is told.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A finished span.
    Span(Span),
}

/// Where to post, and the service name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    /// `host:port` of the collector's OTLP/HTTP endpoint.
    pub addr: String,
    /// `service.name` of the spans.
    pub service: String,
}

pub(crate) fn exporter_main(target: Target) {
    let mut batch: Vec<Span> = Vec::new();
    let mut due: Option<Instant> = None;
    let mut lost = 0u64;
    loop {
        let wait = due.map(|due| due.saturating_duration_since(Instant::now()));
        match host::receive(&[], wait) {
            Received::Data => {
                let tag = host::tag();
                if tag >> 56 == ENVELOPE_HANDLER_ID {
                    if let Ok(envelope) = decode_envelope::<Op>(tag) {
                        let Op::Span(span) = envelope.message;
                        batch.push(span);
                        due.get_or_insert_with(|| Instant::now() + BATCH_EVERY);
                    }
                }
            }
            Received::TimedOut => {}
            _ => continue,
        }
        let full = batch.len() >= BATCH_MAX;
        if full || due.is_some_and(|due| due <= Instant::now()) {
            due = None;
            let spans = std::mem::take(&mut batch);
            if let Err(reason) = post(&target, &spans) {
                lost += spans.len() as u64;
                crate::log::warn(
                    "trace.export_failed",
                    &[("endpoint", &target.addr), ("lost", &lost.to_string())],
                    &format!("{} span(s) not exported: {reason}", spans.len()),
                );
            }
        }
    }
}

/// Posts one batch; `Err` unless the collector answers 2xx.
fn post(target: &Target, spans: &[Span]) -> Result<(), String> {
    let body = export_request(&target.service, spans).to_string();
    let mut stream = lunatic::net::TcpStream::connect_timeout(target.addr.as_str(), POST_TIMEOUT)
        .map_err(|err| format!("cannot connect: {err}"))?;
    let _ = stream.set_read_timeout(Some(POST_TIMEOUT));
    let _ = stream.set_write_timeout(Some(POST_TIMEOUT));
    let request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.addr,
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send: {err}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|err| format!("no answer: {err}"))?;
    let status = String::from_utf8_lossy(&head[..n]);
    match status.split(' ').nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(format!(
            "the collector answered {:?}",
            status.lines().next().unwrap_or("")
        )),
    }
}

//! Spans as OpenTelemetry's OTLP/HTTP JSON encoding writes them (`POST /v1/traces`,
//! `ExportTraceServiceRequest`): ids in lowercase hex, times as decimal strings of Unix
//! nanoseconds. Pure, so it is tested natively; the exporter process is in `exporter.rs`.

use serde::{Deserialize, Serialize};

/// One finished span of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The trace.
    pub trace_id: u128,
    /// This span.
    pub span_id: u64,
    /// The caller's span.
    pub parent_id: u64,
    /// `<kind>.<handler>`.
    pub name: String,
    /// The agent kind.
    pub kind: String,
    /// The agent's key.
    pub key: String,
    /// The handler.
    pub handler: String,
    /// Start and end, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nanos: u64,
    /// `None` when the call ended well, else how it failed (an outcome of the metrics).
    pub error: Option<String>,
}

/// The request body for a batch of spans of service `service`.
pub fn export_request(service: &str, spans: &[Span]) -> serde_json::Value {
    let text =
        |key: &str, value: &str| serde_json::json!({"key": key, "value": {"stringValue": value}});
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|span| {
            let mut status = serde_json::json!({"code": 1});
            if let Some(error) = &span.error {
                status = serde_json::json!({"code": 2, "message": error});
            }
            serde_json::json!({
                "traceId": format!("{:032x}", span.trace_id),
                "spanId": format!("{:016x}", span.span_id),
                "parentSpanId": format!("{:016x}", span.parent_id),
                "name": span.name,
                // SPAN_KIND_SERVER: the agent serving a call.
                "kind": 2,
                "startTimeUnixNano": span.start_unix_nanos.to_string(),
                "endTimeUnixNano": span.end_unix_nanos.to_string(),
                "attributes": [
                    text("swarm.kind", &span.kind),
                    text("swarm.key", &span.key),
                    text("swarm.handler", &span.handler),
                ],
                "status": status,
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [text("service.name", service)]},
            "scopeSpans": [{
                "scope": {"name": "swarm", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_in_otlp_json() {
        let span = Span {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0xa,
            parent_id: 0x00f0_67aa_0ba9_02b7,
            name: "counter.add".into(),
            kind: "counter".into(),
            key: "c1".into(),
            handler: "add".into(),
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            error: Some("panicked".into()),
        };
        let body = export_request("node", &[span]);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "000000000000000a");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["startTimeUnixNano"], "1");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "node"
        );
    }
}

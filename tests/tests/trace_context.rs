//! W3C trace context through agents: a `traceparent` on a NATS request reaches the handler as
//! `swarm::trace::current()` (its own span in the caller's trace), and a handle call the handler
//! makes carries it on to the next agent.

use std::time::Duration;

use swarm::nats::{serve_agents, Headers, NatsClient};
use swarm::prelude::*;
use swarm::trace::TraceParent;
use swarm_tests::nats::{connect, server, unique};

const TIMEOUT: Duration = Duration::from_secs(5);
const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Answers the trace context it runs in, and asks another hop for its own.
#[agent(kind = "hop")]
pub struct Hop {
    #[key]
    name: String,
}

#[agent]
impl Hop {
    #[handler]
    pub fn here(&self) -> Option<String> {
        swarm::trace::current().map(|trace| trace.to_string())
    }

    #[handler]
    pub fn via(&self, next: String) -> (Option<String>, Option<String>) {
        let theirs = Hop::get_or_start(next)
            .map_err(|err| err.to_string())
            .and_then(|hop| hop.here().map_err(|err| err.to_string()));
        (self.here(), theirs.unwrap_or_else(Some))
    }
}

fn ask(
    client: &NatsClient,
    subject: &str,
    payload: &str,
    trace: Option<&str>,
) -> serde_json::Value {
    let reply = match trace {
        Some(trace) => {
            let mut headers = Headers::new();
            headers.insert("traceparent", trace).unwrap();
            client.request_with_headers(subject, &headers, payload.as_bytes(), TIMEOUT)
        }
        None => client.request(subject, payload.as_bytes(), TIMEOUT),
    }
    .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("the reply is JSON")
}

fn parse(value: &serde_json::Value) -> TraceParent {
    TraceParent::parse(value.as_str().unwrap_or_default())
        .unwrap_or_else(|| panic!("not a traceparent: {value}"))
}

#[lunatic::test]
fn a_callers_trace_continues_through_the_agents_it_reaches() {
    let Some(url) = server("URL") else { return };
    swarm::set_default_store(StoreConfig::memory("trace-context")).unwrap();
    let client = connect(&url);
    let ns = unique("trace");
    let _service = serve_agents::<Hop>(&client, &ns, 1).unwrap();
    let caller = TraceParent::parse(CALLER).unwrap();

    // The handler runs as its own span of the caller's trace.
    let here = ask(&client, &format!("{ns}.hop.a.here"), "", Some(CALLER));
    let first = parse(&here["ok"]);
    assert_eq!(first.trace_id, caller.trace_id, "{here}");
    assert_ne!(
        first.parent_id, caller.parent_id,
        "a span of its own: {here}"
    );
    assert_eq!(first.flags, caller.flags);

    // Its handle call to another agent carries the trace on.
    let via = ask(
        &client,
        &format!("{ns}.hop.a.via"),
        r#"{"next": "b"}"#,
        Some(CALLER),
    );
    let (mine, theirs) = (parse(&via["ok"][0]), parse(&via["ok"][1]));
    assert_eq!(mine.trace_id, caller.trace_id, "{via}");
    assert_eq!(theirs.trace_id, caller.trace_id, "{via}");
    assert_ne!(
        theirs.parent_id, mine.parent_id,
        "each hop is its own span: {via}"
    );

    // No traceparent, or one W3C says to ignore: no trace, anywhere.
    for trace in [None, Some("00-not-a-trace-01")] {
        let via = ask(
            &client,
            &format!("{ns}.hop.a.via"),
            r#"{"next": "b"}"#,
            trace,
        );
        assert_eq!(via, serde_json::json!({"ok": [null, null]}), "{trace:?}");
    }
    // Outside a handler there is none either.
    assert_eq!(swarm::trace::current(), None);
}

//! W3C Trace Context (`traceparent`) carried with calls, so that a trace a caller started (a
//! native program with OpenTelemetry, say) continues through the agents it reaches.
//!
//! - A NATS request may carry a `traceparent` header (`00-<trace id>-<parent id>-<flags>`); the
//!   front door hands it to the agent with the request (and forwards it to another node with the
//!   request). An invalid header is ignored, as the W3C recommendation says.
//! - While a handler runs, [`current`] is the agent's own span in that trace: the same trace id,
//!   a fresh span id, the caller's flags. A handler may log it or give it to its own tracer.
//! - Calls the handler makes carry it on: requests to local agents (in the reply address) and
//!   calls to agents on other nodes of a cluster (as the `traceparent` header), so the callee's
//!   parent is this agent's span.
//! - A native client sends one with `KindClient::trace` (`swarm::client`, in native builds with
//!   the `client` feature: not a link, as the API's docs are built for Lunatic).
//!
//! Spans are recorded and exported by the node's span exporter, when it has one
//! (`swarm::metrics::export_spans`): each agent's span of a call that carried a context.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

/// The header that carries a call's trace context.
pub const HEADER: &str = "traceparent";

/// One W3C `traceparent`: a trace, the span that made this call, and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceParent {
    /// The trace, 16 bytes (never zero).
    pub trace_id: u128,
    /// The span of the caller (never zero).
    pub parent_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value: `None` unless it is one (version `00` exactly as
    /// W3C writes it, or a later version's first four fields; the ids not all zero).
    pub fn parse(text: &str) -> Option<TraceParent> {
        let text = text.trim();
        let mut fields = text.split('-');
        let version = fields.next()?;
        let (trace, parent, flags) = (fields.next()?, fields.next()?, fields.next()?);
        let rest = fields.next();
        let lower_hex = |field: &str, len: usize| {
            field.len() == len
                && field
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !lower_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !(lower_hex(trace, 32) && lower_hex(parent, 16) && lower_hex(flags, 2)) {
            return None;
        }
        let parsed = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.parent_id != 0).then_some(parsed)
    }

    /// A new trace, sampled, whose first span is the caller's.
    pub fn new_root() -> TraceParent {
        let trace_id = (u128::from(random_nonzero()) << 64) | u128::from(random_nonzero());
        TraceParent {
            trace_id,
            parent_id: random_nonzero(),
            flags: 1,
        }
    }

    /// A span in the same trace, as its own calls' parent: a fresh span id.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            parent_id: random_nonzero(),
            ..*self
        }
    }

    /// The trace id as W3C writes it (32 lowercase hex digits).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// A random, non-zero id: from the keys std seeds its hash maps with (the host's randomness,
/// WASI's `random_get` inside Lunatic), enough for span ids, which need to be unique, not secret.
fn random_nonzero() -> u64 {
    thread_local! {
        static COUNTER: Cell<u64> = const { Cell::new(0) };
    }
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.with(|counter| {
            counter.set(counter.get().wrapping_add(1));
            counter.get()
        }));
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

thread_local! {
    /// The span of the handler running now in this process (Lunatic processes are
    /// single-threaded; a native thread has none).
    static CURRENT: Cell<Option<TraceParent>> = const { Cell::new(None) };
}

/// The trace context of the handler running now: its own span in the trace its caller sent,
/// or `None` (no handler running, or a caller that sent none).
pub fn current() -> Option<TraceParent> {
    CURRENT.with(Cell::get)
}

/// Sets [`current`] for the handler about to run (the runtime does it).
// Agents run on Lunatic (wasm32) only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn set_current(trace: Option<TraceParent>) {
    CURRENT.with(|current| current.set(trace));
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_the_w3c_example() {
        let parsed = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), EXAMPLE);
    }

    #[test]
    fn refuses_what_w3c_says_to_ignore() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may add fields: its first four are read.
        assert!(
            TraceParent::parse(&EXAMPLE.replacen("00", "01", 1).replace("-01", "-01-x")).is_some()
        );
    }

    #[test]
    fn a_child_stays_in_the_trace_with_a_new_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, root.parent_id);
        assert_ne!(TraceParent::new_root().trace_id, root.trace_id);
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
    }
}

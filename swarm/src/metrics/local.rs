//! An agent process' own counts: calls per handler and outcome, their latency, its store
//! operations. Kept in the process' memory (a Lunatic process is single-threaded: no lock) and
//! sent to the node's metrics process as one [`CallsDelta`] at most once per [`FLUSH_EVERY`],
//! when the agent ends, and from the panic hook when it crashes. With metrics off (no metrics
//! process registered when the agent started) a call costs one branch.
//!
//! **Latency is sampled.** A clock read is a host call under Lunatic (about 0.1-0.4 us measured,
//! against a local request of 2-6 us), and timing a call takes two. So an agent times every call
//! until it has timed [`TIME_ALL`] since its last delta, then one call in [`SAMPLE_EVERY`]: an
//! agent with a few calls a second has each one in the histogram, a busy one pays two clock
//! reads per [`SAMPLE_EVERY`] calls. Calls are counted exactly either way, so
//! `swarm_call_duration_seconds_count` can be lower than `swarm_calls_total`.
//!
//! What is lost: an agent killed from outside (`kill()`, the registrar at its message budget)
//! loses what it counted since its last delta, at most [`FLUSH_EVERY`] of calls.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::model::{CallsDelta, HandlerCounts, Outcome, StoreCounts};
use crate::runtime::agent::HandlerInfo;
use crate::runtime::host;
use crate::runtime::mailbox::cast;
use crate::store::StoreConfig;

/// The longest an agent keeps counts before sending them.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Calls an agent times, all of them, after each delta it sends.
pub(crate) const TIME_ALL: u32 = 32;
/// Past [`TIME_ALL`], one call in this many is timed.
pub(crate) const SAMPLE_EVERY: u32 = 64;

/// The top byte of the tick's tag: no Lunatic handler number (those are below 64) and none of
/// swarm's other tags (see the list in `nats/client/messages.rs`).
pub(crate) const TICK_HANDLER_ID: i64 = 0x78;
/// The tag of the timer message that has an agent send counts it kept for [`FLUSH_EVERY`].
const TICK_TAG: i64 = (TICK_HANDLER_ID << 56) | 0x4D45_5452;

/// A store operation an agent makes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreOp {
    /// Reading its record at start.
    Load = 0,
    /// Writing its changed state.
    Save = 1,
}

struct Local {
    collector: u64,
    kind: &'static str,
    handlers: &'static [HandlerInfo],
    counts: Vec<HandlerCounts>,
    backend: &'static str,
    store: [StoreCounts; 2],
    /// Whether anything was counted since the last delta.
    dirty: bool,
    last_flush: Instant,
    /// The call running now: its handler and, if it is timed, when it started.
    current: Option<(usize, Option<Instant>)>,
    /// Calls timed since the last delta.
    timed: u32,
    /// Calls not timed since the last timed one.
    skipped: u32,
    /// Whether a tick is on its way (see [`arm_tick`]).
    tick_armed: bool,
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
    /// How the running call ended, when not `Ok` (set just before a failure answer or panic).
    static OUTCOME: Cell<Outcome> = const { Cell::new(Outcome::Ok) };
}

/// Turns counting on in this agent process if the node serves metrics (its metrics process is
/// registered): called once, as the agent starts.
pub(crate) fn start_agent(
    kind: &'static str,
    handlers: &'static [HandlerInfo],
    store: Option<&StoreConfig>,
) {
    let Some(collector) = host::registry_get(super::collector::NAME) else {
        return;
    };
    let backend = match store {
        Some(StoreConfig::Memory { .. }) => "memory",
        Some(StoreConfig::File { .. }) => "file",
        Some(StoreConfig::Sqlite { .. }) => "sqlite",
        Some(StoreConfig::NatsKv { .. }) => "nats_kv",
        None => "none",
    };
    LOCAL.with(|local| {
        *local.borrow_mut() = Some(Local {
            collector: collector.id,
            kind,
            handlers,
            counts: vec![HandlerCounts::default(); handlers.len()],
            backend,
            store: Default::default(),
            dirty: false,
            last_flush: Instant::now(),
            current: None,
            timed: 0,
            skipped: 0,
            tick_armed: false,
        })
    });
    ON.with(|on| on.set(true));
}

/// Whether this process counts.
#[inline]
pub(crate) fn on() -> bool {
    ON.with(Cell::get)
}

/// A call to handler `handler` starts now.
pub(crate) fn call_started(handler: Option<usize>) {
    let Some(handler) = handler else { return };
    LOCAL.with(|local| {
        if let Some(local) = local.borrow_mut().as_mut() {
            let time = local.timed < TIME_ALL || local.skipped + 1 >= SAMPLE_EVERY;
            let started = if time {
                local.timed = local.timed.saturating_add(1);
                local.skipped = 0;
                Some(Instant::now())
            } else {
                local.skipped += 1;
                None
            };
            local.current = Some((handler, started));
        }
    });
    OUTCOME.with(|outcome| outcome.set(Outcome::Ok));
}

/// The running call is ending with `outcome` (before its failure answer, or a panic).
pub(crate) fn set_outcome(outcome: Outcome) {
    if on() || spans_on() {
        OUTCOME.with(|slot| slot.set(outcome));
    }
}

/// The running call is over; a timed one also sends the counts if they are due (an agent that
/// gets no timed call in time sends them on its tick, see [`arm_tick`]).
pub(crate) fn call_ended() {
    let outcome = OUTCOME.with(|slot| slot.replace(Outcome::Ok));
    let due = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let local = local.as_mut()?;
        let (handler, started) = local.current.take()?;
        let counts = local.counts.get_mut(handler)?;
        counts.outcomes[outcome.index()] += 1;
        local.dirty = true;
        let started = started?;
        let now = Instant::now();
        counts
            .latency
            .observe(now.saturating_duration_since(started).as_nanos() as u64);
        Some(now.saturating_duration_since(local.last_flush) >= FLUSH_EVERY)
    });
    if due == Some(true) {
        flush();
    }
}

/// A call that did not run (expired, refused, a repeat): counted, no latency.
pub(crate) fn count_unrun(handler: Option<usize>, outcome: Outcome) {
    let Some(handler) = handler else { return };
    LOCAL.with(|local| {
        if let Some(local) = local.borrow_mut().as_mut() {
            if let Some(counts) = local.counts.get_mut(handler) {
                counts.outcomes[outcome.index()] += 1;
                local.dirty = true;
            }
        }
    });
}

/// A store operation that started at `started` is over.
pub(crate) fn store_op(op: StoreOp, started: Instant, ok: bool) {
    let nanos = started.elapsed().as_nanos() as u64;
    LOCAL.with(|local| {
        if let Some(local) = local.borrow_mut().as_mut() {
            let counts = &mut local.store[op as usize];
            if ok {
                counts.ok += 1;
            } else {
                counts.failed += 1;
            }
            counts.latency.observe(nanos);
            local.dirty = true;
        }
    });
}

/// Called by the agent's loop before it waits for a message: if it keeps counts and no tick is
/// on its way, one is set (a host timer) for when they are due, so that an agent whose calls
/// stopped still sends them. One timer per [`FLUSH_EVERY`] at most: a wait with a timeout
/// instead would set a host timer on every wait, which costs a busy agent more than counting.
pub(crate) fn arm_tick() {
    let delay = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let local = local.as_mut()?;
        if !local.dirty || local.tick_armed {
            return None;
        }
        local.tick_armed = true;
        Some((local.last_flush + FLUSH_EVERY).saturating_duration_since(Instant::now()))
    });
    if let Some(delay) = delay {
        if host::send_after(host::this().id, TICK_TAG, &(), delay).is_err() {
            LOCAL.with(|local| {
                if let Some(local) = local.borrow_mut().as_mut() {
                    local.tick_armed = false;
                }
            });
        }
    }
}

/// The tick came: sends the counts kept.
pub(crate) fn tick() {
    LOCAL.with(|local| {
        if let Some(local) = local.borrow_mut().as_mut() {
            local.tick_armed = false;
        }
    });
    flush();
}

/// The process is panicking: a call that was running ends with the outcome set for it (a
/// failed save, memory past the cap) or as panicked, and everything counted is sent now.
pub(crate) fn on_panic() {
    if spans_on() {
        span_ended(Some(current_outcome().unwrap_or(Outcome::Panicked)));
    }
    if !on() {
        return;
    }
    let outcome = OUTCOME.with(|slot| slot.replace(Outcome::Ok));
    let outcome = if outcome == Outcome::Ok {
        Outcome::Panicked
    } else {
        outcome
    };
    // `try_borrow_mut`: a panic while the counts were borrowed (inside `flush`) must not panic
    // again in the hook; those counts are lost with the process.
    let counted = LOCAL.with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return false;
        };
        let Some(local) = local.as_mut() else {
            return false;
        };
        if let Some((handler, started)) = local.current.take() {
            if let Some(counts) = local.counts.get_mut(handler) {
                counts.outcomes[outcome.index()] += 1;
                if let Some(started) = started {
                    counts.latency.observe(started.elapsed().as_nanos() as u64);
                }
                local.dirty = true;
            }
        }
        true
    });
    if counted {
        flush();
    }
}

/// Sends what was counted since the last delta, if anything.
pub(crate) fn flush() {
    let delta = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let local = local.as_mut()?;
        local.last_flush = Instant::now();
        if !local.dirty {
            return None;
        }
        local.dirty = false;
        local.timed = 0;
        let handlers = local
            .handlers
            .iter()
            .zip(local.counts.iter_mut())
            .filter(|(_, counts)| !counts.is_empty())
            .map(|(info, counts)| (info.name.to_owned(), std::mem::take(counts)))
            .collect();
        let store = ["load", "save"]
            .into_iter()
            .zip(local.store.iter_mut())
            .filter(|(_, counts)| counts.ok + counts.failed > 0)
            .map(|(op, counts)| {
                (
                    local.backend.to_owned(),
                    op.to_owned(),
                    std::mem::take(counts),
                )
            })
            .collect();
        Some((
            local.collector,
            CallsDelta {
                kind: local.kind.to_owned(),
                handlers,
                store,
            },
        ))
    });
    if let Some((collector, delta)) = delta {
        cast(collector, super::collector::Op::Calls(delta));
    }
}

/// A span being served: a call that came with a trace context, on a node that exports spans.
struct OpenSpan {
    trace: crate::trace::TraceParent,
    own: crate::trace::TraceParent,
    handler: usize,
    start_unix_nanos: u64,
}

/// What an agent needs to name its spans.
struct SpanSource {
    exporter: u64,
    kind: &'static str,
    key: String,
    handlers: &'static [HandlerInfo],
}

thread_local! {
    static SPANS: RefCell<Option<SpanSource>> = const { RefCell::new(None) };
    static SPANS_ON: Cell<bool> = const { Cell::new(false) };
    static OPEN_SPAN: RefCell<Option<OpenSpan>> = const { RefCell::new(None) };
}

/// Turns span recording on in this agent process if the node exports spans (its exporter is
/// registered): called once, as the agent starts.
pub(crate) fn start_spans(kind: &'static str, key: &str, handlers: &'static [HandlerInfo]) {
    let Some(exporter) = host::registry_get(super::exporter::NAME) else {
        return;
    };
    SPANS.with(|spans| {
        *spans.borrow_mut() = Some(SpanSource {
            exporter: exporter.id,
            kind,
            key: key.to_owned(),
            handlers,
        })
    });
    SPANS_ON.with(|on| on.set(true));
}

/// Whether this process records spans.
#[inline]
pub(crate) fn spans_on() -> bool {
    SPANS_ON.with(Cell::get)
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// A traced call to `handler` starts: `trace` as the caller sent it, `own` the agent's span.
pub(crate) fn span_started(
    handler: Option<usize>,
    trace: crate::trace::TraceParent,
    own: crate::trace::TraceParent,
) {
    let Some(handler) = handler else { return };
    OPEN_SPAN.with(|open| {
        *open.borrow_mut() = Some(OpenSpan {
            trace,
            own,
            handler,
            start_unix_nanos: unix_nanos(),
        })
    });
}

/// The traced call is over (`error`: how it failed), its span goes to the exporter.
pub(crate) fn span_ended(error: Option<Outcome>) {
    let Some(open) = OPEN_SPAN.with(|open| open.try_borrow_mut().ok()?.take()) else {
        return;
    };
    let end_unix_nanos = unix_nanos();
    let sent = SPANS.with(|spans| {
        let spans = spans.try_borrow().ok()?;
        let source = spans.as_ref()?;
        let handler = source.handlers.get(open.handler)?.name;
        Some((
            source.exporter,
            super::otlp::Span {
                trace_id: open.trace.trace_id,
                span_id: open.own.parent_id,
                parent_id: open.trace.parent_id,
                name: format!("{}.{handler}", source.kind),
                kind: source.kind.to_owned(),
                key: source.key.clone(),
                handler: handler.to_owned(),
                start_unix_nanos: open.start_unix_nanos,
                end_unix_nanos,
                error: error.map(|outcome| outcome.as_str().to_owned()),
            },
        ))
    });
    if let Some((exporter, span)) = sent {
        cast(exporter, super::exporter::Op::Span(span));
    }
}

/// How the running call is ending, for its span (without resetting it for the counts).
pub(crate) fn current_outcome() -> Option<Outcome> {
    let outcome = OUTCOME.with(Cell::get);
    (outcome != Outcome::Ok).then_some(outcome)
}

//! The node's metrics process, registered as [`NAME`]: it adds up the deltas agent processes and
//! supervisors send it, and gives a copy of the totals to whoever renders a scrape. Its being
//! registered is what turns counting on in agents started afterwards (see `local.rs`), so a node
//! that does not serve metrics pays nothing for them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{CallsDelta, SubjectsDelta, SupervisorEvent, Totals};
use crate::runtime::host::{self, Received};
use crate::runtime::mailbox::{call, cast, decode_envelope, ENVELOPE_HANDLER_ID};
use crate::store::StoreConfig;

/// The registry name of the node's metrics process.
pub(crate) const NAME: &str = "swarm/metrics";

/// How long a scrape waits for the totals.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// What the metrics process is asked or told.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// An agent's counts since its last delta.
    Calls(CallsDelta),
    /// A supervisor's event.
    Supervisor(SupervisorEvent),
    /// The totals and what the scrape is to ask others (answered with a [`Snapshot`]).
    Snapshot,
    /// A subject subscriber's counts since its last delta.
    Subjects(SubjectsDelta),
}

/// What the node serves metrics about, beyond its own processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Sources {
    /// The store readiness checks (`None`: the node's default store).
    pub store: Option<StoreConfig>,
    /// The NATS connection whose figures are shown and whose state readiness checks.
    #[cfg(feature = "nats")]
    pub nats: Option<crate::nats::NatsClient>,
    /// The cluster namespace whose figures are shown.
    #[cfg(feature = "nats")]
    pub cluster: Option<String>,
}

/// A copy of the totals, with the sources.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub totals: Totals,
    pub sources: Sources,
}

/// The metrics process' life: one message at a time, for ever (it runs no user code).
pub(crate) fn collector_main(sources: Sources) {
    let mut totals = Totals::default();
    loop {
        if host::receive(&[], None) != Received::Data {
            continue;
        }
        let tag = host::tag();
        if tag >> 56 != ENVELOPE_HANDLER_ID {
            continue;
        }
        let Ok(envelope) = decode_envelope::<Op>(tag) else {
            continue;
        };
        match envelope.message {
            Op::Calls(delta) => totals.add_calls(delta),
            Op::Supervisor(event) => totals.add_supervisor(event),
            Op::Subjects(delta) => totals.add_subjects(delta),
            Op::Snapshot => {
                if let Some(reply_to) = envelope.reply_to {
                    reply_to.send(Snapshot {
                        totals: totals.clone(),
                        sources: sources.clone(),
                    });
                }
            }
        }
    }
}

/// Tells the metrics process about a supervisor's event, if the node serves metrics. Events are
/// rare (starts, crashes), so each is one message.
pub(crate) fn supervisor_event(event: SupervisorEvent) {
    if let Some(collector) = host::registry_get(NAME) {
        cast(collector.id, Op::Supervisor(event));
    }
}

/// The totals now, from the metrics process `collector`.
pub(crate) fn snapshot(collector: u64) -> Result<Snapshot, String> {
    call::<Op, Snapshot>(collector, Op::Snapshot, Some(SNAPSHOT_WAIT))
        .map_err(|err| format!("the metrics process did not answer: {err:?}"))
}

/// Sends a subject subscriber's counts to the metrics process, if the node serves metrics.
#[cfg(feature = "nats")]
pub(crate) fn subjects_delta(delta: SubjectsDelta) {
    if let Some(collector) = host::registry_get(NAME) {
        cast(collector.id, Op::Subjects(delta));
    }
}

//! The calls an agent applied, by request id (see `request_id`): what lets a caller retry a
//! call whose answer it did not get without applying it twice.
//!
//! An agent remembers the digest of every state-changing call that came with an id, with its
//! answer, for its last [`KEPT`] such calls (answers up to [`ANSWER_BYTES`] in all). A call with a
//! remembered id is answered with the first answer and not run again. The last [`PERSISTED`] ids
//! (without their answers) are saved with the agent's state, in the same write: after a crash or
//! on another node, a call that was applied is still not applied again, answered
//! `already_applied` (its answer was not kept) instead.

use std::collections::VecDeque;

use crate::record;
use crate::request_id::RequestDigest;

/// Calls remembered in memory, per agent.
const KEPT: usize = 64;
/// Ids saved with the state: a retry comes within seconds, and each id costs 35 bytes per save.
pub(crate) const PERSISTED: usize = 32;
/// The answers remembered, in bytes in all (older answers are dropped first, their ids kept):
/// small, as an agent's whole footprint is tens of KiB.
const ANSWER_BYTES: usize = 16 * 1024;
/// The member of the record that holds the saved ids.
const MEMBER: &str = "__swarm_applied";
/// The member of the record that holds the stream marks: per handler bound to a stream, the
/// stream sequence of the last message it applied (see `nats::streams`).
const STREAMS_MEMBER: &str = "__swarm_streams";

/// What an agent remembers of a call it applied.
pub(crate) enum Found<'a> {
    /// The first call's answer, as sent (JSON).
    Answer(&'a [u8]),
    /// Applied before the agent last started: only the id was saved.
    AnswerNotKept,
}

#[derive(Default)]
pub(crate) struct Applied {
    calls: VecDeque<(RequestDigest, Option<Vec<u8>>)>,
    answer_bytes: usize,
    /// Per handler bound to a stream, the sequence of the last message it applied.
    marks: std::collections::BTreeMap<String, u64>,
}

impl Applied {
    /// The ids saved in `record` (by [`Applied::saved_with`]); none for a record without them.
    pub(crate) fn from_record(record: &[u8]) -> Applied {
        let calls = record::member(record, MEMBER)
            .and_then(|ids| match ids {
                serde_json::Value::Array(ids) => Some(ids),
                _ => None,
            })
            .unwrap_or_default()
            .iter()
            .filter_map(|id| id.as_str().and_then(RequestDigest::from_hex))
            .map(|digest| (digest, None))
            .collect();
        let marks = record::member(record, STREAMS_MEMBER)
            .and_then(|marks| serde_json::from_value(marks).ok())
            .unwrap_or_default();
        Applied {
            calls,
            answer_bytes: 0,
            marks,
        }
    }

    /// The sequence of the last stream message `handler` applied (0: none).
    pub(crate) fn stream_mark(&self, handler: &str) -> u64 {
        self.marks.get(handler).copied().unwrap_or(0)
    }

    /// `handler` applied the stream message at `seq`: saved with the state's next write.
    pub(crate) fn set_stream_mark(&mut self, handler: &str, seq: u64) {
        self.marks.insert(handler.to_owned(), seq);
    }

    pub(crate) fn find(&self, digest: RequestDigest) -> Option<Found<'_>> {
        self.calls
            .iter()
            .rev()
            .find(|(known, _)| *known == digest)
            .map(|(_, answer)| match answer {
                Some(answer) => Found::Answer(answer),
                None => Found::AnswerNotKept,
            })
    }

    /// Remembers a call applied now, with its answer.
    pub(crate) fn remember(&mut self, digest: RequestDigest, answer: Vec<u8>) {
        if self.calls.len() == KEPT {
            if let Some((_, Some(old))) = self.calls.pop_front() {
                self.answer_bytes -= old.len();
            }
        }
        self.answer_bytes += answer.len();
        self.calls.push_back((digest, Some(answer)));
        // Over the budget: forget the oldest answers (not their ids).
        for (_, answer) in self.calls.iter_mut() {
            if self.answer_bytes <= ANSWER_BYTES {
                break;
            }
            if let Some(old) = answer.take() {
                self.answer_bytes -= old.len();
            }
        }
    }

    /// `record` with the last [`PERSISTED`] ids in it; what is saved.
    pub(crate) fn saved_with(&self, record: &[u8]) -> Result<Vec<u8>, String> {
        let record = if self.marks.is_empty() {
            record.to_vec()
        } else {
            let marks = serde_json::to_vec(&self.marks).map_err(|err| err.to_string())?;
            record::with_member(record, STREAMS_MEMBER, &marks)?
        };
        let record = &record[..];
        if self.calls.is_empty() {
            return Ok(record.to_vec());
        }
        let ids: Vec<String> = self
            .calls
            .iter()
            .skip(self.calls.len().saturating_sub(PERSISTED))
            .map(|(digest, _)| digest.to_hex())
            .collect();
        let value = serde_json::to_vec(&ids).map_err(|err| err.to_string())?;
        record::with_member(record, MEMBER, &value)
    }
}

//! The file store's journal: how saves from many agents share one fsync.
//!
//! A record file must be fsynced before it is renamed over the old one, or a power loss can leave
//! it empty; one fsync per save caps the store near the disk's fsync rate however many agents
//! save. With the journal, the node's file store process (see `file.rs`) takes every save queued
//! in its mailbox, appends them all to `<dir>/.swarm-journal` in one write, fsyncs that one file,
//! and only then writes each record (temporary file + rename, without an fsync of its own) and
//! answers its caller. An acknowledged save is therefore in the fsynced journal before its answer,
//! whatever happens to its record file afterwards.
//!
//! Opening the store replays the journal before anything is read or written: every whole frame,
//! in order, is written again to its record (this time with the record's own fsync), then the
//! journal is emptied. A frame cut short by a crash fails its length or checksum and ends the
//! replay: it was never acknowledged. The journal is also emptied while the store runs, once it
//! passes [`CHECKPOINT_BYTES`], after an fsync of every record written since the last time.
//!
//! Frame: `SWJ1 | op (1 put, 2 delete) | key length u32 LE | value length u32 LE | key | value |
//! checksum of everything before (see `checksum`), u64 LE`.

/// The journal's file name inside the store directory. It has a dot, which no storage key has,
/// so it can never be a record.
pub(crate) const JOURNAL_NAME: &str = ".swarm-journal";
/// The journal is emptied (after the records it covers are fsynced) once it is this long.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // only the Lunatic store process journals
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;

const MAGIC: &[u8; 4] = b"SWJ1";
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const HEADER_LEN: usize = 4 + 1 + 4 + 4;
const CHECKSUM_LEN: usize = 8;

/// One change to the store, as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `key` now holds `value`.
    Put(String, Vec<u8>),
    /// `key` holds nothing.
    Delete(String),
}

/// Appends the frame of `entry` to `out`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // natively, only tests journal
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let start = out.len();
    let (op, key, value): (u8, &str, &[u8]) = match entry {
        Entry::Put(key, value) => (OP_PUT, key, value),
        Entry::Delete(key) => (OP_DELETE, key, &[]),
    };
    out.extend_from_slice(MAGIC);
    out.push(op);
    // Keys are at most 512 bytes and values at most 256 MiB (checked before a save reaches the
    // journal), so both lengths fit a u32.
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    let sum = checksum(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// The whole frames at the start of `bytes`, in order, and whether anything followed them that
/// is not a whole frame (the tail of a write a crash cut short).
pub(crate) fn decode(bytes: &[u8]) -> (Vec<Entry>, bool) {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match decode_one(rest) {
            Some((entry, used)) => {
                entries.push(entry);
                rest = &rest[used..];
            }
            None => return (entries, true),
        }
    }
    (entries, false)
}

fn decode_one(bytes: &[u8]) -> Option<(Entry, usize)> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return None;
    }
    let op = bytes[4];
    let key_len = u32::from_le_bytes(bytes[5..9].try_into().ok()?) as usize;
    let value_len = u32::from_le_bytes(bytes[9..13].try_into().ok()?) as usize;
    let body_end = HEADER_LEN.checked_add(key_len)?.checked_add(value_len)?;
    let end = body_end.checked_add(CHECKSUM_LEN)?;
    if bytes.len() < end {
        return None;
    }
    let sum = u64::from_le_bytes(bytes[body_end..end].try_into().ok()?);
    if checksum(&bytes[..body_end]) != sum {
        return None;
    }
    let key = std::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + key_len])
        .ok()?
        .to_owned();
    let entry = match op {
        OP_PUT => Entry::Put(key, bytes[HEADER_LEN + key_len..body_end].to_vec()),
        OP_DELETE if value_len == 0 => Entry::Delete(key),
        _ => return None,
    };
    Some((entry, end))
}

/// An FNV-1a-style hash over 8-byte words (then the last bytes), rotated each step so that every
/// bit reaches the low bits: enough to tell a whole frame from one a crash cut short or left as
/// zeros (it guards against torn writes, not against tampering). Words, not bytes: a 4 MiB value
/// is half a million steps, cheap even in a debug build.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let step = |hash: u64, word: u64| (hash ^ word).wrapping_mul(PRIME).rotate_left(29);
    let mut words = bytes.chunks_exact(8);
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    for word in &mut words {
        let mut le = [0; 8];
        le.copy_from_slice(word);
        hash = step(hash, u64::from_le_bytes(le));
    }
    for byte in words.remainder() {
        hash = step(hash, u64::from(*byte));
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in entries {
            encode(entry, &mut out);
        }
        out
    }

    #[test]
    fn frames_decode_in_order() {
        let entries = vec![
            Entry::Put("k/a".into(), b"one".to_vec()),
            Entry::Delete("k/b".into()),
            Entry::Put("k/a".into(), Vec::new()),
        ];
        assert_eq!(decode(&frames(&entries)), (entries, false));
        assert_eq!(decode(&[]), (Vec::new(), false));
    }

    #[test]
    fn a_frame_cut_short_ends_the_replay_and_is_reported() {
        let whole = Entry::Put("k/a".into(), b"acknowledged".to_vec());
        let cut = Entry::Put("k/b".into(), b"never acknowledged".to_vec());
        let bytes = frames(&[whole.clone(), cut]);
        let first_len = frames(std::slice::from_ref(&whole)).len();
        // Every length a crash could leave, from the second frame's first byte to its last.
        for len in first_len + 1..bytes.len() {
            assert_eq!(decode(&bytes[..len]), (vec![whole.clone()], true), "{len}");
        }
        // A torn write that left zeros (a file extended but not written) or other garbage.
        let mut zeros = frames(std::slice::from_ref(&whole));
        zeros.extend_from_slice(&[0; 40]);
        assert_eq!(decode(&zeros), (vec![whole.clone()], true));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        assert_eq!(decode(&flipped), (vec![whole], true));
    }

    #[test]
    fn lengths_from_a_damaged_header_never_panic() {
        let mut bytes = MAGIC.to_vec();
        bytes.push(OP_PUT);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), (Vec::new(), true));
        let mut delete_with_value = frames(&[Entry::Put("k/a".into(), b"x".to_vec())]);
        delete_with_value[4] = OP_DELETE;
        assert_eq!(decode(&delete_with_value), (Vec::new(), true));
    }
}

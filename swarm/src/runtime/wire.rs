//! How swarm encodes messages on the local mailbox path: bincode, written to and read from the
//! Lunatic message buffer in one host call each.
//!
//! Lunatic's own `Bincode` serializer streams through `Read`/`Write` on the message buffer, and
//! bincode writes every field separately: each `u64` of a message is a host call. `Wire` encodes
//! into a per-process scratch buffer and hands it over with one `write_data`; decoding reads the
//! whole message with one `read_data` and decodes from the slice. The bytes are the same bincode.

use std::cell::RefCell;

use lunatic::serializer::{CanSerialize, DecodeError, EncodeError};
use serde::{de::DeserializeOwned, Serialize};

/// The serializer of every swarm process (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Wire;

/// Messages up to this size are read with a single host call.
const SMALL: usize = 256;

thread_local! {
    /// Reused for every message of this process (a Lunatic process is single-threaded), so
    /// encoding allocates only when a message is larger than any before it.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `message` into the outgoing message buffer. Only encoding needs `Serialize`: a sender
/// may write a borrowed message (`&M` encodes as `M` does), which a retry can send again.
pub(crate) fn encode<M: Serialize + ?Sized>(message: &M) -> Result<(), EncodeError> {
    SCRATCH.with(|scratch| {
        let mut buffer = scratch.borrow_mut();
        buffer.clear();
        bincode::serialize_into(&mut *buffer, message)?;
        super::host::write_data(&buffer);
        Ok(())
    })
}

impl<M: Serialize + DeserializeOwned> CanSerialize<M> for Wire {
    fn encode(message: &M) -> Result<(), EncodeError> {
        encode(message)
    }

    fn decode() -> Result<M, DecodeError> {
        // Most messages are small: one `read_data` into a stack buffer takes them whole. Only when
        // it comes back full is the size asked for and the rest read.
        let mut small = [0u8; SMALL];
        let read = super::host::read_data(&mut small);
        if read < SMALL {
            return Ok(bincode::deserialize(&small[..read])?);
        }
        SCRATCH.with(|scratch| {
            let mut buffer = scratch.borrow_mut();
            let size = super::host::data_size();
            buffer.clear();
            buffer.extend_from_slice(&small);
            buffer.resize(size.max(SMALL), 0);
            let rest = super::host::read_data(&mut buffer[SMALL..]);
            Ok(bincode::deserialize(&buffer[..SMALL + rest])?)
        })
    }
}

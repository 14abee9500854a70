//! How swarm encodes messages on the local mailbox path: bincode, written to and read from the
//! Lunatic message buffer in one host call each.
//!
//! Lunatic's own `Bincode` serializer streams through `Read`/`Write` on the message buffer, and
//! bincode writes every field separately: each `u64` of a message is a host call. `Wire` encodes
//! into a per-process scratch buffer and hands it over with one `write_data`; decoding reads the
//! whole message with one `read_data` and decodes from the slice. The bytes are the same bincode.

use std::cell::RefCell;

use lunatic::host::api::message;
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

impl<M: Serialize + DeserializeOwned> CanSerialize<M> for Wire {
    fn encode(message: &M) -> Result<(), EncodeError> {
        SCRATCH.with(|scratch| {
            let mut buffer = scratch.borrow_mut();
            buffer.clear();
            bincode::serialize_into(&mut *buffer, message)?;
            // SAFETY: the buffer is valid for its length during the call; the host copies it.
            unsafe { message::write_data(buffer.as_ptr(), buffer.len()) };
            Ok(())
        })
    }

    fn decode() -> Result<M, DecodeError> {
        // Most messages are small: one `read_data` into a stack buffer takes them whole. Only when
        // it comes back full is the size asked for and the rest read.
        let mut small = [0u8; SMALL];
        // SAFETY: the buffer has room for `SMALL` bytes.
        let read = unsafe { message::read_data(small.as_mut_ptr(), SMALL) };
        if read < SMALL {
            return Ok(bincode::deserialize(&small[..read])?);
        }
        SCRATCH.with(|scratch| {
            let mut buffer = scratch.borrow_mut();
            // SAFETY: a plain query of the message in the scratch area.
            let size = unsafe { message::data_size() } as usize;
            buffer.clear();
            buffer.extend_from_slice(&small);
            buffer.resize(size.max(SMALL), 0);
            // SAFETY: the buffer has room for the rest of the message.
            let rest = unsafe {
                message::read_data(buffer[SMALL..].as_mut_ptr(), size.saturating_sub(SMALL))
            };
            Ok(bincode::deserialize(&buffer[..SMALL + rest])?)
        })
    }
}

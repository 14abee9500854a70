//! Size limits of the protocol and the client-side `max_payload` check.
//!
//! The server disconnects a client that publishes more than its `max_payload` (`-ERR 'Maximum
//! Payload Violation'`, a fatal error), so the size must be checked before encoding, as ADR-40
//! recommends. The server counts headers plus payload, hence the helper takes the total.

/// The server's default `max_payload` (1 MiB); the real value comes in INFO.
pub const DEFAULT_MAX_PAYLOAD: u64 = 1024 * 1024;

/// The server's default `max_control_line` (`MAX_CONTROL_LINE_SIZE` in `server/const.go`).
/// A longer client control line (`PUB <subject> <reply> <len>`) makes the server close the
/// connection, so the encoders refuse it. The server does not advertise a custom value, so the
/// default is the only safe assumption.
pub const MAX_CLIENT_CONTROL_LINE: usize = 4096;

/// A message is larger than the server accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error,
)]
#[error("message of {size} bytes (headers + payload) exceeds the server's max_payload of {max_payload} bytes")]
pub struct PayloadTooLarge {
    /// Bytes the message would put on the wire: header block plus payload.
    pub size: u64,
    /// The server's `max_payload` from INFO.
    pub max_payload: u64,
}

/// Checks that a message of `size` bytes (header block from
/// [`Headers::wire_len`](super::Headers::wire_len) plus payload) fits the server's `max_payload`.
pub fn check_payload_size(size: usize, max_payload: u64) -> Result<(), PayloadTooLarge> {
    // usize is at most 64 bits on every supported target, so this cannot truncate.
    let size = size as u64;
    if size > max_payload {
        return Err(PayloadTooLarge { size, max_payload });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_check_names_both_sizes() {
        assert_eq!(check_payload_size(1024, 1024), Ok(()));
        assert_eq!(check_payload_size(0, 0), Ok(()));
        let err = check_payload_size(2_000_000, DEFAULT_MAX_PAYLOAD).unwrap_err();
        assert_eq!(
            err,
            PayloadTooLarge {
                size: 2_000_000,
                max_payload: 1_048_576
            }
        );
        assert_eq!(
            err.to_string(),
            "message of 2000000 bytes (headers + payload) exceeds the server's max_payload of 1048576 bytes"
        );
    }
}

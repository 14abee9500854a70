//! Request ids: what makes a retried call safe. A caller that may send the same call twice (it
//! timed out and does not know whether the first one ran) names it with an id in the NATS header
//! [`HEADER`]; the agent remembers the ids of the calls it applied, with their answers, and
//! answers a repeated id with the first answer instead of running the handler again.
//!
//! Agents compare ids by digest ([`RequestDigest`]: SHA-256 of the handler's name and the id,
//! cut to 128 bits): fixed-size, so that the reply address that carries it stays plain data, and
//! collision-resistant, so that no caller can craft an id that passes for another caller's call
//! and receive its answer.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The NATS header that carries a call's id.
pub const HEADER: &str = "Swarm-Request-Id";
/// The longest id accepted, in bytes.
pub const MAX_LEN: usize = 128;

/// A request id's digest, as agents keep and compare it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestDigest(pub(crate) u128);

impl fmt::Debug for RequestDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestDigest({:032x})", self.0)
    }
}

impl RequestDigest {
    /// The digest of `id` for a call of `handler`; an error that says what is wrong with `id`
    /// when it is empty, too long, or not visible ASCII.
    pub fn of(handler: &str, id: &str) -> Result<RequestDigest, String> {
        if id.is_empty() || id.len() > MAX_LEN {
            return Err(format!(
                "a {HEADER} has 1 to {MAX_LEN} bytes; this one has {}",
                id.len()
            ));
        }
        if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "a {HEADER} is visible ASCII (no spaces); this one has {bad:?}"
            ));
        }
        let mut hash = Sha256::new();
        hash.update(handler.as_bytes());
        hash.update([0]);
        hash.update(id.as_bytes());
        let bytes: [u8; 32] = hash.finalize().into();
        let mut first = [0u8; 16];
        first.copy_from_slice(&bytes[..16]);
        Ok(RequestDigest(u128::from_be_bytes(first)))
    }

    /// Its text in a record (32 hex digits).
    // Records hold them on Lunatic (wasm32) only.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Back from [`RequestDigest::to_hex`].
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn from_hex(text: &str) -> Option<RequestDigest> {
        (text.len() == 32)
            .then(|| u128::from_str_radix(text, 16).ok())
            .flatten()
            .map(RequestDigest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_id_and_handler_give_the_same_digest_and_others_do_not() {
        let a = RequestDigest::of("post", "abc").unwrap();
        assert_eq!(a, RequestDigest::of("post", "abc").unwrap());
        assert_ne!(a, RequestDigest::of("join", "abc").unwrap());
        assert_ne!(a, RequestDigest::of("post", "abd").unwrap());
        assert_eq!(RequestDigest::from_hex(&a.to_hex()), Some(a));
        assert_eq!(RequestDigest::from_hex("xyz"), None);
    }

    #[test]
    fn ids_that_are_not_visible_ascii_or_too_long_are_refused() {
        assert!(RequestDigest::of("post", "").is_err());
        assert!(RequestDigest::of("post", "a b")
            .unwrap_err()
            .contains("visible ASCII"));
        assert!(RequestDigest::of("post", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(RequestDigest::of("post", &"x".repeat(MAX_LEN)).is_ok());
    }
}

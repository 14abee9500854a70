//! Agent keys: the identity of one instance of an agent kind.
//!
//! A key becomes a NATS subject token (`<ns>.<kind>.<key>.<handler>`) and part of a storage key
//! (`<kind>/<key>`), so it is restricted to a charset that is safe in both: ASCII letters, digits,
//! `_` and `-`, 1 to [`MAX_KEY_LEN`] bytes. Anything else is refused with an error that names the
//! offending character and where it is, never escaped or truncated behind the user's back.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest key accepted, in bytes. Long enough for UUIDs and hashes, short enough to stay a
/// comfortable file name and subject token.
pub const MAX_KEY_LEN: usize = 128;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KeyError {
    /// The key is the empty string.
    #[error("invalid key for agent kind `{kind}`: a key cannot be empty")]
    Empty {
        /// The agent kind the key was meant for.
        kind: String,
    },
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("invalid key for agent kind `{kind}`: it is {len} bytes long, the limit is {max}")]
    TooLong {
        /// The agent kind the key was meant for.
        kind: String,
        /// Length of the refused key in bytes.
        len: usize,
        /// The limit, [`MAX_KEY_LEN`].
        max: usize,
    },
    /// The key holds a character outside `A-Z a-z 0-9 _ -`.
    #[error(
        "invalid key {key:?} for agent kind `{kind}`: character {character:?} at byte {position} \
         is not allowed (keys use only A-Z a-z 0-9 _ -, so they are safe as NATS subject tokens \
         and storage keys)"
    )]
    BadCharacter {
        /// The agent kind the key was meant for.
        kind: String,
        /// The refused key.
        key: String,
        /// The first character that is not allowed.
        character: char,
        /// Its byte offset in the key.
        position: usize,
    },
    /// The key's text does not parse as the agent's key type (for example `"x1"` for a `u64` key).
    #[error("invalid key {key:?} for agent kind `{kind}`: {reason}")]
    Unparsable {
        /// The agent kind the key was meant for.
        kind: String,
        /// The refused key.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Checks that `key` is a valid key for agents of `kind`.
pub fn validate_key(kind: &str, key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty {
            kind: kind.to_owned(),
        });
    }
    if let Some((position, character)) = key.char_indices().find(|(_, c)| !is_key_char(*c)) {
        return Err(KeyError::BadCharacter {
            kind: kind.to_owned(),
            key: key.to_owned(),
            character,
            position,
        });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong {
            kind: kind.to_owned(),
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Whether `c` may appear in a key (and in an agent kind name).
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A type that can be an agent's `#[key]` field: it has one canonical text form that passes
/// [`validate_key`], and parses back from it.
///
/// Implemented for `String` and the integer types. Implement it for your own key types (an
/// enum of regions, a UUID newtype) by giving their canonical text.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an agent's #[key]",
    label = "not a key type",
    note = "use `String` or an integer type, or implement `swarm::AgentKey` for it (a canonical text of A-Z a-z 0-9 _ -)"
)]
pub trait AgentKey: Clone + fmt::Debug + Serialize + for<'de> Deserialize<'de> + 'static {
    /// The canonical text of this key (not yet validated).
    fn to_key_string(&self) -> String;
    /// Parses the canonical text back into a key.
    fn parse_key(text: &str) -> Result<Self, String>;
}

impl AgentKey for String {
    fn to_key_string(&self) -> String {
        self.clone()
    }
    fn parse_key(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

/// The key type of agents without a `#[key]` field; its text is empty and never validated.
impl AgentKey for () {
    fn to_key_string(&self) -> String {
        String::new()
    }
    fn parse_key(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(())
        } else {
            Err("this agent kind has no #[key]".into())
        }
    }
}

macro_rules! integer_keys {
    ($($int:ty),*) => {$(
        impl AgentKey for $int {
            fn to_key_string(&self) -> String {
                self.to_string()
            }
            fn parse_key(text: &str) -> Result<Self, String> {
                text.parse().map_err(|err| format!("not a valid {}: {err}", stringify!($int)))
            }
        }
    )*};
}
integer_keys!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

/// Turns a key value into its validated text form for agents of `kind`.
pub fn key_text<K: AgentKey>(kind: &str, key: &K) -> Result<String, KeyError> {
    let text = key.to_key_string();
    validate_key(kind, &text)?;
    Ok(text)
}

/// Parses validated key text back into the key type for agents of `kind`.
pub fn parse_key_text<K: AgentKey>(kind: &str, text: &str) -> Result<K, KeyError> {
    validate_key(kind, text)?;
    K::parse_key(text).map_err(|reason| KeyError::Unparsable {
        kind: kind.to_owned(),
        key: text.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for key in ["lobby", "room-7", "A_b-C", "0", &"x".repeat(MAX_KEY_LEN)] {
            assert_eq!(validate_key("chat-room", key), Ok(()), "{key}");
        }
    }

    #[test]
    fn names_the_bad_character_and_its_position() {
        let err = validate_key("chat-room", "lo bby").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid key \"lo bby\" for agent kind `chat-room`: character ' ' at byte 2 is not \
             allowed (keys use only A-Z a-z 0-9 _ -, so they are safe as NATS subject tokens and \
             storage keys)"
        );
        for (key, bad, at) in [
            ("a.b", '.', 1),
            ("a*", '*', 1),
            ("a>", '>', 1),
            ("x\r\n", '\r', 1),
            ("../etc", '.', 0),
            ("a/b", '/', 1),
            ("é", 'é', 0),
        ] {
            match validate_key("k", key) {
                Err(KeyError::BadCharacter {
                    character,
                    position,
                    ..
                }) => {
                    assert_eq!((character, position), (bad, at), "{key:?}")
                }
                other => panic!("{key:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_empty_and_long_keys() {
        assert!(matches!(validate_key("k", ""), Err(KeyError::Empty { .. })));
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            validate_key("k", &long),
            Err(KeyError::TooLong {
                kind: "k".into(),
                len: MAX_KEY_LEN + 1,
                max: MAX_KEY_LEN
            })
        );
    }

    #[test]
    fn integer_keys_round_trip_and_negative_ones_are_valid() {
        assert_eq!(key_text("k", &42u64).unwrap(), "42");
        assert_eq!(key_text("k", &-7i32).unwrap(), "-7");
        assert_eq!(parse_key_text::<i32>("k", "-7").unwrap(), -7);
        assert!(matches!(
            parse_key_text::<u64>("k", "x1"),
            Err(KeyError::Unparsable { .. })
        ));
    }
}

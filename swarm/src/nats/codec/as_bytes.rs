//! `#[serde(with = "as_bytes")]` for `Vec<u8>` fields that cross between processes.
//!
//! serde writes a plain `Vec<u8>` as a sequence, one call per byte, and bincode then encodes and
//! decodes it byte by byte (measured under Lunatic: about 8 ns a byte each way, more than the
//! rest of a small message costs). As bytes it is one length and one copy. The encoded form is
//! the same (bincode: a length, then the bytes; JSON: an array of numbers), so nothing that reads
//! these values changes.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `bytes` in one piece.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Reads bytes in one piece (or, from a self-describing format, an array of numbers).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Plain(Vec<u8>);

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Fast(#[serde(with = "super")] Vec<u8>);

    #[test]
    fn encodes_as_a_plain_vec_does_in_bincode_and_json() {
        for bytes in [vec![], vec![0, 1, 255], (0..=255).collect::<Vec<u8>>()] {
            let plain = Plain(bytes.clone());
            let fast = Fast(bytes);
            let bin = bincode::serialize(&fast).unwrap();
            assert_eq!(bin, bincode::serialize(&plain).unwrap());
            assert_eq!(bincode::deserialize::<Fast>(&bin).unwrap(), fast);
            let json = serde_json::to_string(&fast).unwrap();
            assert_eq!(json, serde_json::to_string(&plain).unwrap());
            assert_eq!(serde_json::from_str::<Fast>(&json).unwrap(), fast);
        }
    }
}

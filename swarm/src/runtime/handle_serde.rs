//! How every generated `<Agent>Ref` is written and read by serde: as a newtype struct around its
//! [`AgentRef`], exactly what `#[derive(Serialize, Deserialize)]` on the handle would produce.
//!
//! The handle is declared by `#[agent]` on the struct (which knows the struct's visibility) but
//! gets its trait impls from `#[agent]` on the impl block (which makes the type an [`Agent`]);
//! a derive would put them on the declaration, where a missing impl block would make each of
//! them fail on its own. Written once here instead of being generated into every agent.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use super::agent::Agent;
use super::handle::{AgentHandle, AgentRef};

/// `Serialize` for the handle `handle`, named `name` (its type's name).
pub fn serialize_handle<H, S>(
    handle: &H,
    name: &'static str,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    H: AgentHandle,
    H::Agent: Agent,
    S: Serializer,
{
    serializer.serialize_newtype_struct(name, handle.raw())
}

/// `Deserialize` for the handle type `H`, named `name` (its type's name).
pub fn deserialize_handle<'de, H, D>(deserializer: D, name: &'static str) -> Result<H, D::Error>
where
    H: AgentHandle,
    H::Agent: Agent,
    D: Deserializer<'de>,
{
    deserializer.deserialize_newtype_struct(
        name,
        HandleVisitor::<H> {
            name,
            handle: PhantomData,
        },
    )
}

struct HandleVisitor<H> {
    name: &'static str,
    handle: PhantomData<fn() -> H>,
}

impl<'de, H> Visitor<'de> for HandleVisitor<H>
where
    H: AgentHandle,
    H::Agent: Agent,
{
    type Value = H;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "tuple struct {}", self.name)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<H, D::Error> {
        AgentRef::deserialize(deserializer).map(H::from_raw)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<H, A::Error> {
        match seq.next_element::<AgentRef<H::Agent>>()? {
            Some(raw) => Ok(H::from_raw(raw)),
            None => Err(de::Error::invalid_length(0, &self)),
        }
    }
}

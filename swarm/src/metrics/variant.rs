//! Which handler a message is for, without help from the macros: the message enum `#[agent]`
//! generates has one variant per handler, in the order of `AgentBehavior::HANDLERS`, so the
//! variant's index (which serde passes to a serializer before any field) names the handler. A
//! serializer that stops at that first call costs one function call, and nothing is encoded.

use serde::ser::{self, Impossible, Serialize};

/// The index of `message`'s enum variant; `None` if it is not an enum.
pub fn variant_index<M: Serialize>(message: &M) -> Option<usize> {
    match message.serialize(VariantOnly) {
        Err(Stop(index)) => index,
        Ok(()) => None,
    }
}

/// The "error" that carries the index out.
#[derive(Debug)]
struct Stop(Option<usize>);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "variant {:?}", self.0)
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop(None)
    }
}

struct VariantOnly;

macro_rules! not_an_enum {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> { Err(Stop(None)) })*
    };
}

impl ser::Serializer for VariantOnly {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Impossible<(), Stop>;
    type SerializeStruct = Impossible<(), Stop>;
    type SerializeStructVariant = Impossible<(), Stop>;

    not_an_enum! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Stop> {
        Err(Stop(None))
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), Stop> {
        Err(Stop(Some(index as usize)))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop(None))
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop(Some(index as usize)))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(Stop(None))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(Stop(None))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(Stop(None))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(Stop(Some(index as usize)))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop(None))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(Stop(None))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(Stop(Some(index as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::variant_index;

    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum Msg {
        Post { author: String, text: String },
        Join { who: String },
        History {},
        Unit,
        Tuple(u8, u8),
    }

    #[test]
    fn the_variant_index_names_the_handler() {
        let post = Msg::Post {
            author: "a".into(),
            text: "b".into(),
        };
        assert_eq!(variant_index(&post), Some(0));
        assert_eq!(variant_index(&Msg::Join { who: "x".into() }), Some(1));
        assert_eq!(variant_index(&Msg::History {}), Some(2));
        assert_eq!(variant_index(&Msg::Unit), Some(3));
        assert_eq!(variant_index(&Msg::Tuple(1, 2)), Some(4));
        assert_eq!(variant_index(&7u8), None);
    }
}

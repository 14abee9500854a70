//! Attribute parsing: the options of `#[agent(..)]` and the marker attributes inside an agent
//! (`#[key]`, `#[persist]`, `#[handler]`, `#[on_start]`, `#[on_stop]`), as plain data.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{Attribute, LitStr, Meta};

use crate::ctxt::Ctxt;

/// Options of `#[agent(..)]` on a struct.
#[derive(Debug, Default)]
pub(crate) struct StructOptions {
    /// `kind = "chat-room"`, with the literal's span for errors.
    pub(crate) kind: Option<(String, Span)>,
    /// `passivate_after = "30s"`, in milliseconds, with the literal's span for errors.
    pub(crate) passivate_after: Option<(u64, Span)>,
    /// `message_budget = "2s"`, in milliseconds, with the literal's span for errors.
    pub(crate) message_budget: Option<(u64, Span)>,
    /// `max_memory = "64MiB"`, in bytes, with the literal's span for errors.
    pub(crate) max_memory: Option<(u64, Span)>,
    /// `mailbox = 1000`, with the literal's span for errors.
    pub(crate) mailbox: Option<(u64, Span)>,
    /// `persistence = "write_behind"`, with the literal's span for errors.
    pub(crate) persistence: Option<(Persistence, Span)>,
    /// `save_every = "200ms"`, in milliseconds, with the literal's span for errors.
    pub(crate) save_every: Option<(u64, Span)>,
    /// Set when an option did not parse: the ones after it were not read, so a check that an
    /// option is missing would report a mistake the user did not make.
    pub(crate) incomplete: bool,
}

/// A persistence strategy, as `persistence = ".."` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// `"write_through"`: saved before the reply (the default).
    WriteThrough,
    /// `"write_behind"`: answered first, saved every `save_every`.
    WriteBehind,
}

impl Persistence {
    const ALL: [(&'static str, Persistence); 2] = [
        ("write_through", Persistence::WriteThrough),
        ("write_behind", Persistence::WriteBehind),
    ];

    fn parse(text: &str) -> Result<Persistence, String> {
        Persistence::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, strategy)| *strategy)
            .ok_or_else(|| {
                format!(
                    "unknown persistence strategy {text:?}: write \"write_through\" (the default: \
                     saved before the caller is answered) or \"write_behind\" (answered first, \
                     saved every `save_every`)"
                )
            })
    }
}

/// Parses the options of `#[agent(..)]` on a struct.
pub(crate) fn parse_struct_options(cx: &mut Ctxt, args: TokenStream) -> StructOptions {
    let mut options = StructOptions::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("kind") {
            let value: LitStr = meta.value()?.parse()?;
            if options.kind.is_some() {
                return Err(meta.error("`kind` is given twice"));
            }
            options.kind = Some((value.value(), value.span()));
            Ok(())
        } else if meta.path.is_ident("mailbox") {
            let value: syn::LitInt = meta.value()?.parse()?;
            if options.mailbox.is_some() {
                return Err(meta.error("`mailbox` is given twice"));
            }
            let bound = value.base10_parse::<u64>().map_err(|_| {
                syn::Error::new(
                    value.span(),
                    "`mailbox` is how many messages may wait, a whole number such as 1000",
                )
            })?;
            options.mailbox = Some((bound, value.span()));
            Ok(())
        } else if meta.path.is_ident("persistence") {
            let value: LitStr = meta.value()?.parse()?;
            if options.persistence.is_some() {
                return Err(meta.error("`persistence` is given twice"));
            }
            let strategy = Persistence::parse(&value.value())
                .map_err(|why| syn::Error::new(value.span(), why))?;
            options.persistence = Some((strategy, value.span()));
            Ok(())
        } else if let Some((name, slot, read)) = [
            (
                "passivate_after",
                &mut options.passivate_after,
                duration_millis as fn(&str) -> _,
            ),
            (
                "message_budget",
                &mut options.message_budget,
                duration_millis,
            ),
            ("max_memory", &mut options.max_memory, size_bytes),
            ("save_every", &mut options.save_every, duration_millis),
        ]
        .into_iter()
        .find(|(name, _, _)| meta.path.is_ident(name))
        {
            let value: LitStr = meta.value()?.parse()?;
            if slot.is_some() {
                return Err(meta.error(format!("`{name}` is given twice")));
            }
            let amount = read(&value.value()).map_err(|why| syn::Error::new(value.span(), why))?;
            *slot = Some((amount, value.span()));
            Ok(())
        } else {
            let name = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_else(|| "this".into());
            Err(meta.error(format!(
                "unknown option `{name}` for #[agent] on a struct; its options are `kind = \"...\"`, \
                 `passivate_after = \"30s\"`, `message_budget = \"2s\"`, `max_memory = \"64MiB\"`, \
                 `mailbox = 1000`, `persistence = \"write_behind\"` and `save_every = \"200ms\"`"
            )))
        }
    });
    if let Err(err) = parser.parse2(args) {
        cx.push(err);
        options.incomplete = true;
    }
    options
}

/// The milliseconds of a duration written as a number and a unit: `"500ms"`, `"30s"`, `"5m"`,
/// `"1h"`.
fn duration_millis(text: &str) -> Result<u64, String> {
    amount(
        text,
        &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)],
        "a duration",
        "\"500ms\", \"30s\", \"5m\" or \"1h\"",
    )
}

/// The bytes of a size written as a number and a binary unit: `"512KiB"`, `"64MiB"`, `"1GiB"`.
fn size_bytes(text: &str) -> Result<u64, String> {
    amount(
        text,
        &[("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)],
        "a size",
        "\"512KiB\", \"64MiB\" or \"1GiB\"",
    )
}

/// A whole number followed by one of `units` (each with its worth), as that many of the base
/// unit; `what` and `examples` word the error.
fn amount(text: &str, units: &[(&str, u64)], what: &str, examples: &str) -> Result<u64, String> {
    let explain =
        || format!("{text:?} is not {what}: write a whole number and a unit, such as {examples}");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&at| at > 0)
        .ok_or_else(explain)?;
    let (number, unit) = text.split_at(split);
    let (_, worth) = units
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(explain)?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*worth))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Options of `#[agent(..)]` on an impl block.
#[derive(Debug, Default)]
pub(crate) struct ImplOptions {
    /// `schema`: publish the JSON Schemas of the handlers (see `expand::schema`).
    pub(crate) schema: bool,
}

/// Parses the options of `#[agent(..)]` on an impl block: only `schema`, which is about the
/// handlers' types; everything about the agent itself goes on the struct.
pub(crate) fn parse_impl_options(cx: &mut Ctxt, args: TokenStream) -> ImplOptions {
    let mut options = ImplOptions::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("schema") {
            options.schema = true;
            return Ok(());
        }
        Err(meta.error(
            "#[agent] on an impl block takes only `schema` (publish the handlers' JSON Schemas); \
             put `kind = \"...\"` and the agent's other options on the struct's #[agent]",
        ))
    });
    if let Err(err) = parser.parse2(args) {
        cx.push(err);
    }
    options
}

/// The marker attributes swarm reads inside an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Key,
    Persist,
    Handler,
    OnStart,
    OnStop,
}

impl Marker {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Marker::Key => "key",
            Marker::Persist => "persist",
            Marker::Handler => "handler",
            Marker::OnStart => "on_start",
            Marker::OnStop => "on_stop",
        }
    }

    fn of(attr: &Attribute) -> Option<Marker> {
        let path = attr.path();
        // `#[handler]` and `#[swarm::handler]` are the same marker.
        let last = path.segments.last()?.ident.to_string();
        let is_ours =
            path.segments.len() == 1 || path.segments.first().is_some_and(|s| s.ident == "swarm");
        if !is_ours {
            return None;
        }
        [
            Marker::Key,
            Marker::Persist,
            Marker::Handler,
            Marker::OnStart,
            Marker::OnStop,
        ]
        .into_iter()
        .find(|m| m.name() == last)
    }
}

/// Removes swarm's marker attributes from `attrs` and returns them, each with the attribute for
/// error spans. A marker given options (`#[persist(x)]`) is an error: none take any.
pub(crate) fn take_markers(cx: &mut Ctxt, attrs: &mut Vec<Attribute>) -> Vec<(Marker, Attribute)> {
    let mut markers = Vec::new();
    attrs.retain(|attr| match Marker::of(attr) {
        Some(marker) => {
            if !matches!(attr.meta, Meta::Path(_)) {
                cx.error_at(attr, format!("#[{}] takes no options", marker.name()));
            }
            markers.push((marker, attr.clone()));
            false
        }
        None => true,
    });
    markers
}

#[cfg(test)]
mod tests {
    use super::{duration_millis, size_bytes, Persistence};

    #[test]
    fn persistence_strategies_are_named_exactly() {
        assert_eq!(Persistence::parse("write_through"), Ok(Persistence::WriteThrough));
        assert_eq!(Persistence::parse("write_behind"), Ok(Persistence::WriteBehind));
        for bad in [
            "",
            "write-behind",
            "WriteBehind",
            "write_behind ",
            "batched",
        ] {
            let err = Persistence::parse(bad).unwrap_err();
            assert!(err.contains("\"write_behind\""), "{bad:?}: {err}");
        }
    }

    #[test]
    fn durations_have_a_number_and_a_unit() {
        assert_eq!(duration_millis("500ms"), Ok(500));
        assert_eq!(duration_millis("30s"), Ok(30_000));
        assert_eq!(duration_millis("5m"), Ok(300_000));
        assert_eq!(duration_millis("1h"), Ok(3_600_000));
        assert_eq!(duration_millis("0s"), Ok(0));
        for bad in ["", "30", "s", "1.5s", "30 s", "30sec", "-1s"] {
            assert!(duration_millis(bad).is_err(), "{bad:?}");
        }
        assert!(duration_millis("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes_have_a_number_and_a_binary_unit() {
        assert_eq!(size_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(size_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(size_bytes("1GiB"), Ok(1 << 30));
        for bad in ["", "64", "MiB", "64MB", "64 MiB", "1.5GiB", "64mib"] {
            assert!(size_bytes(bad).is_err(), "{bad:?}");
        }
    }
}

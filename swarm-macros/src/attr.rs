//! Attribute parsing: the options of `#[agent(..)]` and the marker attributes inside an agent
//! (`#[key]`, `#[persist]`, `#[handler]`, `#[on_start]`, `#[on_stop]`), as plain data.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Meta};

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
    /// `state_version = 3`, with the literal's span for errors.
    pub(crate) state_version: Option<(u64, Span)>,
    /// Set when an option was refused (or a syntax error stopped the reading): its value is not
    /// in the model, so a check that an option is missing, or that one needs another, would
    /// report a mistake the user did not make.
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

/// The options of `#[agent(..)]` on a struct, for "unknown option" errors.
const STRUCT_OPTIONS: &str = "`kind = \"...\"`, `passivate_after = \"30s\"`, \
     `message_budget = \"2s\"`, `max_memory = \"64MiB\"`, `mailbox = 1000`, \
     `persistence = \"write_behind\"`, `save_every = \"200ms\"` and `state_version = 2`";

/// Parses the options of `#[agent(..)]` on a struct.
///
/// Each option's value is read whole (as an expression) before it is checked, so that a mistake
/// in one option leaves the next ones to read: every mistake is reported in one compile. Only a
/// syntax error (a missing `=`, a stray token) stops the reading.
pub(crate) fn parse_struct_options(cx: &mut Ctxt, args: TokenStream) -> StructOptions {
    let mut options = StructOptions::default();
    let mut problems = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_else(|| "this".into());
        let durations = ["passivate_after", "message_budget", "save_every"];
        let known = [
            "kind",
            "mailbox",
            "persistence",
            "max_memory",
            "state_version",
        ]
        .contains(&name.as_str())
            || durations.contains(&name.as_str());
        if !known {
            // At the name (made before the value is read, which the span would take in), then
            // skip its value, if it has one, and go on with the next option.
            problems.push(meta.error(format!(
                "unknown option `{name}` for #[agent] on a struct; its options are {STRUCT_OPTIONS}"
            )));
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::TokenTree>()?;
            }
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        let given_twice = match name.as_str() {
            "kind" => options.kind.is_some(),
            "mailbox" => options.mailbox.is_some(),
            "persistence" => options.persistence.is_some(),
            "passivate_after" => options.passivate_after.is_some(),
            "message_budget" => options.message_budget.is_some(),
            "max_memory" => options.max_memory.is_some(),
            "state_version" => options.state_version.is_some(),
            _ => options.save_every.is_some(),
        };
        if given_twice {
            problems.push(meta.error(format!("`{name}` is given twice")));
            return Ok(());
        }
        if let Err(problem) = read_struct_option(&mut options, &name, &value) {
            problems.push(problem);
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(args) {
        problems.push(err);
    }
    options.incomplete = !problems.is_empty();
    for problem in problems {
        cx.push(problem);
    }
    options
}

/// Reads the value of the struct option `name` (known, given once) into `options`.
fn read_struct_option(options: &mut StructOptions, name: &str, value: &Expr) -> syn::Result<()> {
    match name {
        "kind" => {
            let text = string(name, value, "\"chat-room\"")?;
            options.kind = Some((text.value(), text.span()));
        }
        "mailbox" => {
            let bound = match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(int), ..
                }) => int.base10_parse::<u64>().ok().map(|n| (n, int.span())),
                _ => None,
            };
            options.mailbox = Some(bound.ok_or_else(|| {
                syn::Error::new_spanned(
                    value,
                    "`mailbox` is how many messages may wait, a whole number such as 1000",
                )
            })?);
        }
        "state_version" => {
            let version = match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(int), ..
                }) => int.base10_parse::<u64>().ok().map(|n| (n, int.span())),
                _ => None,
            };
            options.state_version = Some(version.ok_or_else(|| {
                syn::Error::new_spanned(
                    value,
                    "`state_version` is the version of the #[persist] fields, a whole number such \
                     as 2 (1 when not given)",
                )
            })?);
        }
        "persistence" => {
            let text = string(name, value, "\"write_behind\"")?;
            let strategy = Persistence::parse(&text.value())
                .map_err(|why| syn::Error::new(text.span(), why))?;
            options.persistence = Some((strategy, text.span()));
        }
        "max_memory" => {
            let text = string(name, value, "\"64MiB\"")?;
            let bytes =
                size_bytes(&text.value()).map_err(|why| syn::Error::new(text.span(), why))?;
            options.max_memory = Some((bytes, text.span()));
        }
        _ => {
            let text = string(name, value, "\"30s\"")?;
            let millis =
                duration_millis(&text.value()).map_err(|why| syn::Error::new(text.span(), why))?;
            let slot = match name {
                "passivate_after" => &mut options.passivate_after,
                "message_budget" => &mut options.message_budget,
                _ => &mut options.save_every,
            };
            *slot = Some((millis, text.span()));
        }
    }
    Ok(())
}

/// The string literal an option takes, or an error at its value that shows how to write it (the
/// user's own word in quotes when they left the quotes out).
fn string(name: &str, value: &Expr, example: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Ok(text.clone()),
        other => {
            let example = match other {
                Expr::Path(path) => path
                    .path
                    .get_ident()
                    .map_or_else(|| example.to_owned(), |word| format!("\"{word}\"")),
                _ => example.to_owned(),
            };
            Err(syn::Error::new_spanned(
                other,
                format!("`{name}` takes a string: `{name} = {example}`"),
            ))
        }
    }
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
/// error spans. A marker given options (`#[persist(x)]`) is an error: only `#[handler(..)]` takes
/// any (read by [`handler_options`]).
pub(crate) fn take_markers(cx: &mut Ctxt, attrs: &mut Vec<Attribute>) -> Vec<(Marker, Attribute)> {
    let mut markers = Vec::new();
    attrs.retain(|attr| match Marker::of(attr) {
        Some(marker) => {
            let options_allowed = marker == Marker::Handler && matches!(attr.meta, Meta::List(_));
            if !matches!(attr.meta, Meta::Path(_)) && !options_allowed {
                cx.error_at(attr, format!("#[{}] takes no options", marker.name()));
            }
            markers.push((marker, attr.clone()));
            false
        }
        None => true,
    });
    markers
}

/// Options of `#[handler(..)]`.
#[derive(Debug, Default)]
pub(crate) struct HandlerOptions {
    /// `subject = "shop.orders.{key}.placed"`: the NATS subject pattern whose messages reach this
    /// handler, with the literal's span for errors.
    pub(crate) subject: Option<(String, Span)>,
    /// `stream = "ORDERS"`: the messages come from this JetStream stream (those on `subject`),
    /// through a durable consumer, acked once applied and saved.
    pub(crate) stream: Option<(String, Span)>,
}

/// Reads the options of a `#[handler(..)]` attribute (none for a bare `#[handler]`).
pub(crate) fn handler_options(cx: &mut Ctxt, attr: &Attribute) -> HandlerOptions {
    let mut options = HandlerOptions::default();
    let Meta::List(list) = &attr.meta else {
        return options;
    };
    let parsed = list.parse_nested_meta(|meta| {
        if meta.path.is_ident("stream") {
            let value: Expr = meta.value()?.parse()?;
            if options.stream.is_some() {
                return Err(syn::Error::new_spanned(
                    &value,
                    "`stream` is given twice: a handler consumes one stream",
                ));
            }
            let text = string("stream", &value, "\"ORDERS\"")?;
            options.stream = Some((text.value(), text.span()));
            return Ok(());
        }
        if !meta.path.is_ident("subject") {
            let name = meta
                .path
                .get_ident()
                .map_or_else(|| "this".to_owned(), ToString::to_string);
            return Err(meta.error(format!(
                "unknown option `{name}` for #[handler]; its options are \
                 `subject = \"orders.{{key}}.placed\"` (the NATS subject whose messages reach it) \
                 and `stream = \"ORDERS\"` (take them from that JetStream stream)"
            )));
        }
        let value: Expr = meta.value()?.parse()?;
        if options.subject.is_some() {
            return Err(syn::Error::new_spanned(
                &value,
                "`subject` is given twice: a handler listens on one subject pattern",
            ));
        }
        let text = string("subject", &value, "\"orders.{key}.placed\"")?;
        options.subject = Some((text.value(), text.span()));
        Ok(())
    });
    if let Err(err) = parsed {
        cx.push(err);
    }
    options
}

/// Removes `#[migrate(from = N)]` (or `#[swarm::migrate(..)]`) from a method's `attrs`: the
/// version it upgrades from, the literal's span, and the attribute for errors. `None` when the
/// method has none, or when the one it has does not parse (reported to `cx`).
pub(crate) fn take_migrate(
    cx: &mut Ctxt,
    attrs: &mut Vec<Attribute>,
) -> Option<(u64, Span, Attribute)> {
    let mut found: Option<(u64, Span, Attribute)> = None;
    let mut parsed_one = false;
    attrs.retain(|attr| {
        let path = attr.path();
        let ours = path.segments.last().is_some_and(|s| s.ident == "migrate")
            && (path.segments.len() == 1
                || path.segments.len() == 2 && path.segments[0].ident == "swarm");
        if !ours {
            return true;
        }
        if parsed_one {
            cx.error_at(
                attr,
                "a method is one #[migrate] step; this is a second #[migrate] on it",
            );
            return false;
        }
        parsed_one = true;
        match migrate_from(attr) {
            Ok((from, span)) => found = Some((from, span, attr.clone())),
            Err(err) => cx.push(err),
        }
        false
    });
    found
}

/// The `N` of `#[migrate(from = N)]`.
fn migrate_from(attr: &Attribute) -> syn::Result<(u64, Span)> {
    let usage =
        "write `#[migrate(from = 1)]`: the state version of the records this step upgrades \
                 (to the next version)";
    let Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(attr, usage));
    };
    let mut from = None;
    list.parse_nested_meta(|meta| {
        if !meta.path.is_ident("from") {
            return Err(meta.error(format!("unknown option for #[migrate]; {usage}")));
        }
        let value: Expr = meta.value()?.parse()?;
        if from.is_some() {
            return Err(syn::Error::new_spanned(&value, "`from` is given twice"));
        }
        match &value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => match int.base10_parse::<u64>() {
                Ok(n) => from = Some((n, int.span())),
                Err(_) => return Err(syn::Error::new_spanned(&value, usage)),
            },
            _ => return Err(syn::Error::new_spanned(&value, usage)),
        }
        Ok(())
    })?;
    from.ok_or_else(|| syn::Error::new_spanned(attr, usage))
}

#[cfg(test)]
mod tests {
    use super::{duration_millis, size_bytes, Persistence};

    #[test]
    fn persistence_strategies_are_named_exactly() {
        assert_eq!(
            Persistence::parse("write_through"),
            Ok(Persistence::WriteThrough)
        );
        assert_eq!(
            Persistence::parse("write_behind"),
            Ok(Persistence::WriteBehind)
        );
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

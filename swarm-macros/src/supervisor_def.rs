//! `supervisor! { .. }`: the model of a supervisor declaration, as the user wrote it. Parsing
//! only (words become enums and numbers here, once); whether the tree makes sense is
//! [`crate::valid::supervisor`]'s question.
//!
//! ```text
//! supervisor! {
//!     /// docs
//!     pub ChatService: one_for_one(max_restarts = 5, within_secs = 10) {
//!         lobby: ChatRoom("lobby"),          // a keyed agent
//!         helpers: pool(HelperBot, 4),       // 4 agents of a kind without a key
//!         rooms: RoomSupervisor,             // a nested supervisor (or an agent without a key)
//!         audit: transient AuditLog("main"), // restart policy: permanent (default), transient, temporary
//!     }
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, Attribute, Expr, Ident, LitInt, Path, Token, Visibility};

use crate::ctxt::Ctxt;

/// OTP's defaults: one restart within five seconds.
const DEFAULT_MAX_RESTARTS: u32 = 1;
const DEFAULT_WITHIN_SECS: u64 = 5;

/// Which children a supervisor restarts when one of them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// Every child.
    OneForAll,
    /// The failed child and those started after it.
    RestForOne,
}

impl Strategy {
    const ALL: [(&'static str, Strategy); 3] = [
        ("one_for_one", Strategy::OneForOne),
        ("one_for_all", Strategy::OneForAll),
        ("rest_for_one", Strategy::RestForOne),
    ];

    fn from_word(word: &Ident) -> Option<Strategy> {
        Self::ALL
            .into_iter()
            .find(|(name, _)| word == name)
            .map(|(_, strategy)| strategy)
    }
}

/// Whether a child is restarted after it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Always (the default).
    Permanent,
    /// Only after a failure, not after a normal exit.
    Transient,
    /// Never.
    Temporary,
}

impl Restart {
    const ALL: [(&'static str, Restart); 3] = [
        ("permanent", Restart::Permanent),
        ("transient", Restart::Transient),
        ("temporary", Restart::Temporary),
    ];

    fn from_word(word: &Ident) -> Option<Restart> {
        Self::ALL
            .into_iter()
            .find(|(name, _)| word == name)
            .map(|(_, restart)| restart)
    }
}

/// The model of a `supervisor!` declaration.
pub(crate) struct SupervisorDef {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    /// `None` when the word was not a strategy (reported while parsing): such a declaration only
    /// reaches the fallback, never the expansion.
    pub(crate) strategy: Option<Strategy>,
    pub(crate) max_restarts: u32,
    /// With the span of its literal (or of the strategy when not given), for errors.
    pub(crate) within_secs: (u64, Span),
    pub(crate) children: Vec<ChildDef>,
}

pub(crate) struct ChildDef {
    pub(crate) name: Ident,
    /// `None` when the word was not a restart policy (reported while parsing), as for
    /// [`SupervisorDef::strategy`].
    pub(crate) restart: Option<Restart>,
    pub(crate) kind: ChildDefKind,
}

pub(crate) enum ChildDefKind {
    /// `Agent(key)`.
    Keyed { ty: Path, key: Expr },
    /// `Agent` or `Supervisor`.
    Bare { ty: Path },
    /// `pool(Agent, n)`, with the literal for errors.
    Pool {
        ty: Path,
        size: usize,
        literal: LitInt,
    },
}

/// Parses a whole `supervisor!` input. A syntax error fails the whole declaration (there is no
/// model to stand in for it); an unknown word or a number out of range is pushed to `cx` and
/// the rest is still modelled.
pub(crate) fn parse(cx: &mut Ctxt, input: TokenStream) -> syn::Result<SupervisorDef> {
    let raw: RawSupervisor = syn::parse2(input)?;

    let strategy = Strategy::from_word(&raw.strategy);
    if strategy.is_none() {
        cx.error_at(
            &raw.strategy,
            format!(
                "unknown strategy `{}`; a supervisor is `one_for_one`, `one_for_all` or `rest_for_one`",
                raw.strategy
            ),
        );
    }

    let mut max_restarts: Option<u32> = None;
    let mut within_secs: Option<(u64, Span)> = None;
    for option in &raw.options {
        let key = option.key.to_string();
        let given_twice = match key.as_str() {
            "max_restarts" => max_restarts.is_some(),
            "within_secs" => within_secs.is_some(),
            _ => false,
        };
        if given_twice {
            cx.error_at(&option.key, format!("`{key}` is given twice"));
            continue;
        }
        match key.as_str() {
            "max_restarts" => match option.value.base10_parse::<u32>() {
                Ok(value) => max_restarts = Some(value),
                Err(_) => cx.error_at(&option.value, "`max_restarts` is a whole number of restarts"),
            },
            "within_secs" => match option.value.base10_parse::<u64>() {
                Ok(value) => within_secs = Some((value, option.value.span())),
                Err(_) => cx.error_at(&option.value, "`within_secs` is a whole number of seconds"),
            },
            _ => cx.error_at(
                &option.key,
                format!("unknown option `{key}`; a strategy takes `max_restarts = N` and `within_secs = T`"),
            ),
        }
    }

    let mut children = Vec::new();
    for child in raw.children {
        let restart = match &child.restart {
            None => Some(Restart::Permanent),
            Some(word) => {
                let restart = Restart::from_word(word);
                if restart.is_none() {
                    cx.error_at(
                        word,
                        format!("unknown restart policy `{word}`; use `permanent` (the default), `transient` or `temporary`"),
                    );
                }
                restart
            }
        };
        let kind = match child.kind {
            RawKind::Pool { ty, size } => match size.base10_parse::<usize>() {
                Ok(count) => ChildDefKind::Pool {
                    ty,
                    size: count,
                    literal: size,
                },
                Err(_) => {
                    cx.error_at(&size, "a pool's size is a whole number of members");
                    ChildDefKind::Pool {
                        ty,
                        size: 1,
                        literal: size,
                    }
                }
            },
            RawKind::Keyed { ty, key } => ChildDefKind::Keyed { ty, key },
            RawKind::Bare { ty } => ChildDefKind::Bare { ty },
        };
        children.push(ChildDef {
            name: child.name,
            restart,
            kind,
        });
    }

    Ok(SupervisorDef {
        attrs: raw.attrs,
        vis: raw.vis,
        strategy,
        max_restarts: max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
        within_secs: within_secs.unwrap_or((DEFAULT_WITHIN_SECS, raw.strategy.span())),
        name: raw.name,
        children,
    })
}

struct RawSupervisor {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    strategy: Ident,
    options: Punctuated<RawOption, Token![,]>,
    children: Punctuated<RawChild, Token![,]>,
}

struct RawOption {
    key: Ident,
    value: LitInt,
}

struct RawChild {
    name: Ident,
    restart: Option<Ident>,
    kind: RawKind,
}

enum RawKind {
    Keyed { ty: Path, key: Expr },
    Bare { ty: Path },
    Pool { ty: Path, size: LitInt },
}

impl Parse for RawSupervisor {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let strategy = input.parse()?;
        let options = if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            content.parse_terminated(RawOption::parse, Token![,])?
        } else {
            Punctuated::new()
        };
        let content;
        braced!(content in input);
        let children = content.parse_terminated(RawChild::parse, Token![,])?;
        if !input.is_empty() {
            return Err(
                input.error("one supervisor per `supervisor!`; nothing may follow its `{ .. }`")
            );
        }
        Ok(RawSupervisor {
            attrs,
            vis,
            name,
            strategy,
            options,
            children,
        })
    }
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = input.parse()?;
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(RawOption { key, value })
    }
}

impl Parse for RawChild {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        // An optional restart policy word, then the child: two words in a row mean the first is
        // the policy (`transient AuditLog("main")`).
        let restart = if input.peek(Ident) && input.peek2(Ident) {
            Some(input.parse()?)
        } else {
            None
        };
        let fork = input.fork();
        let first: Ident = fork.parse()?;
        if first == "pool" && fork.peek(syn::token::Paren) {
            input.parse::<Ident>()?;
            let content;
            parenthesized!(content in input);
            let ty = content.parse()?;
            content.parse::<Token![,]>()?;
            let size = content.parse()?;
            return Ok(RawChild {
                name,
                restart,
                kind: RawKind::Pool { ty, size },
            });
        }
        let ty: Path = input.parse()?;
        if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            let key = content.parse()?;
            Ok(RawChild {
                name,
                restart,
                kind: RawKind::Keyed { ty, key },
            })
        } else {
            Ok(RawChild {
                name,
                restart,
                kind: RawKind::Bare { ty },
            })
        }
    }
}

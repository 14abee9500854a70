//! `supervisor! { .. }`: the model of a supervisor declaration, parsed and validated.
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

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, Attribute, Expr, Ident, LitInt, Path, Token, Visibility};

use crate::ctxt::Ctxt;

/// OTP's defaults: one restart within five seconds.
const DEFAULT_MAX_RESTARTS: u32 = 1;
const DEFAULT_WITHIN_SECS: u64 = 5;

pub(crate) struct SupervisorDef {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) strategy: Ident,
    pub(crate) max_restarts: u32,
    pub(crate) within_secs: u64,
    pub(crate) children: Vec<ChildDef>,
}

pub(crate) struct ChildDef {
    pub(crate) name: Ident,
    /// `permanent`, `transient` or `temporary`.
    pub(crate) restart: Ident,
    pub(crate) kind: ChildDefKind,
}

pub(crate) enum ChildDefKind {
    /// `Agent(key)`.
    Keyed { ty: Path, key: Expr },
    /// `Agent` or `Supervisor`.
    Bare { ty: Path },
    /// `pool(Agent, n)`.
    Pool { ty: Path, size: usize },
}

/// Parses and validates a whole `supervisor!` input, reporting every mistake at its token.
pub(crate) fn parse(input: TokenStream) -> syn::Result<SupervisorDef> {
    let raw: RawSupervisor = syn::parse2(input)?;
    let mut cx = Ctxt::default();

    let strategy = raw.strategy.clone();
    if !["one_for_one", "one_for_all", "rest_for_one"].contains(&strategy.to_string().as_str()) {
        cx.error_at(
            &strategy,
            format!("unknown strategy `{strategy}`; a supervisor is `one_for_one`, `one_for_all` or `rest_for_one`"),
        );
    }
    let (mut max_restarts, mut within_secs) = (DEFAULT_MAX_RESTARTS, DEFAULT_WITHIN_SECS);
    let mut seen_options: HashMap<String, Span> = HashMap::new();
    for option in &raw.options {
        let key = option.key.to_string();
        if seen_options
            .insert(key.clone(), option.key.span())
            .is_some()
        {
            cx.error_at(&option.key, format!("`{key}` is given twice"));
        }
        match key.as_str() {
            "max_restarts" => match option.value.base10_parse::<u32>() {
                Ok(value) => max_restarts = value,
                Err(_) => cx.error_at(&option.value, "`max_restarts` is a whole number of restarts"),
            },
            "within_secs" => match option.value.base10_parse::<u64>() {
                Ok(0) => cx.error_at(&option.value, "`within_secs` must be at least 1"),
                Ok(value) => within_secs = value,
                Err(_) => cx.error_at(&option.value, "`within_secs` is a whole number of seconds"),
            },
            _ => cx.error_at(
                &option.key,
                format!("unknown option `{key}`; a strategy takes `max_restarts = N` and `within_secs = T`"),
            ),
        }
    }

    let mut names: HashSet<String> = HashSet::new();
    let mut children = Vec::new();
    for child in raw.children {
        let name = child.name.to_string();
        if !names.insert(name.clone()) {
            cx.error_at(
                &child.name,
                format!("two children are named `{name}`; each child needs its own name (its handle method is named after it)"),
            );
        }
        let restart = child
            .restart
            .unwrap_or_else(|| Ident::new("permanent", child.name.span()));
        if !["permanent", "transient", "temporary"].contains(&restart.to_string().as_str()) {
            cx.error_at(
                &restart,
                format!("unknown restart policy `{restart}`; use `permanent` (the default), `transient` or `temporary`"),
            );
        }
        let kind = match child.kind {
            RawKind::Pool { ty, size } => match size.base10_parse::<usize>() {
                Ok(0) => {
                    cx.error_at(
                        &size,
                        "a pool needs at least one member; `pool(Agent, 0)` would serve nobody",
                    );
                    ChildDefKind::Pool { ty, size: 1 }
                }
                Ok(size) => ChildDefKind::Pool { ty, size },
                Err(_) => {
                    cx.error_at(&size, "a pool's size is a whole number of members");
                    ChildDefKind::Pool { ty, size: 1 }
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

    cx.check()?;
    Ok(SupervisorDef {
        attrs: raw.attrs,
        vis: raw.vis,
        name: raw.name,
        strategy,
        max_restarts,
        within_secs,
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

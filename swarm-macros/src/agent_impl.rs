//! `#[agent]` on an impl block: the model of an agent's handlers and hooks, parsed and validated.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::format_ident;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility,
};

use crate::attr::{self, Marker};
use crate::case;
use crate::ctxt::{Ctxt, Rejected};

/// One `#[handler]` method.
pub(crate) struct Handler {
    pub(crate) method: Ident,
    /// Its message variant: the method name in CamelCase.
    pub(crate) variant: Ident,
    pub(crate) vis: Visibility,
    pub(crate) docs: Vec<Attribute>,
    /// `&mut self` (may change state, so it may need saving) or `&self`.
    pub(crate) mutates: bool,
    pub(crate) args: Vec<(Ident, Type)>,
    /// `Some` for a request (the caller waits for this), `None` for a fire-and-forget message.
    pub(crate) output: Option<Type>,
}

/// An `#[on_start]` or `#[on_stop]` method.
pub(crate) struct Hook {
    pub(crate) method: Ident,
}

/// The validated model of an agent's impl block.
pub(crate) struct AgentImpl {
    /// The impl block as the user wrote it, swarm's attributes removed.
    pub(crate) item: ItemImpl,
    /// The agent type's name (`ChatRoom`).
    pub(crate) agent: Ident,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
}

pub(crate) fn parse(
    args: TokenStream,
    mut item: ItemImpl,
) -> Result<AgentImpl, Box<Rejected<ItemImpl, AgentImpl>>> {
    let mut cx = Ctxt::default();
    attr::parse_impl_options(&mut cx, args);

    if let Some((_, path, _)) = &item.trait_ {
        cx.error_at(
            path,
            "#[agent] goes on the agent's inherent impl block (`impl ChatRoom { .. }`), not on a trait impl",
        );
    }
    if !item.generics.params.is_empty() {
        cx.error_at(
            &item.generics,
            "an #[agent] impl block cannot be generic: each agent kind is one concrete type",
        );
    }
    let agent = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.arguments.is_empty() => Some(last.ident.clone()),
            Some(last) => {
                cx.error_at(&last.arguments, "an agent type has no generic arguments");
                None
            }
            None => None,
        },
        other => {
            cx.error_at(
                other,
                "#[agent] goes on `impl YourAgent { .. }` for a struct marked #[agent]",
            );
            None
        }
    };

    let mut handlers = Vec::new();
    let mut on_start = None;
    let mut on_stop = None;
    for impl_item in item.items.iter_mut() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let markers = attr::take_markers(&mut cx, &mut method.attrs);
        let mut roles = markers
            .iter()
            .filter(|(m, _)| matches!(m, Marker::Handler | Marker::OnStart | Marker::OnStop));
        let Some((role, role_attr)) = roles.next() else {
            for (marker, attr) in &markers {
                cx.error_at(
                    attr,
                    format!(
                        "#[{}] goes on a field of the #[agent] struct, not on a method",
                        marker.name()
                    ),
                );
            }
            continue;
        };
        for (other, attr) in roles {
            cx.error_at(
                attr,
                format!("a method is one of #[handler], #[on_start] or #[on_stop]; this one is already #[{}]", role.name())
                    + &format!(" and cannot also be #[{}]", other.name()),
            );
        }
        for (marker, attr) in markers
            .iter()
            .filter(|(m, _)| matches!(m, Marker::Key | Marker::Persist))
        {
            cx.error_at(
                attr,
                format!(
                    "#[{}] goes on a field of the #[agent] struct, not on a method",
                    marker.name()
                ),
            );
        }
        check_plain_fn(&mut cx, method, role.name());
        match role {
            Marker::Handler => {
                if let Some(handler) = parse_handler(&mut cx, method) {
                    handlers.push(handler);
                }
            }
            Marker::OnStart | Marker::OnStop => {
                let slot = if *role == Marker::OnStart {
                    &mut on_start
                } else {
                    &mut on_stop
                };
                if slot.is_some() {
                    cx.error_at(
                        role_attr,
                        format!(
                            "an agent has at most one #[{}] hook; this is a second one",
                            role.name()
                        ),
                    );
                }
                check_hook(&mut cx, method, *role);
                *slot = Some(Hook {
                    method: method.sig.ident.clone(),
                });
            }
            Marker::Key | Marker::Persist => unreachable!("filtered above"),
        }
    }

    check_unique_names(&mut cx, &handlers);

    match (cx.check(), agent) {
        (Ok(()), Some(agent)) => Ok(AgentImpl {
            item,
            agent,
            handlers,
            on_start,
            on_stop,
        }),
        (result, agent) => {
            let error = result
                .err()
                .unwrap_or_else(|| syn::Error::new_spanned(&item.self_ty, "not an agent type"));
            // The stand-in has no handlers: a rejected handler's signature cannot be dispatched.
            // Its impls name no generics, so it also stands in for a generic or trait impl block.
            let stand_in = agent.map(|agent| AgentImpl {
                item: item.clone(),
                agent,
                handlers: Vec::new(),
                on_start: None,
                on_stop: None,
            });
            Err(Box::new(Rejected {
                error,
                item,
                stand_in,
            }))
        }
    }
}

/// Handlers and hooks are plain synchronous methods.
fn check_plain_fn(cx: &mut Ctxt, method: &ImplItemFn, role: &str) {
    let sig = &method.sig;
    if let Some(token) = &sig.asyncness {
        cx.error_at(
            token,
            format!(
                "#[{role}] methods cannot be `async`: an agent is a Lunatic process that runs one message at \
                 a time, and blocking calls inside it are fine. Remove `async`"
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_at(
            &sig.generics,
            format!("#[{role}] methods cannot be generic: their arguments travel in a message of one concrete type"),
        );
    }
    if let Some(token) = &sig.constness {
        cx.error_at(token, format!("#[{role}] methods cannot be `const`"));
    }
    if let Some(token) = &sig.unsafety {
        cx.error_at(token, format!("#[{role}] methods cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_at(
            abi,
            format!("#[{role}] methods cannot have an `extern` ABI"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_at(variadic, format!("#[{role}] methods cannot be variadic"));
    }
}

/// `Some(true)` for `&mut self`, `Some(false)` for `&self`; errors otherwise.
fn receiver(cx: &mut Ctxt, method: &ImplItemFn, role: &str) -> Option<bool> {
    match method.sig.inputs.first() {
        Some(FnArg::Receiver(recv)) if recv.reference.is_some() && recv.colon_token.is_none() => {
            Some(recv.mutability.is_some())
        }
        Some(FnArg::Receiver(recv)) if recv.reference.is_none() && recv.colon_token.is_none() => {
            cx.error_at(
                recv,
                format!(
                    "#[{role}] methods take `&self` or `&mut self`; this one takes `self` by value, which \
                     would consume the agent. Use `&mut self`"
                ),
            );
            None
        }
        Some(FnArg::Receiver(recv)) => {
            cx.error_at(
                recv,
                format!("#[{role}] methods take `&self` or `&mut self`, not a typed `self`"),
            );
            None
        }
        _ => {
            cx.error_at(
                &method.sig.ident,
                format!("#[{role}] methods take `&self` or `&mut self`; this is an associated function without `self`"),
            );
            None
        }
    }
}

fn parse_handler(cx: &mut Ctxt, method: &ImplItemFn) -> Option<Handler> {
    let mutates = receiver(cx, method, "handler");
    let mut args = Vec::new();
    for (index, input) in method.sig.inputs.iter().enumerate().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        let name = match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
            other => {
                cx.error_at(
                    other,
                    "#[handler] arguments need plain names (they become the fields of the message); \
                     destructure inside the method instead",
                );
                format_ident!("__swarm_arg{}", index)
            }
        };
        check_owned(cx, &typed.ty, "arguments travel in a message");
        args.push((name, (*typed.ty).clone()));
    }
    let output = match &method.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            check_owned(cx, ty, "return values travel back in a reply");
            Some((**ty).clone())
        }
    };
    let docs = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Some(Handler {
        method: method.sig.ident.clone(),
        variant: format_ident!(
            "{}",
            case::camel(&method.sig.ident.to_string()),
            span = method.sig.ident.span()
        ),
        vis: method.vis.clone(),
        docs,
        mutates: mutates?,
        args,
        output,
    })
}

/// Message fields and replies are sent to another process, so they are owned values.
fn check_owned(cx: &mut Ctxt, ty: &Type, why: &str) {
    match ty {
        Type::Reference(reference) => {
            let hint = match &*reference.elem {
                Type::Path(path) if path.path.is_ident("str") => " Use `String` instead of `&str`.",
                Type::Slice(_) => " Use `Vec<T>` instead of a slice.",
                _ => " Take the value itself.",
            };
            cx.error_at(
                ty,
                format!("#[handler] {why} to another process, so they cannot be references.{hint}"),
            );
        }
        Type::ImplTrait(_) => cx.error_at(
            ty,
            format!("#[handler] {why} and need one concrete serde type; `impl Trait` is not one"),
        ),
        Type::TraitObject(_) => cx.error_at(
            ty,
            format!("#[handler] {why} and need one concrete serde type; a trait object is not one"),
        ),
        _ => {}
    }
}

fn check_hook(cx: &mut Ctxt, method: &ImplItemFn, role: Marker) {
    let name = role.name();
    if let Some(false) = receiver(cx, method, name) {
        cx.error_at(
            &method.sig.inputs[0],
            format!("#[{name}] hooks take `&mut self`"),
        );
    }
    if let Some(extra) = method.sig.inputs.iter().nth(1) {
        cx.error_at(
            extra,
            format!("#[{name}] hooks take no arguments besides `&mut self`"),
        );
    }
    if role == Marker::OnStop {
        if let ReturnType::Type(_, ty) = &method.sig.output {
            cx.error_at(
                ty,
                "#[on_stop] hooks return nothing: the agent is stopping either way",
            );
        }
    }
}

/// Names the generated code already gives a meaning: a handler with one of them would shadow it.
fn reserved_owner(name: &str) -> Option<&'static str> {
    match name {
        "key" | "process_id" | "is_alive" | "with_timeout" | "without_timeout" | "shutdown"
        | "kill" | "raw" | "from_raw" => Some("every agent handle (`swarm::AgentHandle`)"),
        "clone" | "eq" | "ne" | "fmt" | "serialize" | "deserialize" => {
            Some("every agent handle (it is Clone, PartialEq, Debug and serde)")
        }
        "get_or_start" | "lookup" | "launcher" | "start" => {
            Some("the agent type (generated by #[agent])")
        }
        _ => None,
    }
}

/// Each handler becomes a message variant and (later) a NATS subject, so names must be unique
/// after the conversion to CamelCase too (`get_count` and `getCount` would clash).
fn check_unique_names(cx: &mut Ctxt, handlers: &[Handler]) {
    let mut seen: HashMap<String, &Handler> = HashMap::new();
    for handler in handlers {
        let name = handler.method.to_string();
        if let Some(owner) = reserved_owner(&name) {
            cx.error_at(
                &handler.method,
                format!(
                    "a #[handler] cannot be named `{name}`: {owner} already has a `{name}` method, and \
                     the handler would silently take its place. Rename the handler"
                ),
            );
        }
        let variant = handler.variant.to_string();
        match seen.get(&variant) {
            Some(first) if first.method == handler.method => cx.error_at(
                &handler.method,
                format!(
                    "two #[handler]s are named `{}`; each handler needs its own name (it is the message \
                     variant and the subject callers use)",
                    handler.method
                ),
            ),
            Some(first) => cx.error_at(
                &handler.method,
                format!(
                    "#[handler] `{}` and `{}` both become the message variant `{variant}`; rename one",
                    first.method, handler.method
                ),
            ),
            None => {
                seen.insert(variant, handler);
            }
        }
    }
}

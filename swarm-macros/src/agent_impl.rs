//! `#[agent]` on an impl block: the model of an agent's handlers and hooks, as the user wrote
//! them. Parsing only; whether they can be dispatched is [`crate::valid::agent_impl`]'s question.

use proc_macro2::TokenStream;
use quote::format_ident;
use syn::{
    Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Signature, Type,
    Visibility,
};

use crate::attr::{self, Marker};
use crate::case;
use crate::ctxt::Ctxt;

/// How a handler or hook takes `self`.
pub(crate) enum Receiver {
    /// `&self`.
    Shared,
    /// `&mut self`.
    Exclusive,
    /// `self`, `mut self`: would consume the agent.
    ByValue(syn::Receiver),
    /// `self: Box<Self>` and the like.
    Typed(syn::Receiver),
    /// No `self` at all.
    Missing,
}

/// One argument of a handler: a field of its message.
pub(crate) struct Arg {
    /// The message field's name: the argument's name, or a placeholder when [`Arg::pattern`] is
    /// set.
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    /// The pattern, when the user wrote one instead of a plain name (`(a, b): (u8, u8)`).
    pub(crate) pattern: Option<Pat>,
}

/// One `#[handler]` method.
pub(crate) struct Handler {
    pub(crate) method: Ident,
    /// Where the method is among the block's items.
    pub(crate) position: usize,
    /// Its message variant: the method name in CamelCase.
    pub(crate) variant: Ident,
    pub(crate) vis: Visibility,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) sig: Signature,
    pub(crate) receiver: Receiver,
    pub(crate) args: Vec<Arg>,
    /// `Some` for a request (the caller waits for this), `None` for a fire-and-forget message.
    pub(crate) output: Option<Type>,
    /// `#[handler(subject = "..")]`: the NATS subject pattern whose messages reach it, as written,
    /// with the literal's span (checked in [`crate::valid::subject`]).
    pub(crate) subject: Option<(String, proc_macro2::Span)>,
    /// `#[handler(stream = "..")]`: the JetStream stream its subject's messages come from.
    pub(crate) stream: Option<(String, proc_macro2::Span)>,
}

impl Handler {
    /// `&mut self`: the handler may change state, so the state may need saving after it.
    pub(crate) fn mutates(&self) -> bool {
        matches!(self.receiver, Receiver::Exclusive)
    }
}

/// An `#[on_start]` or `#[on_stop]` method.
pub(crate) struct Hook {
    pub(crate) method: Ident,
    /// The `#[on_start]`/`#[on_stop]` attribute, for errors.
    pub(crate) attr: Attribute,
    pub(crate) sig: Signature,
    pub(crate) receiver: Receiver,
}

/// One `#[migrate(from = N)]` step: an associated function that turns the persisted fields of a
/// record of version `N` into those of version `N + 1`.
pub(crate) struct Migration {
    /// The version it upgrades from, and the literal's span for errors.
    pub(crate) from: u64,
    pub(crate) from_span: proc_macro2::Span,
    pub(crate) sig: Signature,
}

impl Migration {
    /// The step's argument type (the older version's fields), when it has the one argument.
    pub(crate) fn input(&self) -> Option<&Type> {
        match (self.sig.inputs.len(), self.sig.inputs.first()) {
            (1, Some(FnArg::Typed(typed))) => Some(&typed.ty),
            _ => None,
        }
    }

    /// Whether it returns a `Result` (by the last segment's name, which is how the user says the
    /// step can fail: `Result<New, E>`, `anyhow::Result<New>`, `io::Result<New>`).
    pub(crate) fn fallible(&self) -> bool {
        match &self.sig.output {
            ReturnType::Type(_, ty) => match &**ty {
                Type::Path(path) => path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == "Result"),
                _ => false,
            },
            ReturnType::Default => false,
        }
    }
}

/// A method that carries swarm's markers, in the order the user wrote them.
pub(crate) struct Marked {
    /// The first of `#[handler]`, `#[on_start]` and `#[on_stop]` on the method, if any.
    pub(crate) role: Option<Marker>,
    /// Every marker on the method, the role included.
    pub(crate) markers: Vec<(Marker, Attribute)>,
    /// The method, for errors about its signature.
    pub(crate) sig: Signature,
}

/// The model of an agent's impl block.
pub(crate) struct AgentImpl {
    /// The impl block as the user wrote it, swarm's attributes removed.
    pub(crate) item: ItemImpl,
    /// The agent type's name (`ChatRoom`).
    pub(crate) agent: Ident,
    /// Every method with a marker, in order.
    pub(crate) marked: Vec<Marked>,
    pub(crate) handlers: Vec<Handler>,
    /// Every `#[on_start]` method (an agent may have one).
    pub(crate) on_start: Vec<Hook>,
    /// Every `#[on_stop]` method (an agent may have one).
    pub(crate) on_stop: Vec<Hook>,
    /// Every `#[migrate]` step, in order.
    pub(crate) migrations: Vec<Migration>,
    /// `#[agent(schema)]`: publish the handlers' JSON Schemas.
    pub(crate) schema: bool,
    /// Set by the fallback for a rejected block: its stand-in neither migrates nor checks the
    /// chain of steps against the struct's `state_version` (that would be a second error).
    pub(crate) stand_in: bool,
}

/// Parses `#[agent(args)]` on `item` into a model, pushing what cannot be parsed to `cx`.
///
/// `Err` carries the item (swarm's attributes removed) when it does not name one agent type
/// (`impl Cache<V>`, `impl (A, B)`): there is nothing to generate for.
pub(crate) fn parse(
    cx: &mut Ctxt,
    args: TokenStream,
    mut item: ItemImpl,
) -> Result<AgentImpl, Box<ItemImpl>> {
    let options = attr::parse_impl_options(cx, args);

    let mut marked = Vec::new();
    let mut handlers = Vec::new();
    let mut on_start = Vec::new();
    let mut on_stop = Vec::new();
    let mut migrations = Vec::new();
    for (position, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let steps = attr::take_migrate(cx, &mut method.attrs);
        let markers = attr::take_markers(cx, &mut method.attrs);
        if let Some((from, from_span, attr)) = steps {
            if let Some((marker, _)) = markers.first() {
                cx.error_at(
                    &attr,
                    format!(
                        "a #[migrate] step upgrades a stored record before the agent exists; it \
                         cannot also be #[{}]",
                        marker.name()
                    ),
                );
            } else {
                migrations.push(Migration {
                    from,
                    from_span,
                    sig: method.sig.clone(),
                });
            }
        }
        if markers.is_empty() {
            continue;
        }
        let role = markers
            .iter()
            .find(|(m, _)| matches!(m, Marker::Handler | Marker::OnStart | Marker::OnStop));
        match role {
            Some((Marker::Handler, attr)) => {
                let options = attr::handler_options(cx, attr);
                handlers.push(parse_handler(method, position, options));
            }
            Some((hook @ (Marker::OnStart | Marker::OnStop), attr)) => {
                let hook_model = Hook {
                    method: method.sig.ident.clone(),
                    attr: attr.clone(),
                    sig: method.sig.clone(),
                    receiver: receiver(&method.sig),
                };
                if *hook == Marker::OnStart {
                    on_start.push(hook_model);
                } else {
                    on_stop.push(hook_model);
                }
            }
            _ => {}
        }
        marked.push(Marked {
            role: role.map(|(m, _)| *m),
            markers,
            sig: method.sig.clone(),
        });
    }

    let Some(agent) = agent_ident(cx, &item.self_ty) else {
        return Err(Box::new(item));
    };
    Ok(AgentImpl {
        item,
        agent,
        marked,
        handlers,
        on_start,
        on_stop,
        migrations,
        schema: options.schema,
        stand_in: false,
    })
}

/// The agent's name from the impl's self type, which must be a plain path.
fn agent_ident(cx: &mut Ctxt, self_ty: &Type) -> Option<Ident> {
    match self_ty {
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            if last.arguments.is_empty() {
                Some(last.ident.clone())
            } else {
                cx.error_at(&last.arguments, "an agent type has no generic arguments");
                None
            }
        }
        other => {
            cx.error_at(
                other,
                "#[agent] goes on `impl YourAgent { .. }` for a struct marked #[agent]",
            );
            None
        }
    }
}

fn receiver(sig: &Signature) -> Receiver {
    match sig.inputs.first() {
        Some(FnArg::Receiver(recv)) if recv.colon_token.is_some() => Receiver::Typed(recv.clone()),
        Some(FnArg::Receiver(recv)) => match (&recv.reference, &recv.mutability) {
            (Some(_), Some(_)) => Receiver::Exclusive,
            (Some(_), None) => Receiver::Shared,
            (None, _) => Receiver::ByValue(recv.clone()),
        },
        _ => Receiver::Missing,
    }
}

fn parse_handler(method: &ImplItemFn, position: usize, options: attr::HandlerOptions) -> Handler {
    let sig = &method.sig;
    let args = sig
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(index, input)| match input {
            FnArg::Typed(typed) => Some((index, typed)),
            FnArg::Receiver(_) => None,
        })
        .map(|(index, typed)| {
            let ty = (*typed.ty).clone();
            match &*typed.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Arg {
                    name: pat.ident.clone(),
                    ty,
                    pattern: None,
                },
                other => Arg {
                    name: format_ident!("__swarm_arg{}", index),
                    ty,
                    pattern: Some(other.clone()),
                },
            }
        })
        .collect();
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    Handler {
        method: sig.ident.clone(),
        position,
        variant: format_ident!(
            "{}",
            case::camel(&sig.ident.to_string()),
            span = sig.ident.span()
        ),
        vis: method.vis.clone(),
        docs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        sig: sig.clone(),
        receiver: receiver(sig),
        args,
        output,
        subject: options.subject,
        stream: options.stream,
    }
}

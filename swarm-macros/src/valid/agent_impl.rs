//! The checks of an `#[agent]` impl block: handlers that cannot travel in a message, hooks with
//! the wrong shape, markers in the wrong place, names that clash.

use std::collections::HashMap;

use syn::{FnArg, ReturnType, Signature, Type};

use crate::agent_impl::{AgentImpl, Handler, Hook, Migration, Receiver};
use crate::attr::Marker;
use crate::ctxt::Ctxt;

/// Reports every mistake of `model` to `cx`, each at the user's own token.
pub(crate) fn check(cx: &mut Ctxt, model: &AgentImpl) {
    if let Some((_, path, _)) = &model.item.trait_ {
        cx.error_at(
            path,
            "#[agent] goes on the agent's inherent impl block (`impl ChatRoom { .. }`), not on a trait impl",
        );
    }
    if !model.item.generics.params.is_empty() {
        cx.error_at(
            &model.item.generics,
            "an #[agent] impl block cannot be generic: each agent kind is one concrete type",
        );
    }

    let mut handlers = model.handlers.iter();
    let mut on_start = model.on_start.iter();
    let mut on_stop = model.on_stop.iter();
    for method in &model.marked {
        let Some(role) = method.role else {
            for (marker, attr) in &method.markers {
                cx.error_at(attr, misplaced_on_method(*marker));
            }
            continue;
        };
        let mut roles = method
            .markers
            .iter()
            .filter(|(m, _)| matches!(m, Marker::Handler | Marker::OnStart | Marker::OnStop))
            .skip(1);
        for (other, attr) in &mut roles {
            cx.error_at(
                attr,
                format!(
                    "a method is one of #[handler], #[on_start] or #[on_stop]; this one is already #[{}] \
                     and cannot also be #[{}]",
                    role.name(),
                    other.name()
                ),
            );
        }
        for (marker, attr) in method
            .markers
            .iter()
            .filter(|(m, _)| matches!(m, Marker::Key | Marker::Persist))
        {
            cx.error_at(attr, misplaced_on_method(*marker));
        }
        check_plain_fn(cx, &method.sig, role.name());
        // The parser made one handler or hook per marked method, in the same order.
        match role {
            Marker::Handler => {
                if let Some(handler) = handlers.next() {
                    check_handler(cx, handler);
                }
            }
            Marker::OnStart => {
                if let Some(hook) = on_start.next() {
                    check_hook(cx, hook, role, model.on_start.first());
                }
            }
            Marker::OnStop => {
                if let Some(hook) = on_stop.next() {
                    check_hook(cx, hook, role, model.on_stop.first());
                }
            }
            Marker::Key | Marker::Persist => {}
        }
    }

    check_unique_names(cx, &model.handlers);
    check_migrations(cx, &model.migrations);
}

/// `#[migrate]` steps: each a plain function from one version's fields to the next one's, one
/// per version, with no version left out from 1 on. (That the last one reaches the struct's
/// `state_version`, and none goes past it, is checked by the generated code: the struct is
/// another macro's input.)
fn check_migrations(cx: &mut Ctxt, steps: &[Migration]) {
    let usage = "a #[migrate] step takes the older version's fields and returns the next \
                 version's: `fn from_v1(old: CounterV1) -> CounterV2` (serde types, or \
                 `swarm::record::Fields` for untyped JSON)";
    for step in steps {
        let sig = &step.sig;
        if let Some(token) = &sig.asyncness {
            cx.error_at(
                token,
                "#[migrate] steps cannot be `async`: they run while the agent starts",
            );
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            cx.error_at(
                &sig.generics,
                "#[migrate] steps cannot be generic: each reads one version's fields into one type",
            );
        }
        if let Some(token) = &sig.constness {
            cx.error_at(token, "#[migrate] steps cannot be `const`");
        }
        if let Some(token) = &sig.unsafety {
            cx.error_at(token, "#[migrate] steps cannot be `unsafe`");
        }
        if let Some(abi) = &sig.abi {
            cx.error_at(abi, "#[migrate] steps cannot have an `extern` ABI");
        }
        match sig.inputs.first() {
            Some(FnArg::Receiver(recv)) => cx.error_at(
                recv,
                format!(
                    "#[migrate] steps upgrade a stored record before the agent exists, so they take \
                     no `self`; {usage}"
                ),
            ),
            None => cx.error_at(
                &sig.ident,
                format!("this #[migrate] step takes no argument; {usage}"),
            ),
            Some(_) => {}
        }
        if let Some(extra) = sig.inputs.iter().nth(1) {
            if !matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
                cx.error_at(
                    extra,
                    format!("this #[migrate] step takes more than one argument; {usage}"),
                );
            }
        }
        if let Some(ty) = step.input() {
            if matches!(ty, Type::Reference(_) | Type::ImplTrait(_)) {
                cx.error_at(
                    ty,
                    "a #[migrate] step takes the older version's fields by value, as one \
                     concrete serde type",
                );
            }
        }
        match &sig.output {
            ReturnType::Default => cx.error_at(
                &sig.ident,
                format!("this #[migrate] step returns nothing; {usage}"),
            ),
            ReturnType::Type(_, ty) if matches!(**ty, Type::Reference(_) | Type::ImplTrait(_)) => {
                cx.error_at(
                    ty,
                    "a #[migrate] step returns the next version's fields as one owned, concrete \
                     serde type (or a `Result` of one)",
                )
            }
            ReturnType::Type(..) => {}
        }
        if step.from == 0 {
            cx.push(syn::Error::new(
                step.from_span,
                "state versions start at 1 (a record without a version is version 1): the first \
                 step is `#[migrate(from = 1)]`",
            ));
        } else if step.from >= u64::from(u32::MAX) {
            cx.push(syn::Error::new(
                step.from_span,
                "this state version is too large",
            ));
        }
    }

    // One step per version, and none missing between 1 and the last one.
    let mut seen: HashMap<u64, &Migration> = HashMap::new();
    for step in steps.iter().filter(|step| step.from > 0) {
        if let Some(first) = seen.get(&step.from) {
            cx.push(syn::Error::new(
                step.from_span,
                format!(
                    "a second step from version {}: `{}` already upgrades records of version {} \
                     (each version has one #[migrate] step, to the next version)",
                    step.from, first.sig.ident, step.from
                ),
            ));
        } else {
            seen.insert(step.from, step);
        }
    }
    let mut versions: Vec<_> = seen.into_iter().collect();
    versions.sort_by_key(|(from, _)| *from);
    let mut expected = 1;
    for (from, step) in versions {
        if from > expected {
            let missing = if from == expected + 1 {
                format!("version {expected} has no step")
            } else {
                format!("versions {expected} to {} have no step", from - 1)
            };
            cx.push(syn::Error::new(
                step.from_span,
                format!(
                    "the #[migrate] steps skip a version: {missing}, so a record of that version \
                     could not be upgraded. Add `#[migrate(from = {expected})]` (records are upgraded \
                     one version at a time)"
                ),
            ));
        }
        expected = from + 1;
    }
}

fn misplaced_on_method(marker: Marker) -> String {
    format!(
        "#[{}] goes on a field of the #[agent] struct, not on a method",
        marker.name()
    )
}

/// Handlers and hooks are plain synchronous methods.
fn check_plain_fn(cx: &mut Ctxt, sig: &Signature, role: &str) {
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

/// Reports a receiver other than `&self`/`&mut self`; true when it is one of those.
fn check_receiver(cx: &mut Ctxt, receiver: &Receiver, sig: &Signature, role: &str) -> bool {
    match receiver {
        Receiver::Shared | Receiver::Exclusive => return true,
        Receiver::ByValue(recv) => cx.error_at(
            recv,
            format!(
                "#[{role}] methods take `&self` or `&mut self`; this one takes `self` by value, which \
                 would consume the agent. Use `&mut self`"
            ),
        ),
        Receiver::Typed(recv) => cx.error_at(
            recv,
            format!("#[{role}] methods take `&self` or `&mut self`, not a typed `self`"),
        ),
        Receiver::Missing => cx.error_at(
            &sig.ident,
            format!("#[{role}] methods take `&self` or `&mut self`; this is an associated function without `self`"),
        ),
    }
    false
}

fn check_handler(cx: &mut Ctxt, handler: &Handler) {
    check_receiver(cx, &handler.receiver, &handler.sig, "handler");
    for arg in &handler.args {
        if let Some(pattern) = &arg.pattern {
            cx.error_at(
                pattern,
                "#[handler] arguments need plain names (they become the fields of the message); \
                 destructure inside the method instead",
            );
        }
        check_owned(cx, &arg.ty, "arguments travel in a message");
    }
    if let Some(output) = &handler.output {
        check_owned(cx, output, "return values travel back in a reply");
    }
    if let Some((stream, span)) = &handler.stream {
        if let Err(why) = super::subject::check_stream(stream) {
            cx.push(syn::Error::new(*span, why));
        }
        if handler.subject.is_none() {
            cx.push(syn::Error::new(
                *span,
                "a handler on a stream also says which of its messages it takes and which token is \
                 the key: add `subject = \"orders.{key}.placed\"`",
            ));
        }
    }
    if let Some((pattern, span)) = &handler.subject {
        if let Err(why) = super::subject::check(pattern) {
            cx.push(syn::Error::new(*span, why));
        }
        if handler.args.len() != 1 {
            cx.error_at(
                &handler.sig.inputs,
                format!(
                    "a #[handler(subject = ..)] takes the message published on its subject as its \
                     one argument (its payload is that argument as JSON), such as `fn {}(&mut self, \
                     event: OrderPlaced)`; this one takes {}",
                    handler.method,
                    handler.args.len()
                ),
            );
        }
    }
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

/// `first` is the first hook of this role: any other one is a second hook.
fn check_hook(cx: &mut Ctxt, hook: &Hook, role: Marker, first: Option<&Hook>) {
    let name = role.name();
    if first.is_some_and(|first| !std::ptr::eq(first, hook)) {
        cx.error_at(
            &hook.attr,
            format!("an agent has at most one #[{name}] hook; this is a second one"),
        );
    }
    if check_receiver(cx, &hook.receiver, &hook.sig, name)
        && matches!(hook.receiver, Receiver::Shared)
    {
        cx.error_at(
            &hook.sig.inputs[0],
            format!("#[{name}] hooks take `&mut self`"),
        );
    }
    if let Some(extra) = hook.sig.inputs.iter().nth(1) {
        cx.error_at(
            extra,
            format!("#[{name}] hooks take no arguments besides `&mut self`"),
        );
    }
    if role == Marker::OnStop {
        if let ReturnType::Type(_, ty) = &hook.sig.output {
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
        _ if AGENT_TYPE_FNS.contains(&name) => Some("the agent type (generated by #[agent])"),
        _ => None,
    }
}

/// The associated functions `#[agent]` on the struct generates (`get_or_start`, `lookup` and
/// `launcher` with a `#[key]`, `start` without): a handler of one of these names is an error, and
/// the [`fallback`](crate::fallback) leaves it out so that it is not a second one.
pub(crate) const AGENT_TYPE_FNS: [&str; 4] = ["get_or_start", "lookup", "launcher", "start"];

/// Each handler becomes a message variant and a NATS subject, so names must be unique after the
/// conversion to CamelCase too (`get_count` and `getCount` would clash).
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

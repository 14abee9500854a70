//! What a rejected item expands to: its errors, the item as the user wrote it (swarm's
//! attributes removed), and, where its shape allows, a stand-in for the generated code.
//!
//! The stand-in keeps the rest of the user's code resolving (`Agent::get_or_start`, the other
//! half of an agent, a supervisor used as another supervisor's child), so one mistake shows one
//! error instead of a cascade from every place that uses the item. Its bodies never run: the
//! crate does not compile while the errors stand.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ItemImpl;

use crate::agent_impl::AgentImpl;
use crate::agent_struct::AgentStruct;
use crate::expand;
use crate::supervisor_def::SupervisorDef;
use crate::valid::agent_impl::AGENT_TYPE_FNS;

/// The item as the user wrote it, followed by the errors.
pub(crate) fn with_errors(item: impl ToTokens, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

/// A rejected `#[agent]` struct: generated as it stands unless it is generic (a generic struct
/// cannot implement the agent traits for one concrete type), so that its impl block and the code
/// that starts it still resolve. A tuple or unit struct stands in as an agent without fields
/// whose `from_key` is never built.
pub(crate) fn agent_struct(mut model: AgentStruct, error: syn::Error) -> TokenStream {
    // Its steps are not checked against a rejected struct's `state_version`: one mistake, one
    // error.
    model.stand_in = true;
    if model.item.generics.params.is_empty() {
        with_errors(expand::agent_struct(&model), error)
    } else {
        with_errors(model.item, error)
    }
}

/// A rejected `#[agent]` impl block: the block as written plus an agent without handlers or
/// hooks (a rejected handler's signature cannot be dispatched). The stand-in's impls name no
/// generics, so it also stands in for a generic impl block or a trait impl.
///
/// Handlers already reported for their name are left out of the block: a second handler of one
/// name, and a handler named like a function the struct's `#[agent]` generates. Kept, each would
/// be rustc's "duplicate definitions" error after ours, about the same method.
pub(crate) fn agent_impl(
    model: Result<AgentImpl, Box<ItemImpl>>,
    error: syn::Error,
) -> TokenStream {
    match model {
        Ok(mut model) => {
            drop_clashing_handlers(&mut model);
            model.handlers.clear();
            model.on_start.clear();
            model.on_stop.clear();
            model.migrations.clear();
            model.stand_in = true;
            with_errors(expand::agent_impl(&model), error)
        }
        Err(item) => with_errors(item, error),
    }
}

/// Removes from the block the handlers whose name `valid::agent_impl` rejected as a clash (see
/// [`agent_impl`]); the first handler of a name stays.
fn drop_clashing_handlers(model: &mut AgentImpl) {
    let mut seen = HashSet::new();
    let remove: HashSet<usize> = model
        .handlers
        .iter()
        .filter(|handler| {
            let name = handler.method.to_string();
            let first = seen.insert(name.clone());
            !first || AGENT_TYPE_FNS.contains(&name.as_str())
        })
        .map(|handler| handler.position)
        .collect();
    let mut position = 0;
    model.item.items.retain(|_| {
        let keep = !remove.contains(&position);
        position += 1;
        keep
    });
}

/// A rejected `supervisor!`: the supervisor type and its handle with one method per child (the
/// first of each name), so that a parent supervisor and the code that starts the tree still
/// resolve; its `spec()` is never built.
pub(crate) fn supervisor(def: &SupervisorDef, error: syn::Error) -> TokenStream {
    let mut seen = HashSet::new();
    let children = def
        .children
        .iter()
        .filter(|child| seen.insert(child.name.to_string()))
        .collect();
    let p = expand::private();
    let spec = quote!(#p::unreachable!("a rejected supervisor! is never compiled"));
    with_errors(
        expand::lunatic_only(expand::supervisor::items(def, children, spec)),
        error,
    )
}

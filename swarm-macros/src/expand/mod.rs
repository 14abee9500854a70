//! Code generation from the validated models, and the three steps put together for each macro
//! (parse, [`valid`](crate::valid), expand or [`fallback`](crate::fallback)). One module per
//! generated piece: [`state`] (from the struct: the `AgentState` impl, the typed handle, the
//! start/find functions), [`message`] (the message enum), [`process`] (the Lunatic process and
//! dispatch), [`handle`] (the handle's methods, one per handler), [`supervisor`].
//!
//! Generated code names everything through `::swarm::__private` ([`private`]): the user's
//! crate needs no dependency on lunatic or serde, and no name in it can shadow ours. Even
//! `Option`, `String`, `PhantomData` and the derives (`Clone`, `Debug`, ..) go through it; only
//! primitive types (`u8`, `bool`, `str`) are written bare, as they are not paths. The one other
//! path is `::core::compile_error!`, which a rejected item's errors expand to (syn writes it):
//! there the build fails either way.

pub(crate) mod client;
mod handle;
mod message;
mod process;
mod schema;
pub(crate) mod state;
pub(crate) mod supervisor;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Item};

use crate::ctxt::Ctxt;
use crate::fallback::{self, with_errors};
use crate::{agent_impl, agent_struct, supervisor_def, valid};

/// `#[agent]`: parses the item it is on, validates the model, then expands it (or, if anything
/// was wrong, its fallback).
pub(crate) fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => {
            let model = agent_struct::parse(&mut cx, args, item);
            valid::agent_struct::check(&mut cx, &model);
            match cx.check() {
                Ok(()) => agent_struct(&model),
                Err(error) => fallback::agent_struct(model, error),
            }
        }
        Ok(Item::Impl(item)) => {
            let model = agent_impl::parse(&mut cx, args, item);
            if let Ok(model) = &model {
                valid::agent_impl::check(&mut cx, model);
            }
            match (cx.check(), model) {
                (Ok(()), Ok(model)) => agent_impl(&model),
                (result, model) => fallback::agent_impl(model, error_of(result)),
            }
        }
        Ok(other) => with_errors(
            &other,
            syn::Error::new_spanned(
                &other,
                "#[agent] goes on a struct (the agent's state) and on its impl block (its handlers)",
            ),
        ),
        Err(err) => with_errors(item, err),
    }
}

/// `supervisor!`: parses the declaration, validates it, then expands it or its fallback.
pub(crate) fn supervisor(input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let def = match supervisor_def::parse(&mut cx, input) {
        Ok(def) => def,
        // A syntax error: there is no declaration to stand in for.
        Err(err) => return err.to_compile_error(),
    };
    valid::supervisor::check(&mut cx, &def);
    match cx.check() {
        // Supervision trees exist inside Lunatic only.
        Ok(()) => lunatic_only(supervisor::expand(&def)),
        Err(error) => fallback::supervisor(&def, error),
    }
}

/// A parser returns no model only after reporting why, so a failed model always comes with an
/// error; this keeps that promise visible instead of unwrapping it.
fn error_of(result: Result<(), syn::Error>) -> syn::Error {
    result.err().unwrap_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "swarm-macros could not model this item; please report it with the item",
        )
    })
}

/// The struct's expansion: the struct itself on every target; inside Lunatic what makes it an
/// agent ([`state`]), natively its typed client ([`client`]).
pub(crate) fn agent_struct(model: &agent_struct::AgentStruct) -> TokenStream {
    let item = &model.item;
    let runtime = lunatic_only(state::expand(model));
    let client = client::expand_struct(model);
    quote! {
        // Natively the state is never made (the agent runs inside Lunatic): its fields are read
        // by the handlers only, which are not compiled there.
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        #item
        #runtime
        #client
    }
}

/// The impl block's expansion. Inside Lunatic: the block itself, the message enum, the process,
/// the handle's methods. Natively: the client's methods only; the handlers' bodies are not
/// compiled there (they run inside Lunatic, and may use what only exists there).
pub(crate) fn agent_impl(model: &agent_impl::AgentImpl) -> TokenStream {
    let item = &model.item;
    let message = message::expand(model);
    let process = process::expand(model);
    let handle_impls = handle::expand(model);
    // Pointed at the user's `impl Agent`: without `#[agent]` on the struct there is no handle,
    // and this alias is the one place that says so.
    let handle = handle_ident(&model.agent);
    let alias = quote_spanned!(model.item.self_ty.span()=> type __SwarmHandle = #handle;);
    let runtime = lunatic_only(quote! {
        #item
        #message
        // Every impl that names the handle, in one scope that names it once.
        const _: () = {
            #alias
            #process
            #handle_impls
        };
    });
    let client = client::expand_impl(model);
    quote! {
        #runtime
        #client
    }
}

/// `items` for Lunatic builds only: each item gets `#[cfg(target_arch = "wasm32")]`.
pub(crate) fn lunatic_only(items: TokenStream) -> TokenStream {
    match syn::parse2::<syn::File>(items.clone()) {
        Ok(file) => {
            let items = file.items.into_iter().map(|item| {
                quote! {
                    #[cfg(target_arch = "wasm32")]
                    #item
                }
            });
            quote!(#(#items)*)
        }
        // Generated items always parse; should one not, it stays for every target rather
        // than vanish.
        Err(_) => items,
    }
}

/// `#[handler]` reached on its own: it was not inside an `#[agent]` impl block.
pub(crate) fn stray_handler(item: TokenStream) -> TokenStream {
    let message =
        "#[handler] only works on methods of an impl block marked #[agent]: add #[agent] \
                   on the `impl` (and on the struct)";
    let error = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => syn::Error::new_spanned(&function.sig.ident, message),
        Err(_) => syn::Error::new_spanned(&item, message),
    };
    with_errors(item, error)
}

/// `#[migrate]` reached on its own: it was not inside an `#[agent]` impl block.
pub(crate) fn stray_migrate(item: TokenStream) -> TokenStream {
    let message =
        "#[migrate] only works on associated functions of an impl block marked #[agent]: \
                   move the step into the agent's `#[agent] impl` block";
    let error = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => syn::Error::new_spanned(&function.sig.ident, message),
        Err(_) => syn::Error::new_spanned(&item, message),
    };
    with_errors(item, error)
}

/// `ChatRoom` -> `ChatRoomMsg`.
pub(crate) fn message_ident(agent: &Ident) -> Ident {
    format_ident!("{}Msg", agent)
}

/// `ChatRoom` -> `ChatRoomRef`.
pub(crate) fn handle_ident(agent: &Ident) -> Ident {
    format_ident!("{}Ref", agent)
}

/// The path every generated item names the runtime (and `core`/`std`) through.
pub(crate) fn private() -> TokenStream {
    quote!(::swarm::__private)
}

/// [`private`] with the span of a user's token, for a path whose type errors should point at
/// that token (a field's `Option<T>` where `T` is not serde).
pub(crate) fn private_at(span: proc_macro2::Span) -> TokenStream {
    quote_spanned!(span=> ::swarm::__private)
}

#[cfg(test)]
mod tests;

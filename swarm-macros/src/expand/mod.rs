//! Code generation from the validated models. One module per generated piece:
//! [`state`] (the struct's `AgentState` impl and start/find functions), [`message`] (the message
//! enum), [`process`] (the Lunatic process and dispatch), [`handle`] (the typed handle).

mod handle;
mod message;
mod process;
mod state;
pub(crate) mod supervisor;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::{Ident, Item};

use crate::ctxt::{with_errors, Rejected};
use crate::{agent_impl, agent_struct};

/// `#[agent]`: dispatches on the item it is on.
pub(crate) fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => match agent_struct::parse(args, item) {
            Ok(model) => state::expand(&model),
            Err(rejected) => {
                let Rejected { error, item, stand_in } = *rejected;
                let tokens = stand_in.map_or_else(|| item.into_token_stream(), |model| state::expand(&model));
                with_errors(tokens, error)
            }
        },
        Ok(Item::Impl(item)) => match agent_impl::parse(args, item) {
            Ok(model) => expand_impl(&model),
            Err(rejected) => {
                let Rejected { error, item, stand_in } = *rejected;
                let tokens = stand_in.map_or_else(|| item.into_token_stream(), |model| expand_impl(&model));
                with_errors(tokens, error)
            }
        },
        Ok(other) => with_errors(
            other.to_token_stream(),
            syn::Error::new_spanned(
                &other,
                "#[agent] goes on a struct (the agent's state) and on its impl block (its handlers)",
            ),
        ),
        Err(err) => with_errors(item, err),
    }
}

fn expand_impl(model: &agent_impl::AgentImpl) -> TokenStream {
    let mut out = model.item.to_token_stream();
    out.extend(message::expand(model));
    out.extend(process::expand(model));
    out.extend(handle::expand(model));
    out
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

/// `ChatRoom` -> `ChatRoomMsg`.
pub(crate) fn message_ident(agent: &Ident) -> Ident {
    format_ident!("{}Msg", agent)
}

/// `ChatRoom` -> `ChatRoomRef`.
pub(crate) fn handle_ident(agent: &Ident) -> Ident {
    format_ident!("{}Ref", agent)
}

/// The path every generated item names the runtime through.
pub(crate) fn private() -> TokenStream {
    quote!(::swarm::__private)
}

#[cfg(test)]
mod tests;

//! The message enum: one variant per handler, its fields the handler's arguments. It is what
//! travels in the agent's mailbox (bincode), and its fields are the JSON object a NATS request
//! carries (see `swarm::nats`).

use proc_macro2::TokenStream;
use quote::quote;

use super::{message_ident, private};
use crate::agent_impl::AgentImpl;

pub(crate) fn expand(model: &AgentImpl) -> TokenStream {
    let p = private();
    let agent = &model.agent;
    let message = message_ident(agent);
    let serde_path = quote!(#p::serde).to_string();
    let variants = model.handlers.iter().map(|handler| {
        let variant = &handler.variant;
        let names = handler.args.iter().map(|arg| &arg.name);
        let tys = handler.args.iter().map(|arg| &arg.ty);
        let doc = format!("The message for [`{agent}::{}`].", handler.method);
        quote! {
            #[doc = #doc]
            #variant { #(#names: #tys,)* },
        }
    });
    let doc = format!(
        "The messages of [`{agent}`]: one variant per `#[handler]`, its fields the handler's arguments."
    );
    quote! {
        #[doc = #doc]
        #[derive(#p::serde::Serialize, #p::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        // Callers outside Rust name arguments in JSON: a name the handler does not have is a
        // mistake to report, not a value to drop.
        #[serde(deny_unknown_fields)]
        // `pub` whatever the agent's visibility: the impl block cannot see the struct's. A
        // private agent's handlers may take private types, which only the lint would mind.
        #[allow(private_interfaces)]
        pub enum #message {
            #(#variants)*
        }
    }
}

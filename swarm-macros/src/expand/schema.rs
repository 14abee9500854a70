//! `#[agent(schema)]`: the JSON Schemas of the handlers' arguments and replies, which the node
//! publishes in its services API (`$SRV.INFO` endpoint metadata) for callers in other languages.
//! Generated as `AgentBehavior::schemas`, called once when a node starts serving the kind; the
//! schemas themselves come from schemars through `swarm::schema::SchemaSet`, so this only lists
//! each handler's wire names and types.
//!
//! Opt-in: a kind without `schema` generates nothing here and needs no `JsonSchema` types. With
//! it, each argument and return type is named at the user's own token, so a type without a schema
//! is reported there (by `swarm::schema::HandlerType`'s message, which says what to derive).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use super::private;
use crate::agent_impl::AgentImpl;

/// The `schemas` method of the `AgentBehavior` impl, or nothing without `#[agent(schema)]`.
pub(crate) fn expand(model: &AgentImpl) -> TokenStream {
    if !model.schema {
        return TokenStream::new();
    }
    let p = private();
    let handlers = model.handlers.iter().map(|handler| {
        // The names the front door matches: the handler's as in `HandlerInfo`, the arguments'
        // as serde reads the message's fields (`r#type` is `type`).
        let name = handler.method.to_string();
        let args = handler.args.iter().map(|arg| {
            let ty = &arg.ty;
            let arg_name = arg.name.unraw().to_string();
            quote_spanned!(ty.span()=> .arg::<#ty>(#arg_name))
        });
        let end = match &handler.output {
            Some(output) => quote_spanned!(output.span()=> .reply::<#output>()),
            None => quote!(.no_reply()),
        };
        quote!(__swarm_schemas.handler(#name) #(#args)* #end;)
    });
    quote! {
        fn schemas() -> #p::Option<#p::Vec<#p::HandlerSchemas>> {
            let mut __swarm_schemas = #p::SchemaSet::new(<Self as #p::AgentState>::KIND);
            #(#handlers)*
            #p::Option::Some(__swarm_schemas.finish())
        }
    }
}

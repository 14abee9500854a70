//! The typed handle `<Agent>Ref`'s impls: one method per handler, `AgentHandle`, and the
//! `Clone`, `Debug`, `PartialEq` and serde impls a derive would write. The handle is declared by
//! the struct's expansion (see [`super::state`]), which knows the struct's visibility; its impls
//! are here, next to what makes the agent an `Agent`, so that a struct without an impl block
//! fails once (at its declaration) instead of once per impl.
//!
//! Emitted inside the impl block's `const _` scope, where `__SwarmHandle` names the handle.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{handle_ident, message_ident, private};
use crate::agent_impl::AgentImpl;

pub(crate) fn expand(model: &AgentImpl) -> TokenStream {
    let p = private();
    let agent = &model.agent;
    let message = message_ident(agent);
    let handle = quote!(__SwarmHandle);
    let handle_name = handle_ident(agent).to_string();

    let methods = model.handlers.iter().map(|handler| {
        let method = &handler.method;
        let variant = &handler.variant;
        let vis = &handler.vis;
        let docs = &handler.docs;
        // A blank doc line separates the user's docs from ours, only when there are some.
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        let name = method.to_string();
        let names: Vec<_> = handler.args.iter().map(|arg| &arg.name).collect();
        let tys = handler.args.iter().map(|arg| &arg.ty);
        let build = quote!(#message::#variant { #(#names,)* });
        match &handler.output {
            Some(output) => {
                let request = quote_spanned!(output.span()=> self.__swarm_raw.request(#name, #build));
                let doc = format!(
                    "Calls [`{agent}::{method}`] and waits for its answer (at most the handle's timeout)."
                );
                quote! {
                    #(#docs)*
                    #separator
                    #[doc = #doc]
                    #vis fn #method(&self, #(#names: #tys),*) -> #p::Result<#output, #p::CallError> {
                        #request
                    }
                }
            }
            None => {
                let doc = format!(
                    "Sends [`{agent}::{method}`] without waiting; `Ok` means a running agent's mailbox has it."
                );
                quote! {
                    #(#docs)*
                    #separator
                    #[doc = #doc]
                    #vis fn #method(&self, #(#names: #tys),*) -> #p::Result<(), #p::CallError> {
                        self.__swarm_raw.send(#name, #build)
                    }
                }
            }
        }
    });

    quote! {
        impl #handle {
            #(#methods)*
        }

        #[automatically_derived]
        impl #p::AgentHandle for #handle {
            type Agent = #agent;

            fn raw(&self) -> &#p::AgentRef<#agent> {
                &self.__swarm_raw
            }

            fn from_raw(raw: #p::AgentRef<#agent>) -> Self {
                Self { __swarm_raw: raw }
            }
        }

        #[automatically_derived]
        impl #p::Clone for #handle {
            fn clone(&self) -> Self {
                Self { __swarm_raw: #p::Clone::clone(&self.__swarm_raw) }
            }
        }

        #[automatically_derived]
        impl #p::Debug for #handle {
            fn fmt(&self, __swarm_f: &mut #p::fmt::Formatter<'_>) -> #p::fmt::Result {
                __swarm_f.debug_tuple(#handle_name).field(&self.__swarm_raw).finish()
            }
        }

        #[automatically_derived]
        impl #p::PartialEq for #handle {
            fn eq(&self, __swarm_other: &Self) -> bool {
                self.__swarm_raw == __swarm_other.__swarm_raw
            }
        }

        #[automatically_derived]
        impl #p::serde::Serialize for #handle {
            fn serialize<__S: #p::serde::Serializer>(&self, __swarm_serializer: __S) -> #p::Result<__S::Ok, __S::Error> {
                #p::serialize_handle(self, #handle_name, __swarm_serializer)
            }
        }

        #[automatically_derived]
        impl<'de> #p::serde::Deserialize<'de> for #handle {
            fn deserialize<__D: #p::serde::Deserializer<'de>>(__swarm_deserializer: __D) -> #p::Result<Self, __D::Error> {
                #p::deserialize_handle(__swarm_deserializer, #handle_name)
            }
        }
    }
}

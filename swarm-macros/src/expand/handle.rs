//! The typed handle `<Agent>Ref`: one method per handler, plus everything in `AgentHandle`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{handle_ident, message_ident, private};
use crate::agent_impl::AgentImpl;

pub(crate) fn expand(model: &AgentImpl) -> TokenStream {
    let p = private();
    let agent = &model.agent;
    let message = message_ident(agent);
    let handle = handle_ident(agent);
    let serde_path = quote!(#p::serde).to_string();

    let methods = model.handlers.iter().map(|handler| {
        let method = &handler.method;
        let variant = &handler.variant;
        let vis = &handler.vis;
        let docs = &handler.docs;
        // A blank doc line separates the user's docs from ours, only when there are some.
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        let name = method.to_string();
        let names: Vec<_> = handler.args.iter().map(|(name, _)| name).collect();
        let tys = handler.args.iter().map(|(_, ty)| ty);
        let build = quote!(#message::#variant { #(#names,)* });
        match &handler.output {
            Some(output) => {
                let request = quote_spanned!(output.span()=> self.0.request(#name, #build));
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
                        self.0.send(#name, #build)
                    }
                }
            }
        }
    });

    let doc = format!("A handle to a running [`{agent}`]: one method per `#[handler]`.");
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug, PartialEq, #p::serde::Serialize, #p::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #[allow(private_interfaces)]
        pub struct #handle(#p::AgentRef<#agent>);

        impl #p::AgentHandle for #handle {
            type Agent = #agent;

            fn raw(&self) -> &#p::AgentRef<#agent> {
                &self.0
            }

            fn from_raw(raw: #p::AgentRef<#agent>) -> Self {
                Self(raw)
            }
        }

        impl #handle {
            #(#methods)*
        }
    }
}

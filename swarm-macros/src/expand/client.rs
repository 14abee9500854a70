//! The native side of `#[agent]`: in a build for any target but `wasm32`, the agent is not a
//! Lunatic process but a typed async client, `<Agent>Client`, on `swarm::client` (async-nats).
//! From the struct: the client type and `<Agent>::client(&client)`; from the impl block: one
//! `async` method per handler, with the handler's own argument and return types, so that a
//! changed signature breaks the caller's build on both sides.
//!
//! Everything here goes through `swarm::__private::native_agent!` / `native_handlers!`: with
//! swarm's `client` feature they emit it as it is; without it the struct's one reports that
//! agents are built for Lunatic or called through the feature (one error per agent, instead of
//! a cascade of missing runtime items), and the impl block's emits nothing.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Ident;

use super::private;
use crate::agent_impl::AgentImpl;
use crate::agent_struct::AgentStruct;

/// `ChatRoom` -> `ChatRoomClient`.
pub(crate) fn client_ident(agent: &Ident) -> Ident {
    format_ident!("{}Client", agent)
}

/// The items only a native build has (see the module's docs), behind their `cfg`.
fn native(macro_name: &str, items: TokenStream) -> TokenStream {
    let p = private();
    let name = format_ident!("{}", macro_name);
    quote! {
        #[cfg(not(target_arch = "wasm32"))]
        #p::#name! { #items }
    }
}

/// From the struct: the client type, its `TypedClient` impl, and `<Agent>::client`.
pub(crate) fn expand_struct(model: &AgentStruct) -> TokenStream {
    native("native_agent", struct_items(model))
}

/// From the impl block: one `async` method per handler on the client.
pub(crate) fn expand_impl(model: &AgentImpl) -> TokenStream {
    native("native_handlers", impl_items(model))
}

/// [`expand_struct`]'s items, unwrapped.
pub(crate) fn struct_items(model: &AgentStruct) -> TokenStream {
    let p = private();
    let agent = &model.item.ident;
    let vis = &model.item.vis;
    let kind = model.kind.as_str();
    let client = client_ident(agent);
    let client_name = client.to_string();
    let key_ty = match model.key() {
        Some(key) => {
            let ty = &key.ty;
            quote!(#ty)
        }
        None => quote!(()),
    };
    let doc = format!(
        "Calls one [`{agent}`] (kind `{kind}`) through NATS from a native program: one `async` \
         method per `#[handler]`. Made by [`{agent}::client`]`(&client).key(..)`."
    );
    // An agent without a `#[key]` cannot be addressed through NATS (the front door needs a
    // key), so it has no `client()`; the type still exists for its handlers' methods.
    let constructor = model.key().is_some().then(|| {
        let doc = format!(
            "The `{kind}` agents served in `client`'s namespace: pick one with `.key(..)`."
        );
        quote! {
            impl #agent {
                #[doc = #doc]
                #[allow(dead_code)]
                pub fn client(client: &#p::client::Client) -> #p::client::KindClient<#client> {
                    #p::client::KindClient::new(client)
                }
            }
        }
    });
    quote! {
            #[doc = #doc]
            #vis struct #client {
                __swarm_agent: #p::client::AgentClient,
            }

            #[automatically_derived]
            impl #p::client::TypedClient for #client {
                type Key = #key_ty;
                const KIND: &'static str = #kind;

                fn from_agent(__swarm_agent: #p::client::AgentClient) -> Self {
                    Self { __swarm_agent }
                }
            }

            #[automatically_derived]
            impl #p::Clone for #client {
                fn clone(&self) -> Self {
                    Self { __swarm_agent: #p::Clone::clone(&self.__swarm_agent) }
                }
            }

            #[automatically_derived]
            impl #p::Debug for #client {
                fn fmt(&self, __swarm_f: &mut #p::fmt::Formatter<'_>) -> #p::fmt::Result {
                    __swarm_f.debug_tuple(#client_name).field(&self.__swarm_agent).finish()
                }
            }

            #constructor
    }
}

/// [`expand_impl`]'s items, unwrapped.
pub(crate) fn impl_items(model: &AgentImpl) -> TokenStream {
    let p = private();
    let agent = &model.agent;
    let client = client_ident(agent);
    let methods = model.handlers.iter().map(|handler| {
        let method = &handler.method;
        let vis = &handler.vis;
        let docs = &handler.docs;
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        let name = method.to_string();
        let names: Vec<_> = handler.args.iter().map(|arg| &arg.name).collect();
        let tys = handler.args.iter().map(|arg| &arg.ty);
        // Each argument at its type's span: one that is not `Serialize` is reported there.
        let args = handler.args.iter().map(|arg| {
            let (ident, ty) = (&arg.name, &arg.ty);
            let field = ident.to_string();
            quote_spanned!(ty.span()=> .arg(#field, &#ident))
        });
        let build = quote!(#p::client::AgentClient::args() #(#args)*);
        match &handler.output {
            Some(output) => {
                let doc = format!(
                    "Calls [`{agent}::{method}`] on the agent's node and waits for its answer \
                     (at most the client's timeout)."
                );
                let request = quote_spanned!(output.span()=> self.__swarm_agent.request::<#output>(#name, #build).await);
                quote! {
                    #(#docs)*
                    #separator
                    #[doc = #doc]
                    #[allow(dead_code)]
                    #vis async fn #method(&self, #(#names: #tys),*) -> #p::Result<#output, #p::CallError> {
                        #request
                    }
                }
            }
            None => {
                let doc = format!(
                    "Publishes [`{agent}::{method}`] without waiting; `Ok` means it is on its way \
                     to the NATS server."
                );
                quote! {
                    #(#docs)*
                    #separator
                    #[doc = #doc]
                    #[allow(dead_code)]
                    #vis async fn #method(&self, #(#names: #tys),*) -> #p::Result<(), #p::CallError> {
                        self.__swarm_agent.publish(#name, #build).await
                    }
                }
            }
        }
    });
    quote! {
        impl #client {
            #(#methods)*
        }
    }
}

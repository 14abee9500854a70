//! From a `supervisor!` declaration: the supervisor type (its spec, `start`, `start_link`), its
//! use as a child of another supervisor, and the typed handle with one method per child.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{private, private_at};
use crate::supervisor_def::{ChildDef, ChildDefKind, Restart, Strategy, SupervisorDef};

/// A validated declaration: every item, with the spec built from its strategy and children.
pub(crate) fn expand(def: &SupervisorDef) -> TokenStream {
    items(def, def.children.iter().collect(), spec_body(def))
}

/// The body of `spec()`: strategy, restart intensity and children, in start order.
fn spec_body(def: &SupervisorDef) -> TokenStream {
    let p = private();
    let sv = quote!(#p::supervisor);
    let name_text = def.name.to_string();
    let strategy = match def.strategy {
        Some(Strategy::OneForOne) => quote!(#sv::Strategy::OneForOne),
        Some(Strategy::OneForAll) => quote!(#sv::Strategy::OneForAll),
        Some(Strategy::RestForOne) => quote!(#sv::Strategy::RestForOne),
        // Reported while parsing: such a declaration goes to the fallback, not here.
        None => return quote!(#p::unreachable!()),
    };
    let max_restarts = def.max_restarts;
    let (within_secs, _) = def.within_secs;
    let specs = def.children.iter().map(|child| {
        let child_name = child.name.to_string();
        let restart = match child.restart {
            Some(Restart::Permanent) => quote!(#sv::Restart::Permanent),
            Some(Restart::Transient) => quote!(#sv::Restart::Transient),
            Some(Restart::Temporary) => quote!(#sv::Restart::Temporary),
            // Reported while parsing, as for the strategy.
            None => quote!(#p::unreachable!()),
        };
        let span = child_ty(child).span();
        let sv = {
            let p = private_at(span);
            quote_spanned!(span=> #p::supervisor)
        };
        let spec = match &child.kind {
            ChildDefKind::Keyed { ty, key } => {
                quote_spanned!(ty.span()=> <#ty as #sv::SupervisableKeyed>::child_spec(#child_name, #key))
            }
            ChildDefKind::Bare { ty } => quote_spanned!(ty.span()=> <#ty as #sv::Supervisable>::child_spec(#child_name)),
            ChildDefKind::Pool { ty, size, .. } => quote_spanned!(ty.span()=> #sv::ChildSpec::pool::<#ty>(#child_name, #size)),
        };
        quote!(#spec.restart(#restart))
    });
    quote! {
        #sv::SupervisorSpec {
            name: #p::String::from(#name_text),
            strategy: #strategy,
            max_restarts: #max_restarts,
            within: #p::Duration::from_secs(#within_secs),
            children: #p::Vec::from([#(#specs),*]),
        }
    }
}

/// The supervisor type, its `Supervisable` impl and its handle with one method per child of
/// `children`; `spec()` returns `spec`. Shared with the fallback, whose `spec` is a stand-in.
pub(crate) fn items(
    def: &SupervisorDef,
    children: Vec<&ChildDef>,
    spec: TokenStream,
) -> TokenStream {
    let p = private();
    let sv = quote!(#p::supervisor);
    let SupervisorDef {
        attrs, vis, name, ..
    } = def;
    let handle = format_ident!("{}Ref", name);

    let accessors = children.iter().map(|child| {
        let method = &child.name;
        let child_name = child.name.to_string();
        // Paths spanned at the child's type too, so that a type that cannot be this child is
        // reported there (once), not at the whole `supervisor!`.
        let span = child_ty(child).span();
        let p = private_at(span);
        let sv = quote_spanned!(span=> #p::supervisor);
        match &child.kind {
            ChildDefKind::Keyed { ty, .. } => {
                let doc = format!("The agent child `{child_name}` as it runs now (ask again after a restart).");
                quote_spanned! {ty.span()=>
                    #[doc = #doc]
                    pub fn #method(&self) -> #p::Result<<#ty as #p::AgentBehavior>::Handle, #sv::SupervisorError> {
                        self.0.agent::<#ty>(#child_name)
                    }
                }
            }
            ChildDefKind::Bare { ty } => {
                let doc = format!("The child `{child_name}` as it runs now (ask again after a restart).");
                quote_spanned! {ty.span()=>
                    #[doc = #doc]
                    pub fn #method(&self) -> #p::Result<<#ty as #sv::Supervisable>::Handle, #sv::SupervisorError> {
                        <#ty as #sv::Supervisable>::child_handle(&self.0, #child_name)
                    }
                }
            }
            ChildDefKind::Pool { ty, .. } => {
                let doc = format!("The pool `{child_name}`: `pick()` a member, round robin.");
                quote_spanned! {ty.span()=>
                    #[doc = #doc]
                    pub fn #method(&self) -> #sv::PoolRef<#ty> {
                        self.0.pool::<#ty>(#child_name)
                    }
                }
            }
        }
    });

    let serde_path = quote!(#p::serde).to_string();
    let handle_doc = format!("A handle to a running [`{name}`]: one method per child.");
    quote! {
        #(#attrs)*
        #[derive(#p::Debug, #p::Clone, #p::Copy, #p::PartialEq, #p::Eq)]
        #vis struct #name;

        impl #name {
            /// The supervisor's specification: strategy, restart intensity and children, in start order.
            pub fn spec() -> #sv::SupervisorSpec {
                #spec
            }

            /// Starts the supervisor and, in order, its children; returns once all have started.
            pub fn start() -> #p::Result<#handle, #sv::SupervisorError> {
                #sv::start(Self::spec()).map(#handle)
            }

            /// As [`Self::start`], linked to the calling process.
            pub fn start_link() -> #p::Result<#handle, #sv::SupervisorError> {
                #sv::start_link(Self::spec()).map(#handle)
            }
        }

        #[automatically_derived]
        impl #sv::Supervisable for #name {
            type Handle = #handle;

            fn child_spec(name: &str) -> #sv::ChildSpec {
                #sv::ChildSpec::supervisor(name, Self::spec())
            }

            fn child_handle(parent: &#sv::SupervisorRef, name: &str) -> #p::Result<#handle, #sv::SupervisorError> {
                parent.supervisor(name).map(#handle)
            }
        }

        #[doc = #handle_doc]
        #[derive(#p::Debug, #p::Clone, #p::PartialEq, #p::Eq, #p::serde::Serialize, #p::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis struct #handle(pub #sv::SupervisorRef);

        impl #handle {
            #(#accessors)*

            /// The underlying supervisor handle: stats, shutdown, liveness.
            pub fn supervisor(&self) -> &#sv::SupervisorRef {
                &self.0
            }
        }
    }
}

fn child_ty(child: &ChildDef) -> &syn::Path {
    match &child.kind {
        ChildDefKind::Keyed { ty, .. }
        | ChildDefKind::Bare { ty }
        | ChildDefKind::Pool { ty, .. } => ty,
    }
}

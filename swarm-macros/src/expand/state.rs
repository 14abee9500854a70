//! From the struct: the `AgentState` impl (key, persisted fields, fresh instances), the typed
//! handle `<Agent>Ref` (declared here, where the struct's visibility is known: the handle takes
//! it, so a private agent has a private handle; its methods come from the impl block, see
//! [`super::handle`]), and the associated functions that start and find agents.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{handle_ident, private, private_at};
use crate::agent_struct::AgentStruct;

pub(crate) fn expand(model: &AgentStruct) -> TokenStream {
    let p = private();
    let item = &model.item;
    let agent = &item.ident;
    let vis = &item.vis;
    let kind = model.kind.as_str();
    let key = model.key();
    let persisted: Vec<_> = model.persisted().collect();
    let keyed = key.is_some();
    let persists = !persisted.is_empty();
    let millis = |option: Option<(u64, proc_macro2::Span)>| match option {
        Some((millis, _)) => quote!(#p::Option::Some(#p::Duration::from_millis(#millis))),
        None => quote!(#p::Option::None),
    };
    let passivate_after = millis(model.passivate_after);
    let message_budget = millis(model.message_budget);
    let max_memory = match model.max_memory {
        Some((bytes, _)) => quote!(#p::Option::Some(#bytes)),
        None => quote!(#p::Option::None),
    };
    let mailbox = match model.mailbox {
        Some((bound, _)) => {
            let bound = bound as usize;
            quote!(#p::Option::Some(#bound))
        }
        None => quote!(#p::Option::None),
    };

    let persistence = match (model.persistence, model.save_every) {
        (Some((crate::attr::Persistence::WriteBehind, _)), Some((every, _))) => quote!(
            #p::Persistence::WriteBehind { every: #p::Duration::from_millis(#every) }
        ),
        // Write-through, also the stand-in for a write-behind without `save_every` (an error).
        _ => quote!(#p::Persistence::WriteThrough),
    };

    // Checked to be within 1..=u32::MAX; a rejected one (the fallback) stands in as 1.
    let state_version = model
        .state_version
        .and_then(|(version, _)| u32::try_from(version).ok())
        .filter(|&version| version >= 1)
        .unwrap_or(1);

    // Only for a version above 1 (which needs steps): an agent without an impl block is then
    // reported once, by the handle, not a second time here.
    let steps_check = model
        .state_version
        .filter(|_| state_version > 1 && !model.stand_in)
        .map(|(_, span)| {
        let last = state_version - 1;
        let message = if last == 1 {
            format!(
                "`state_version = 2` needs a `#[migrate(from = 1)]` step in `{agent}`'s #[agent] \
                 impl block, which has none: add it, so records of version 1 can be upgraded"
            )
        } else {
            format!(
                "`state_version = {state_version}` needs a #[migrate] step from each older \
                 version, 1 to {last}, in `{agent}`'s #[agent] impl block, and its steps stop \
                 short of {last}: add the missing ones, up to `#[migrate(from = {last})]`, so \
                 its older records can be upgraded"
            )
        };
        let p = private_at(span);
        quote_spanned! {span=>
            const _: () = #p::assert!(
                #p::record::steps_reach(<#agent as #p::AgentBehavior>::LAST_MIGRATION, #state_version),
                #message
            );
        }
    });

    let key_ty = match key {
        Some(key) => {
            let ty = &key.ty;
            quote!(#ty)
        }
        None => quote!(()),
    };
    let key_init = key.map(|key| {
        let ident = &key.ident;
        quote!(#ident: __swarm_key,)
    });
    let default_inits = persisted
        .iter()
        .copied()
        .chain(model.ephemeral())
        .map(|field| {
            let ident = &field.ident;
            let ty = &field.ty;
            quote_spanned!(ty.span()=> #ident: <#ty as #p::Default>::default(),)
        });
    let key_ref = match key {
        Some(key) => {
            let ident = &key.ident;
            quote!(&self.#ident)
        }
        None => quote!(&()),
    };
    let unused_key = (!keyed).then(|| quote!(let () = __swarm_key;));
    let from_key = if model.named_fields {
        quote! {
            #unused_key
            Self { #key_init #(#default_inits)* }
        }
    } else {
        // The fallback's stand-in for a tuple or unit struct (rejected): never built.
        quote!(#p::unreachable!("a rejected #[agent] struct is never compiled"))
    };

    let persisted_idents: Vec<_> = persisted.iter().map(|f| &f.ident).collect();
    // Field types keep the user's spans, so "not Serialize" errors point at the field's type.
    let ref_fields = persisted.iter().map(|f| {
        let (ident, ty) = (&f.ident, &f.ty);
        quote_spanned!(ty.span()=> #ident: &'__swarm #ty,)
    });
    let by_ref_name = format!("{agent}Persisted");
    // The record's member names, as `serialize_fields` writes them.
    let persisted_names: Vec<String> = persisted.iter().map(|f| f.ident.to_string()).collect();
    let field_count = persisted.len();
    let serialize_fields = persisted.iter().map(|f| {
        let (ident, ty) = (&f.ident, &f.ty);
        let name = ident.to_string();
        quote_spanned!(ty.span()=> __swarm_struct.serialize_field(#name, self.#ident)?;)
    });
    // Missing members (fields added after the record was written) stay as `from_key` made them,
    // that is `Default`; `Option` keeps serde from asking for `Default` a second time.
    let owned_fields = persisted.iter().map(|f| {
        let (ident, ty) = (&f.ident, &f.ty);
        let p = private_at(ty.span());
        quote_spanned!(ty.span()=> #[serde(default)] #ident: #p::Option<#ty>,)
    });
    let by_ref = format_ident!("__Swarm{}PersistedRef", agent);
    let owned = format_ident!("__Swarm{}Persisted", agent);
    let serde_path = quote!(#p::serde).to_string();

    let handle = handle_ident(agent);
    // Each body goes through `keyed::<Self>()` or `unkeyed::<Self>()` (see swarm's
    // `generated.rs`) and each signature names the handle itself, not `AgentBehavior::Handle`:
    // without an `#[agent]` impl block, the one unmet bound is then reported once.
    let launch = keyed.then(|| {
        quote! {
            /// The single live agent with this key: found in the node's registry, or started
            /// (loading its persisted state) if none is running.
            #[allow(dead_code)]
            pub fn get_or_start(key: impl #p::Into<#key_ty>) -> #p::Result<#handle, #p::StartError> {
                (#p::keyed::<Self>().get_or_start)(#p::Into::into(key))
            }

            /// The live agent with this key, if one is running.
            #[allow(dead_code)]
            pub fn lookup(key: impl #p::Into<#key_ty>) -> #p::Option<#handle> {
                (#p::keyed::<Self>().lookup)(#p::Into::into(key))
            }
        }
    });
    let start = (!keyed).then(|| {
        quote! {
            /// Starts a new agent of this kind (agents without a `#[key]` are not registered:
            /// every call starts another one).
            #[allow(dead_code)]
            pub fn start() -> #p::Result<#handle, #p::StartError> {
                (#p::unkeyed::<Self>().start)()
            }
        }
    });

    // How the agent can be a child of a `supervisor!`.
    let supervisable = if keyed {
        quote! {
            #[automatically_derived]
            impl #p::supervisor::SupervisableKeyed for #agent {
                type ChildKey = #key_ty;
            }
        }
    } else {
        quote! {
            #[automatically_derived]
            impl #p::supervisor::Poolable for #agent {}

            #[automatically_derived]
            impl #p::supervisor::Supervisable for #agent {
                type Handle = #handle;

                fn child_spec(name: &str) -> #p::supervisor::ChildSpec {
                    (#p::unkeyed::<Self>().child_spec)(name)
                }

                fn child_handle(
                    parent: &#p::supervisor::SupervisorRef,
                    name: &str,
                ) -> #p::Result<#handle, #p::supervisor::SupervisorError> {
                    (#p::unkeyed::<Self>().child_handle)(parent, name)
                }
            }
        }
    };

    let handle_doc = format!("A handle to a running [`{agent}`]: one method per `#[handler]`.");
    // Spanned at the struct's name: without an `#[agent]` impl block this is where it is missed.
    let handle_field = {
        let p = private_at(agent.span());
        quote_spanned!(agent.span()=> #p::AgentRef<#agent>)
    };

    quote! {
        #supervisable

        #[doc = #handle_doc]
        #vis struct #handle {
            __swarm_raw: #handle_field,
        }

        const _: () = {
            struct #by_ref<'__swarm> {
                #(#ref_fields)*
                __swarm_lifetime: #p::PhantomData<&'__swarm ()>,
            }

            // Written out rather than derived, so that a field type that is not `Serialize` is
            // reported at that type, not at `#[agent]`.
            #[automatically_derived]
            impl #p::serde::Serialize for #by_ref<'_> {
                fn serialize<__S: #p::serde::Serializer>(&self, __swarm_serializer: __S) -> #p::Result<__S::Ok, __S::Error> {
                    use #p::serde::ser::SerializeStruct as _;
                    #[allow(unused_mut)]
                    let mut __swarm_struct = __swarm_serializer.serialize_struct(#by_ref_name, #field_count)?;
                    #(#serialize_fields)*
                    __swarm_struct.end()
                }
            }

            #[derive(#p::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct #owned {
                #(#owned_fields)*
            }

            #[automatically_derived]
            impl #p::AgentState for #agent {
                const KIND: &'static str = #kind;
                const KEYED: bool = #keyed;
                const PERSISTS: bool = #persists;
                const PASSIVATE_AFTER: #p::Option<#p::Duration> = #passivate_after;
                const MESSAGE_BUDGET: #p::Option<#p::Duration> = #message_budget;
                const MAX_MEMORY: #p::Option<u64> = #max_memory;
                const MAILBOX: #p::Option<usize> = #mailbox;
                const PERSISTENCE: #p::Persistence = #persistence;
                const STATE_VERSION: u32 = #state_version;
                const PERSISTED_FIELDS: &'static [&'static str] = &[#(#persisted_names),*];
                type Key = #key_ty;

                fn from_key(__swarm_key: #key_ty) -> Self {
                    #from_key
                }

                fn key(&self) -> &#key_ty {
                    #key_ref
                }

                fn encode_persisted(&self) -> #p::Result<#p::Vec<u8>, #p::String> {
                    #p::record::encode_versioned(&#by_ref {
                        #(#persisted_idents: &self.#persisted_idents,)*
                        __swarm_lifetime: #p::PhantomData,
                    }, Self::STATE_VERSION)
                }

                fn restore_persisted(&mut self, __swarm_record: &[u8]) -> #p::Result<(), #p::record::RecordError> {
                    let __swarm_fields: #owned = #p::record::decode(__swarm_record)?;
                    #(
                        if let #p::Option::Some(__swarm_value) = __swarm_fields.#persisted_idents {
                            self.#persisted_idents = __swarm_value;
                        }
                    )*
                    #p::Result::Ok(())
                }
            }
        };

        #steps_check

        impl #agent {
            #launch
            #start

            /// Starts or finds agents of this kind with options, such as another store.
            #[allow(dead_code)]
            pub fn launcher() -> #p::Launcher<Self> {
                #p::Launcher::default()
            }
        }
    }
}

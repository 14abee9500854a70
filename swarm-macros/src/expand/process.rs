//! The Lunatic process: the dispatch from message variants to the user's methods, and the
//! `AbstractProcess` impl that types the agent's `ProcessRef` (the runtime starts and runs agents
//! with its own loop, `swarm::runtime::agent::start`, which speaks the same protocol but cannot
//! panic its caller). Everything generic is in `swarm::runtime::agent`; this is only what depends
//! on the user's types.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use super::{message_ident, private, private_at, schema};
use crate::agent_impl::AgentImpl;

pub(crate) fn expand(model: &AgentImpl) -> TokenStream {
    let p = private();
    let agent = &model.agent;
    let message = message_ident(agent);
    let lunatic = quote!(#p::lunatic);

    let arms = model.handlers.iter().map(|handler| {
        let variant = &handler.variant;
        let method = &handler.method;
        let names: Vec<_> = handler.args.iter().map(|arg| &arg.name).collect();
        let (access, mutates) = if handler.mutates() {
            (quote!(__swarm_cell.agent_mut()), quote!(true))
        } else {
            (quote!(__swarm_cell.agent()), quote!(false))
        };
        // A reply type that is not serde is reported at the handler's return type.
        let finish = match &handler.output {
            Some(output) => quote_spanned!(output.span()=> __swarm_cell.finish(#mutates, __swarm_reply_to, __swarm_answer)),
            None => quote!(__swarm_cell.finish(#mutates, __swarm_reply_to, __swarm_answer)),
        };
        quote! {
            #message::#variant { #(#names,)* } => {
                let __swarm_answer = #access.#method(#(#names,)*);
                #finish;
            }
        }
    });

    let on_start = model.on_start.first().map(|hook| {
        let method = &hook.method;
        quote_spanned! {method.span()=>
            fn on_start(&mut self) -> #p::Result<(), #p::String> {
                #p::IntoHookResult::into_hook_result(self.#method())
            }
        }
    });
    let on_stop = model.on_stop.first().map(|hook| {
        let method = &hook.method;
        quote!(fn on_stop(&mut self) { self.#method() })
    });

    // At the user's `impl Agent`, where a missing `#[agent]` on the struct is reported.
    let agent_impl = {
        let span = model.item.self_ty.span();
        let p = private_at(span);
        quote_spanned!(span=> impl #p::Agent for #agent {})
    };

    let infos = model.handlers.iter().map(|handler| {
        let name = handler.method.to_string();
        let variant = handler.variant.to_string();
        let request = handler.output.is_some();
        quote!(#p::HandlerInfo { name: #name, variant: #variant, request: #request })
    });

    let (subjects, subject_checks) = subjects(model);

    // `#[agent(schema)]`: the handlers' JSON Schemas, for the services API.
    let schemas = schema::expand(model);
    let (migrate, version_checks) = migrations(model);

    quote! {
        #[automatically_derived]
        impl #p::AgentBehavior for #agent {
            type Msg = #message;
            type Handle = __SwarmHandle;
            const HANDLERS: &'static [#p::HandlerInfo] = &[#(#infos),*];

            #[allow(unused_variables)]
            fn handle(
                __swarm_cell: &mut #p::AgentCell<Self>,
                __swarm_message: #message,
                __swarm_reply_to: #p::Option<#p::ReplyTo>,
            ) {
                match __swarm_message {
                    #(#arms)*
                }
            }

            #on_start
            #on_stop
            #schemas
            #migrate
            #subjects
        }

        #version_checks
        #subject_checks

        #[automatically_derived]
        #agent_impl

        #[automatically_derived]
        impl #lunatic::ap::AbstractProcess for #agent {
            type State = #p::AgentCell<Self>;
            type Serializer = #p::Wire;
            type Arg = #p::AgentArg;
            type Handlers = (#lunatic::ap::handlers::Message<#p::Envelope<#message>>,);
            type StartupError = #p::StartError;

            fn init(
                _: #lunatic::ap::Config<Self>,
                __swarm_arg: #p::AgentArg,
            ) -> #p::Result<#p::AgentCell<Self>, #p::StartError> {
                #p::init::<Self>(__swarm_arg)
            }

            fn terminate(__swarm_cell: #p::AgentCell<Self>) {
                #p::terminate::<Self>(__swarm_cell)
            }
        }

        #[automatically_derived]
        impl #lunatic::ap::MessageHandler<#p::Envelope<#message>> for #agent {
            fn handle(__swarm_state: #lunatic::ap::State<Self>, __swarm_envelope: #p::Envelope<#message>) {
                #p::serve::<Self>(__swarm_state, __swarm_envelope)
            }
        }
    }
}

/// The `#[migrate]` steps: the `migrate` dispatch, and the compile-time check that no step is at
/// or past the struct's `state_version` (known to the struct's macro only, so checked as a
/// constant, whose error points at the step's `from`). That the steps reach `state_version` is
/// checked on the struct's side, at its `state_version` (see `state::expand`).
fn migrations(model: &AgentImpl) -> (TokenStream, TokenStream) {
    let p = private();
    if model.stand_in {
        return (
            quote!(const LAST_MIGRATION: #p::Option<u32> = #p::Option::None;),
            TokenStream::new(),
        );
    }
    let agent = &model.agent;
    let version = quote!(<#agent as #p::AgentState>::STATE_VERSION);
    let mut checks = Vec::new();
    for step in &model.migrations {
        let from = step.from as u32;
        let message = format!(
            "`#[migrate(from = {from})]` is at or past the agent's `state_version` (on its \
             struct's #[agent]): a step upgrades records of an older version to the next one, so \
             `from` must be below `state_version`. Raise `state_version` to {} or remove this step",
            from + 1
        );
        let p = private_at(step.from_span);
        checks.push(quote_spanned! {step.from_span=>
            const _: () = #p::assert!(#from < #version, #message);
        });
    }
    if model.migrations.is_empty() {
        return (TokenStream::new(), quote!(#(#checks)*));
    }
    let last = model
        .migrations
        .iter()
        .map(|step| step.from as u32)
        .max()
        .unwrap_or(0);
    let arms = model.migrations.iter().map(|step| {
        let from = step.from as u32;
        let method = &step.sig.ident;
        let runner = if step.fallible() {
            quote!(fallible_migration_step)
        } else {
            quote!(migration_step)
        };
        // At the step's argument type: a type that is not serde is reported there.
        let span = step.input().map_or(method.span(), |ty| ty.span());
        let at = private_at(span);
        quote_spanned! {span=>
            #from => #at::record::#runner(Self::#method, __swarm_fields),
        }
    });
    let migrate = quote! {
        const LAST_MIGRATION: #p::Option<u32> = #p::Option::Some(#last);

        fn migrate(
            __swarm_version: u32,
            __swarm_fields: #p::record::Fields,
        ) -> #p::Result<#p::record::Fields, #p::String> {
            match __swarm_version {
                #(#arms)*
                __swarm_other => #p::record::no_migration_step(__swarm_other),
            }
        }
    };
    (migrate, quote!(#(#checks)*))
}

/// The handlers bound to subjects (`#[handler(subject = "..")]`): the `SUBJECTS` table the runtime
/// subscribes from, and the compile-time check that the agent has a `#[key]` (known to the
/// struct's macro only, so checked as a constant, whose error points at the subject).
fn subjects(model: &AgentImpl) -> (TokenStream, TokenStream) {
    let p = private();
    let agent = &model.agent;
    let mut bindings = Vec::new();
    let mut checks = Vec::new();
    for (index, handler) in model.handlers.iter().enumerate() {
        let Some((text, span)) = &handler.subject else {
            continue;
        };
        // Validated already: an invalid pattern never reaches expansion.
        let Ok(pattern) = crate::valid::subject::check(text) else {
            continue;
        };
        let subscribe = pattern.subscribe;
        let key_token = pattern.key_token;
        let argument = handler
            .args
            .first()
            // As serde names the field: `r#type` is `type`.
            .map(|arg| arg.name.unraw().to_string())
            .unwrap_or_default();
        let stream = match &handler.stream {
            Some((name, _)) => quote!(#p::Option::Some(#name)),
            None => quote!(#p::Option::None),
        };
        bindings.push(quote! {
            #p::SubjectBinding {
                handler: #index,
                subject: #subscribe,
                key_token: #key_token,
                argument: #argument,
                stream: #stream,
            }
        });
        let message = format!(
            "`#[handler(subject = {text:?})]` needs an agent with a #[key]: the subject's `{{key}}` \
             token picks the agent a message goes to. Add one to the struct, such as `#[key] id: \
             String`"
        );
        // `assert!` reads its message as a format string.
        let message = message.replace('{', "{{").replace('}', "}}");
        let at = private_at(*span);
        checks.push(quote_spanned! {*span=>
            const _: () = #at::assert!(<#agent as #at::AgentState>::KEYED, #message);
        });
    }
    if bindings.is_empty() {
        return (TokenStream::new(), TokenStream::new());
    }
    (
        quote!(const SUBJECTS: &'static [#p::SubjectBinding] = &[#(#bindings),*];),
        quote!(#(#checks)*),
    )
}

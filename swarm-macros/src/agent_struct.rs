//! `#[agent]` on a struct: the model of an agent's state, as the user wrote it. Parsing only;
//! whether the model makes sense is [`crate::valid::agent_struct`]'s question.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Fields, Ident, ItemStruct, Type};

use crate::attr::{self, Marker, Persistence};
use crate::case;
use crate::ctxt::Ctxt;

/// A named field of the agent struct, with the swarm markers it carried.
pub(crate) struct StateField {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) markers: Vec<(Marker, Attribute)>,
}

impl StateField {
    /// The attribute of `marker` on this field, if it has one.
    pub(crate) fn marker(&self, marker: Marker) -> Option<&Attribute> {
        self.markers
            .iter()
            .find(|(m, _)| *m == marker)
            .map(|(_, attr)| attr)
    }
}

/// The agent kind: given with `kind = ".."` (with the literal's span, for errors) or derived
/// from the struct's name.
pub(crate) enum Kind {
    Given(String, Span),
    FromName(String),
}

impl Kind {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Kind::Given(kind, _) | Kind::FromName(kind) => kind,
        }
    }
}

/// The model of an agent struct.
pub(crate) struct AgentStruct {
    /// The struct as the user wrote it, swarm's attributes removed.
    pub(crate) item: ItemStruct,
    pub(crate) kind: Kind,
    /// `passivate_after = ".."`: milliseconds, and the literal's span.
    pub(crate) passivate_after: Option<(u64, Span)>,
    /// `message_budget = ".."`: milliseconds, and the literal's span.
    pub(crate) message_budget: Option<(u64, Span)>,
    /// `max_memory = ".."`: bytes, and the literal's span.
    pub(crate) max_memory: Option<(u64, Span)>,
    /// `mailbox = N`: the bound, and the literal's span.
    pub(crate) mailbox: Option<(u64, Span)>,
    /// `persistence = ".."`: the strategy, and the literal's span.
    pub(crate) persistence: Option<(Persistence, Span)>,
    /// `save_every = ".."`: milliseconds, and the literal's span.
    pub(crate) save_every: Option<(u64, Span)>,
    /// `state_version = N`: the version of the persisted fields, and the literal's span.
    pub(crate) state_version: Option<(u64, Span)>,
    /// Set by the fallback for a rejected struct: its stand-in does not check that the impl
    /// block's `#[migrate]` steps reach `state_version` (that would be a second error).
    pub(crate) stand_in: bool,
    /// An option was refused, so the model lacks its value (see `attr::StructOptions`).
    pub(crate) options_incomplete: bool,
    /// Every named field in order, markers included.
    pub(crate) fields: Vec<StateField>,
    /// False for a tuple or unit struct (an error already): it is modelled without fields, so
    /// that the fallback can still stand in for the agent's state side, but it has no fields
    /// #[key] and #[persist] could name, and no stand-in can build one.
    pub(crate) named_fields: bool,
}

impl AgentStruct {
    /// The first `#[key]` field: the agent's identity.
    pub(crate) fn key(&self) -> Option<&StateField> {
        self.fields.iter().find(|f| f.marker(Marker::Key).is_some())
    }

    /// The `#[persist]` fields, saved and reloaded (the key is never one of them).
    pub(crate) fn persisted(&self) -> impl Iterator<Item = &StateField> {
        let key = self.key().map(|f| &f.ident);
        self.fields
            .iter()
            .filter(move |f| Some(&f.ident) != key && f.marker(Marker::Persist).is_some())
    }

    /// Every other field: back to `Default` on each start. A second `#[key]` (already an error)
    /// lands here, so a stand-in expansion still builds the struct.
    pub(crate) fn ephemeral(&self) -> impl Iterator<Item = &StateField> {
        let key = self.key().map(|f| &f.ident);
        self.fields
            .iter()
            .filter(move |f| Some(&f.ident) != key && f.marker(Marker::Persist).is_none())
    }
}

/// Parses `#[agent(args)]` on `item` into a model, pushing what cannot be parsed to `cx`.
///
/// A tuple or unit struct, whose fields #[key] and #[persist] cannot name, is an error here and
/// a model without fields (see [`AgentStruct::named_fields`]).
pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, mut item: ItemStruct) -> AgentStruct {
    let options = attr::parse_struct_options(cx, args);
    let kind = match options.kind {
        Some((kind, span)) => Kind::Given(kind, span),
        None => Kind::FromName(case::kebab(&item.ident.to_string())),
    };

    let named_fields = matches!(item.fields, Fields::Named(_));
    let fields = match &mut item.fields {
        Fields::Named(named) => named
            .named
            .iter_mut()
            .filter_map(|field| {
                let markers = attr::take_markers(cx, &mut field.attrs);
                Some(StateField {
                    ident: field.ident.clone()?,
                    ty: field.ty.clone(),
                    markers,
                })
            })
            .collect(),
        Fields::Unnamed(unnamed) => {
            for field in unnamed.unnamed.iter_mut() {
                attr::take_markers(cx, &mut field.attrs);
            }
            cx.error_at(&item.ident, NEEDS_NAMED_FIELDS);
            Vec::new()
        }
        Fields::Unit => {
            cx.error_at(&item.ident, NEEDS_NAMED_FIELDS);
            Vec::new()
        }
    };
    AgentStruct {
        item,
        kind,
        passivate_after: options.passivate_after,
        message_budget: options.message_budget,
        max_memory: options.max_memory,
        mailbox: options.mailbox,
        persistence: options.persistence,
        save_every: options.save_every,
        state_version: options.state_version,
        stand_in: false,
        options_incomplete: options.incomplete,
        fields,
        named_fields,
    }
}

const NEEDS_NAMED_FIELDS: &str =
    "#[agent] needs a struct with named fields (`struct Counter { total: u64 }`), \
     so that #[key] and #[persist] can mark them";

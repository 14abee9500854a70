//! `#[agent]` on a struct: the model of an agent's state, parsed and validated.

use proc_macro2::TokenStream;
use syn::{Fields, Ident, ItemStruct, Type};

use crate::attr::{self, Marker};
use crate::case;
use crate::ctxt::{Ctxt, Rejected};

/// A field of the agent struct.
pub(crate) struct StateField {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// The validated model of an agent struct.
pub(crate) struct AgentStruct {
    /// The struct as the user wrote it, swarm's attributes removed.
    pub(crate) item: ItemStruct,
    pub(crate) kind: String,
    pub(crate) key: Option<StateField>,
    pub(crate) persisted: Vec<StateField>,
    pub(crate) ephemeral: Vec<StateField>,
}

/// Parses and validates; on error, also returns the item without swarm's attributes, so the rest
/// of the user's code still resolves it.
pub(crate) fn parse(
    args: TokenStream,
    mut item: ItemStruct,
) -> Result<AgentStruct, Box<Rejected<ItemStruct, AgentStruct>>> {
    let mut cx = Ctxt::default();
    let options = attr::parse_struct_options(&mut cx, args);

    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_at(
            &item.generics,
            "an #[agent] struct cannot be generic: each agent kind is one concrete type (its processes, \
             messages and records are typed by it)",
        );
    }

    let kind = match options.kind {
        Some((kind, span)) => {
            if let Some(problem) = kind_problem(&kind) {
                cx.push(syn::Error::new(span, problem));
            }
            kind
        }
        None => case::kebab(&item.ident.to_string()),
    };

    let mut key: Option<StateField> = None;
    let mut persisted = Vec::new();
    let mut ephemeral = Vec::new();
    let mut first_persist_attr = None;
    match &mut item.fields {
        Fields::Named(fields) => {
            for field in fields.named.iter_mut() {
                let markers = attr::take_markers(&mut cx, &mut field.attrs);
                let ident = field.ident.clone().expect("named fields have names");
                let state_field = StateField { ident, ty: field.ty.clone() };
                let is_key = markers.iter().any(|(m, _)| *m == Marker::Key);
                let persist = markers.iter().find(|(m, _)| *m == Marker::Persist);
                for (marker, attr) in &markers {
                    if matches!(marker, Marker::Handler | Marker::OnStart | Marker::OnStop) {
                        cx.error_at(
                            attr,
                            format!("#[{}] goes on a method of the #[agent] impl block, not on a field", marker.name()),
                        );
                    }
                }
                if let (true, Some((_, persist_attr))) = (is_key, persist) {
                    cx.error_at(
                        persist_attr,
                        "a #[key] field is not #[persist]: the key names the record, it is not stored in it",
                    );
                }
                if is_key {
                    if key.is_some() {
                        let attr = &markers.iter().find(|(m, _)| *m == Marker::Key).expect("checked").1;
                        cx.error_at(attr, "an agent has one #[key] field; this is a second one");
                        // Kept as an ordinary field, so the stand-in expansion still builds it.
                        ephemeral.push(state_field);
                    } else {
                        key = Some(state_field);
                    }
                } else if let Some((_, attr)) = persist {
                    first_persist_attr.get_or_insert_with(|| attr.clone());
                    persisted.push(state_field);
                } else {
                    ephemeral.push(state_field);
                }
            }
        }
        Fields::Unnamed(_) | Fields::Unit => cx.error_at(
            &item.ident,
            "#[agent] needs a struct with named fields (`struct Counter { total: u64 }`), so that #[key] \
             and #[persist] can mark them",
        ),
    }

    if let (None, Some(attr)) = (&key, &first_persist_attr) {
        cx.error_at(
            attr,
            "#[persist] needs a #[key] field: the key names this agent's record in the store. \
             Add one, such as `#[key] id: String`",
        );
    }

    let well_formed = matches!(item.fields, Fields::Named(_)) && item.generics.params.is_empty();
    match cx.check() {
        Ok(()) => Ok(AgentStruct {
            item,
            kind,
            key,
            persisted,
            ephemeral,
        }),
        Err(error) => {
            let stand_in = well_formed.then(|| AgentStruct {
                item: item.clone(),
                kind,
                key,
                persisted,
                ephemeral,
            });
            Err(Box::new(Rejected {
                error,
                item,
                stand_in,
            }))
        }
    }
}

/// Why `kind` cannot be an agent kind, if it cannot.
fn kind_problem(kind: &str) -> Option<String> {
    if kind.is_empty() {
        return Some("an agent kind cannot be empty".into());
    }
    kind.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|c| {
            format!(
                "agent kind {kind:?}: character {c:?} is not allowed; kinds use A-Z a-z 0-9 _ - \
             (they are NATS subject tokens and storage key segments)"
            )
        })
}

//! The checks of an `#[agent]` struct: what parses but cannot be an agent's state.

use crate::agent_struct::{AgentStruct, Kind};
use crate::attr::{Marker, Persistence};
use crate::ctxt::Ctxt;

/// Reports every mistake of `model` to `cx`, each at the user's own token.
pub(crate) fn check(cx: &mut Ctxt, model: &AgentStruct) {
    let generics = &model.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_at(
            generics,
            "an #[agent] struct cannot be generic: each agent kind is one concrete type (its processes, \
             messages and records are typed by it)",
        );
    }

    if let Kind::Given(kind, span) = &model.kind {
        if let Some(problem) = kind_problem(kind) {
            cx.push(syn::Error::new(*span, problem));
        }
    }

    let mut key_seen = false;
    for field in &model.fields {
        for (marker, attr) in &field.markers {
            if matches!(marker, Marker::Handler | Marker::OnStart | Marker::OnStop) {
                cx.error_at(
                    attr,
                    format!(
                        "#[{}] goes on a method of the #[agent] impl block, not on a field",
                        marker.name()
                    ),
                );
            }
        }
        if let (Some(_), Some(persist)) = (field.marker(Marker::Key), field.marker(Marker::Persist))
        {
            cx.error_at(
                persist,
                "a #[key] field is not #[persist]: the key names the record, it is not stored in it",
            );
        }
        if let Some(key) = field.marker(Marker::Key) {
            if key_seen {
                cx.error_at(key, "an agent has one #[key] field; this is a second one");
            }
            key_seen = true;
        }
    }

    if let Some((millis, span)) = model.passivate_after {
        if millis == 0 {
            cx.push(syn::Error::new(
                span,
                "`passivate_after` cannot be zero: an agent would stop before it served a call. \
                 Leave the option out for an agent that runs until stopped",
            ));
        } else if !key_seen {
            cx.push(syn::Error::new(
                span,
                "only an agent with a #[key] passivates: its next call finds it again by its key. \
                 Add one, such as `#[key] id: String`",
            ));
        }
    }

    if let Some((0, span)) = model.message_budget {
        cx.push(syn::Error::new(
            span,
            "`message_budget` cannot be zero: every message would be stopped. Leave the option out \
             for handlers without a time limit",
        ));
    }
    if let Some((0, span)) = model.mailbox {
        cx.push(syn::Error::new(
            span,
            "`mailbox = 0` would refuse every message: give how many may wait, such as 1000, or \
             leave the option out for an unbounded mailbox",
        ));
    }
    if let Some((bytes, span)) = model.max_memory {
        // An agent's process holds its stack (1 MiB by default) and heap before any state.
        if bytes < MIN_MEMORY_CAP {
            cx.push(syn::Error::new(
                span,
                "`max_memory` below 2MiB: an agent's process needs about that much to start \
                 (its stack and first heap pages); give it room for its state on top",
            ));
        }
    }

    check_persistence(cx, model);
    check_state_version(cx, model);
    for field in model.persisted() {
        // `ident.to_string()` of a raw identifier keeps its `r#`, which serde drops: it cannot
        // start with `__swarm_` either way.
        if field.ident.to_string().starts_with("__swarm_") {
            cx.error_at(
                &field.ident,
                "#[persist] field names starting with `__swarm_` are taken by the runtime's own \
                 members of the record (`__swarm_version`, `__swarm_applied`): rename the field",
            );
        }
    }

    if !key_seen {
        let first_persist = model
            .fields
            .iter()
            .find_map(|field| field.marker(Marker::Persist));
        if let Some(persist) = first_persist {
            cx.error_at(
                persist,
                "#[persist] needs a #[key] field: the key names this agent's record in the store. \
                 Add one, such as `#[key] id: String`",
            );
        }
    }
}

/// `state_version`: from 1 (every record without a version is version 1), small enough for the
/// record's `u32`, and about #[persist] fields.
fn check_state_version(cx: &mut Ctxt, model: &AgentStruct) {
    let Some((version, span)) = model.state_version else {
        return;
    };
    if version == 0 {
        cx.push(syn::Error::new(
            span,
            "`state_version` starts at 1: a record written without a version is version 1, and \
             each later version of the #[persist] fields is one more (with a #[migrate] step from \
             the one before)",
        ));
    } else if version > u64::from(u32::MAX) {
        cx.push(syn::Error::new(span, "`state_version` is too large"));
    } else if model.persisted().next().is_none() {
        cx.push(syn::Error::new(
            span,
            "`state_version` is the version of the #[persist] fields, and this agent has none: \
             remove it, or mark the fields to save with #[persist]",
        ));
    }
}

/// `persistence` and `save_every`: a write-behind kind says how often it saves, and only a
/// write-behind kind with something to save has a save interval.
fn check_persistence(cx: &mut Ctxt, model: &AgentStruct) {
    let persists = model.persisted().next().is_some();
    match (model.persistence, model.save_every) {
        (Some((Persistence::WriteBehind, span)), None) if !model.options_incomplete => {
            cx.push(syn::Error::new(
                span,
                "`persistence = \"write_behind\"` needs `save_every = \"..\"`: how long an \
             acknowledged change may stay unsaved (what a crash can lose), such as \"200ms\"",
            ))
        }
        (Some((Persistence::WriteBehind, _)), Some((0, span))) => cx.push(syn::Error::new(
            span,
            "`save_every` cannot be zero: give how long an acknowledged change may stay unsaved, \
             such as \"200ms\", or use `persistence = \"write_through\"` to save before each \
             answer",
        )),
        (Some((Persistence::WriteThrough, _)) | None, Some((_, span)))
            if !model.options_incomplete =>
        {
            cx.push(syn::Error::new(
            span,
            "`save_every` is the interval of `persistence = \"write_behind\"`; a write-through \
             agent (the default) saves before each answer. Add `persistence = \"write_behind\"` \
             or remove `save_every`",
            ))
        }
        _ => {}
    }
    if let (Some((_, span)), false) = (model.persistence, persists) {
        cx.push(syn::Error::new(
            span,
            "`persistence` chooses how #[persist] fields are saved, and this agent has none: \
             mark the fields to keep with #[persist], or remove the option",
        ));
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

/// The smallest `max_memory` an agent can start under.
const MIN_MEMORY_CAP: u64 = 2 << 20;

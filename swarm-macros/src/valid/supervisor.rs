//! The checks of a `supervisor!` declaration: names that clash, sizes and periods that make no
//! supervisor.

use std::collections::HashSet;

use crate::ctxt::Ctxt;
use crate::supervisor_def::{ChildDefKind, SupervisorDef};

/// Reports every mistake of `def` to `cx`, each at the user's own token.
pub(crate) fn check(cx: &mut Ctxt, def: &SupervisorDef) {
    let (within_secs, span) = def.within_secs;
    if within_secs == 0 {
        cx.push(syn::Error::new(span, "`within_secs` must be at least 1"));
    }

    let mut names = HashSet::new();
    for child in &def.children {
        let name = child.name.to_string();
        if !names.insert(name.clone()) {
            cx.error_at(
                &child.name,
                format!("two children are named `{name}`; each child needs its own name (its handle method is named after it)"),
            );
        }
        if let ChildDefKind::Pool {
            size: 0, literal, ..
        } = &child.kind
        {
            cx.error_at(
                literal,
                "a pool needs at least one member; `pool(Agent, 0)` would serve nobody",
            );
        }
    }
}

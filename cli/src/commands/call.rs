//! `swarm call KIND KEY HANDLER [JSON]`: checks the call against what the namespace serves, sends
//! it through the front door `<namespace>.<kind>.<key>.<handler>`, and prints the answer.

use std::time::Duration;

use async_nats::RequestErrorKind;
use serde_json::Value;

use super::Context;
use crate::catalog::Catalog;
use crate::failure::Failure;
use crate::input::{self, SchemaCheck};
use crate::services::{self, Window};

/// A call needs one node's INFO, not every node's: stop collecting once answers pause this long.
const INFO_QUIET: Duration = Duration::from_millis(250);

/// The front door's error kinds that say the request itself was wrong (exit 2, like the same
/// mistakes caught here); every other error kind means the call failed (exit 1).
const BAD_INPUT_KINDS: [&str; 3] = ["invalid_key", "unknown_handler", "bad_arguments"];

pub async fn call(
    context: &Context,
    kind: &str,
    key: &str,
    handler: &str,
    arguments: Option<&str>,
) -> Result<(), Failure> {
    input::check_key(key)?;
    let arguments = input::read_arguments(arguments)?;
    let catalog = catalog_with(context, kind, handler).await?;
    let about = catalog.handler(kind, handler)?;
    if let Some(schema) = &about.arguments_schema {
        if let SchemaCheck::Unusable(why) = input::check_schema(schema, &arguments, kind, handler)?
        {
            eprintln!("swarm: warning: {why}; sending unchecked (the node checks the arguments)");
        }
    }

    let subject = format!("{}.{kind}.{key}.{handler}", context.namespace);
    let payload = serde_json::to_vec(&arguments)
        .map_err(|err| Failure::usage(format!("cannot encode the arguments: {err}")))?;
    let answer = context
        .client
        .request(subject.clone(), payload.into())
        .await
        .map_err(|err| match err.kind() {
            RequestErrorKind::TimedOut => Failure::failed(format!(
                "no answer from `{kind}` `{key}` ({subject}) within {:?}; the call may still \
                 be applied; try a longer --timeout",
                context.timeout
            )),
            RequestErrorKind::NoResponders => Failure::failed(format!(
                "no node serves {subject} any more; see `swarm nodes`"
            )),
            RequestErrorKind::Other => {
                Failure::connect(format!("the call on {subject} failed: {err}"))
            }
        })?;
    let reply: Value = serde_json::from_slice(&answer.payload)
        .map_err(|err| Failure::failed(format!("the answer on {subject} is not JSON ({err})")))?;
    show(context, &reply, kind, key, handler)
}

/// Collects INFO until answers pause; if that does not show the kind and handler (a node that
/// answered late may serve it), collects every node's.
async fn catalog_with(context: &Context, kind: &str, handler: &str) -> Result<Catalog, Failure> {
    let quick = Window {
        max: services::INFO_WINDOW,
        quiet: Some(INFO_QUIET),
        expect: None,
    };
    let infos = context.infos(quick).await?;
    let catalog = Catalog::from_infos(&context.namespace, &infos);
    if catalog.handler(kind, handler).is_ok() {
        return Ok(catalog);
    }
    context.catalog().await
}

/// Prints the `ok` value (or, with `--json`, the whole answer) on stdout; an error answer is one
/// line on stderr and a failure.
fn show(
    context: &Context,
    reply: &Value,
    kind: &str,
    key: &str,
    handler: &str,
) -> Result<(), Failure> {
    if let Some(ok) = reply.get("ok") {
        return if context.output.json {
            context.output.json(reply)
        } else {
            context.output.json(ok)
        };
    }
    let Some(error) = reply.get("error") else {
        return Err(Failure::failed(format!(
            "the answer of `{kind}` `{key}` is neither {{\"ok\": ..}} nor {{\"error\": ..}}: {reply}"
        )));
    };
    if context.output.json {
        context.output.json(reply)?;
    }
    let error_kind = error["kind"].as_str().unwrap_or("unknown");
    let message = error["message"].as_str().unwrap_or("");
    let mut line = format!("{error_kind}: {message}");
    let applied = match &error["applied"] {
        Value::Bool(true) => Some("applied"),
        Value::Bool(false) => Some("not applied"),
        Value::Null if error.get("applied").is_some() => Some("may have been applied"),
        _ => None,
    };
    let reason = error["reason"].as_str();
    match (applied, reason) {
        (Some(applied), Some(reason)) => line += &format!(" ({reason}; {applied})"),
        (Some(applied), None) => line += &format!(" ({applied})"),
        (None, Some(reason)) => line += &format!(" ({reason})"),
        (None, None) => {}
    }
    let line = format!("`{kind}` `{key}` `{handler}` answered {}", one_line(&line));
    if BAD_INPUT_KINDS.contains(&error_kind) {
        Err(Failure::usage(line))
    } else {
        Err(Failure::failed(line))
    }
}

/// A handler's panic message may span lines; stderr gets one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

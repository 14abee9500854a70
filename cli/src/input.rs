//! A call's input, checked before anything is sent: the agent key, the arguments (a JSON object,
//! from the command line or stdin) and, when the handler publishes one, the JSON Schema they
//! must match. A node would refuse the same mistakes, but only after a round trip and with
//! less to say about how to fix them.

use std::io::Read;

use serde_json::{Map, Value};

use crate::failure::Failure;

/// The longest key the runtime accepts, in bytes (`swarm/src/key.rs`).
const MAX_KEY_BYTES: usize = 128;

/// Checks `key` as the runtime does: 1-128 bytes of `A-Z a-z 0-9 _ -` (it is a subject token and
/// a storage key). Anything else would address another subject, or be refused.
pub fn check_key(key: &str) -> Result<(), Failure> {
    let rule = "keys are 1-128 characters of A-Z a-z 0-9 _ -";
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Failure::usage(format!(
            "key `{key}` has {} bytes; {rule}",
            key.len()
        )));
    }
    if let Some((at, ch)) = key
        .char_indices()
        .find(|&(_, ch)| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
    {
        return Err(Failure::usage(format!(
            "key `{key}` has {ch:?} at byte {at}; {rule}"
        )));
    }
    Ok(())
}

/// The arguments: `text` (`-` reads stdin; none or blank is `{}`), which must be a JSON object.
pub fn read_arguments(text: Option<&str>) -> Result<Map<String, Value>, Failure> {
    let text = match text {
        Some("-") => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(|err| {
                Failure::usage(format!("cannot read the arguments from stdin: {err}"))
            })?;
            input
        }
        Some(text) => text.to_owned(),
        None => String::new(),
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let example = r#"give a JSON object of the handler's arguments by name, such as '{"n": 2}'"#;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(arguments)) => Ok(arguments),
        Ok(other) => Err(Failure::usage(format!(
            "the arguments are {}, not a JSON object; {example}",
            json_type(&other)
        ))),
        Err(err) => Err(Failure::usage(format!(
            "the arguments are not JSON ({err}); {example}"
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a schema check found.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaCheck {
    /// The arguments match.
    Valid,
    /// The published schema cannot be used (not JSON, not a schema): the node still checks the
    /// arguments, so the call goes ahead; the text says why the schema was skipped.
    Unusable(String),
}

/// Checks `arguments` of `kind`.`handler` against the schema text the handler publishes.
pub fn check_schema(
    schema_text: &str,
    arguments: &Map<String, Value>,
    kind: &str,
    handler: &str,
) -> Result<SchemaCheck, Failure> {
    let schema: Value = match serde_json::from_str(schema_text) {
        Ok(schema) => schema,
        Err(err) => {
            return Ok(SchemaCheck::Unusable(format!(
                "the arguments schema of `{kind}.{handler}` is not JSON ({err})"
            )))
        }
    };
    let validator = match jsonschema::validator_for(&schema) {
        Ok(validator) => validator,
        Err(err) => {
            return Ok(SchemaCheck::Unusable(format!(
                "the arguments schema of `{kind}.{handler}` is not a JSON Schema ({err})"
            )))
        }
    };
    let instance = Value::Object(arguments.clone());
    let problems: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| {
            let at = error.instance_path().to_string();
            if at.is_empty() {
                error.to_string()
            } else {
                format!("at {at}: {error}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(SchemaCheck::Valid)
    } else {
        Err(Failure::usage(format!(
            "the arguments do not match the schema of `{kind}.{handler}`: {} (see `swarm \
             handlers {kind} --json`)",
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("a test object"),
        }
    }

    #[test]
    fn keys_follow_the_runtime_rules() {
        assert!(check_key("lobby-1_A").is_ok());
        let dot = check_key("a.b").unwrap_err();
        assert!(dot.message.contains("'.' at byte 1"), "{dot}");
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(129)).is_err());
    }

    #[test]
    fn arguments_are_a_json_object_or_nothing() {
        assert_eq!(read_arguments(None).unwrap(), Map::new());
        assert_eq!(read_arguments(Some("  ")).unwrap(), Map::new());
        assert_eq!(
            read_arguments(Some(r#"{"n": 2}"#)).unwrap(),
            object(json!({"n": 2}))
        );
        let array = read_arguments(Some("[1]")).unwrap_err();
        assert!(array
            .message
            .starts_with("the arguments are an array, not a JSON object"));
        let broken = read_arguments(Some("{n: 2}")).unwrap_err();
        assert!(
            broken.message.starts_with("the arguments are not JSON"),
            "{broken}"
        );
        assert!(!broken.message.contains('\n'));
    }

    #[test]
    fn a_schema_refuses_arguments_that_do_not_match_it() {
        let schema = json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 0}},
            "required": ["n"],
            "additionalProperties": false
        })
        .to_string();
        let good = object(json!({"n": 2}));
        assert_eq!(
            check_schema(&schema, &good, "counter", "add").unwrap(),
            SchemaCheck::Valid
        );
        let bad =
            check_schema(&schema, &object(json!({"n": "two"})), "counter", "add").unwrap_err();
        assert!(
            bad.message.contains("schema of `counter.add`") && bad.message.contains("/n"),
            "{bad}"
        );
        let missing = check_schema(&schema, &Map::new(), "counter", "add").unwrap_err();
        assert!(missing.message.contains("\"n\""), "{missing}");
    }

    /// The shape `#[agent(schema)]` publishes (swarm/src/schema.rs): JSON Schema 2020-12, with
    /// the handler's named types under `$defs`, referred to locally. No fetching is needed.
    #[test]
    fn an_agents_schema_with_local_definitions_is_checked() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "room.post arguments",
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "mood": {"$ref": "#/$defs/Mood"},
                "priority": {"type": ["integer", "null"], "format": "uint32", "minimum": 0}
            },
            "required": ["text", "mood"],
            "additionalProperties": false,
            "$defs": {"Mood": {"type": "string", "enum": ["Calm", "Loud"]}}
        })
        .to_string();
        let good = object(json!({"text": "hi", "mood": "Calm", "priority": null}));
        assert_eq!(
            check_schema(&schema, &good, "room", "post").unwrap(),
            SchemaCheck::Valid
        );
        let angry = object(json!({"text": "hi", "mood": "Angry"}));
        let bad = check_schema(&schema, &angry, "room", "post").unwrap_err();
        assert!(bad.message.contains("at /mood"), "{bad}");
    }

    #[test]
    fn an_unusable_schema_is_skipped_with_the_reason() {
        let args = Map::new();
        assert!(matches!(
            check_schema("not json", &args, "k", "h").unwrap(),
            SchemaCheck::Unusable(why) if why.contains("not JSON")
        ));
        assert!(matches!(
            check_schema(r#"{"type": 5}"#, &args, "k", "h").unwrap(),
            SchemaCheck::Unusable(why) if why.contains("not a JSON Schema")
        ));
    }
}

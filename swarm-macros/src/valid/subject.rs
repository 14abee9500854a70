//! The subject pattern of `#[handler(subject = "..")]`: a NATS subject whose tokens may be the
//! wildcards `*` (one token) and `>` (the rest, last only), and where exactly one whole token is
//! `{key}`, the agent's key (a `*` to the server; its text picks the agent). Pure, so it is tested
//! here; the runtime takes the checked form ([`Pattern`]) and never parses the user's text again.

/// A checked pattern: what the node subscribes to, and which token carries the key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The subject to subscribe to: the pattern with `{key}` written `*`.
    pub(crate) subscribe: String,
    /// The position (from 0) of the key's token.
    pub(crate) key_token: usize,
}

/// The placeholder that marks the key's token.
const KEY: &str = "{key}";

/// Checks `text`; `Err` says what is wrong and how to write it.
pub(crate) fn check(text: &str) -> Result<Pattern, String> {
    let example = "such as \"shop.orders.{key}.placed\"";
    if text.is_empty() {
        return Err(format!(
            "the subject is empty: write a NATS subject pattern, {example}"
        ));
    }
    if let Some(bad) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a NATS subject has no spaces or control characters; this one has {bad:?}"
        ));
    }
    let tokens: Vec<&str> = text.split('.').collect();
    let mut key_token = None;
    for (position, token) in tokens.iter().enumerate() {
        let number = position + 1;
        if token.is_empty() {
            return Err(format!(
                "token {number} of {text:?} is empty: a subject's tokens are separated by one `.`, \
                 with none at either end"
            ));
        }
        if *token == ">" && position + 1 != tokens.len() {
            return Err(format!(
                "`>` matches the rest of a subject, so it can only be the last token; here it is \
                 token {number} of {}",
                tokens.len()
            ));
        }
        if *token != "*" && *token != ">" && (token.contains('*') || token.contains('>')) {
            return Err(format!(
                "token {token:?}: the wildcards `*` and `>` stand for whole tokens, never part of one"
            ));
        }
        if *token == KEY {
            if key_token.is_some() {
                return Err(format!(
                    "`{KEY}` is given twice: one token of the subject is the agent's key"
                ));
            }
            key_token = Some(position);
        } else if token.contains('{') || token.contains('}') {
            return Err(if token.contains(KEY) {
                format!(
                    "token {token:?}: `{KEY}` must be a whole token (the key is the whole token \
                     between two dots), {example}"
                )
            } else {
                format!(
                    "token {token:?}: the one placeholder of a subject is `{KEY}`, the agent's key"
                )
            });
        }
    }
    let Some(key_token) = key_token else {
        return Err(format!(
            "the subject must say which token is the agent's key: write `{KEY}` in its place, \
             {example}"
        ));
    };
    let subscribe = tokens
        .iter()
        .map(|token| if *token == KEY { "*" } else { token })
        .collect::<Vec<_>>()
        .join(".");
    Ok(Pattern {
        subscribe,
        key_token,
    })
}

/// Checks a JetStream stream's name as `stream = ".."` gives it.
pub(crate) fn check_stream(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the stream's name is empty: write its name, such as \"ORDERS\"".into());
    }
    match name
        .chars()
        .find(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some(bad) => Err(format!(
            "{bad:?} cannot be in a JetStream stream's name (no `.`, `*`, `>`, slashes or spaces); \
             name the stream, such as \"ORDERS\", and its messages with `subject`"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{check, check_stream, Pattern};

    #[test]
    fn stream_names_are_plain() {
        assert_eq!(check_stream("ORDERS"), Ok(()));
        assert_eq!(check_stream("orders-v2_x"), Ok(()));
        for bad in ["", "orders.placed", "ORDERS*", "OR DERS", "a/b", "a>"] {
            assert!(check_stream(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_pattern_names_the_key_token() {
        assert_eq!(
            check("shop.orders.{key}.placed"),
            Ok(Pattern {
                subscribe: "shop.orders.*.placed".into(),
                key_token: 2
            })
        );
        assert_eq!(
            check("{key}"),
            Ok(Pattern {
                subscribe: "*".into(),
                key_token: 0
            })
        );
        assert_eq!(
            check("a.*.{key}.>"),
            Ok(Pattern {
                subscribe: "a.*.*.>".into(),
                key_token: 2
            })
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (bad, says) in [
            ("", "empty"),
            ("a..{key}", "token 2"),
            (".a.{key}", "token 1"),
            ("a.{key}.", "token 3"),
            ("a b.{key}", "spaces"),
            ("a.>.{key}", "only be the last token"),
            ("a*.{key}", "whole tokens"),
            ("a.>x.{key}", "whole tokens"),
            ("a.{key}.{key}", "given twice"),
            ("a.x{key}", "must be a whole token"),
            ("a.{id}", "one placeholder"),
            ("a.b", "which token is the agent's key"),
            ("a.*", "which token is the agent's key"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}

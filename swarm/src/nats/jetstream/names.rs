//! The names JetStream and KV accept, checked before anything is sent so a bad one gets an
//! error that says what is wrong with it (and never becomes an odd subject): stream names,
//! bucket names, keys and the key filters of watches; and the subjects KV builds from them
//! (ADR-8: stream `KV_<bucket>`, subjects `$KV.<bucket>.<key>`).

use super::error::JsError;

/// The stream behind a bucket.
pub(crate) fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// What comes before a key in a bucket's subjects: `$KV.<bucket>.`.
pub(crate) fn kv_prefix(bucket: &str) -> String {
    format!("$KV.{bucket}.")
}

/// A stream name: not empty; no `.` (it is one token of the API subjects), no `*`, `>`, path
/// separators or whitespace.
pub(crate) fn check_stream_name(name: &str) -> Result<(), JsError> {
    let refuse = |reason: String| JsError::InvalidConfig {
        what: format!("stream name {name:?}"),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("a stream name is not empty".into()));
    }
    match name
        .char_indices()
        .find(|&(_, c)| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some((at, c)) => Err(refuse(format!(
            "character {c:?} at byte {at} is not allowed in a stream name (no '.', '*', '>', '/', '\\' or whitespace)"
        ))),
        None => Ok(()),
    }
}

/// A bucket name: letters, digits, `-` and `_` (ADR-8).
pub(crate) fn check_bucket(bucket: &str) -> Result<(), JsError> {
    let refuse = |reason: String| JsError::InvalidConfig {
        what: format!("KV bucket name {bucket:?}"),
        reason,
    };
    if bucket.is_empty() {
        return Err(refuse("a bucket name is not empty".into()));
    }
    match bucket
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        Some((at, c)) => Err(refuse(format!(
            "character {c:?} at byte {at} is not allowed: bucket names use letters, digits, '-' and '_'"
        ))),
        None => Ok(()),
    }
}

/// Whether `c` may appear in a key (ADR-8's `[-/_=\.a-zA-Z0-9]`).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.')
}

/// A key: not empty, characters `[-/_=.a-zA-Z0-9]`, and no empty token between dots (no leading,
/// trailing or double `.`), since the key becomes the end of a subject.
pub(crate) fn check_key(key: &str) -> Result<(), JsError> {
    let refuse = |reason: String| JsError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(refuse("a key is not empty".into()));
    }
    if let Some((at, c)) = key.char_indices().find(|&(_, c)| !is_key_char(c)) {
        return Err(refuse(format!(
            "character {c:?} at byte {at} is not allowed: keys use letters, digits and - / _ = ."
        )));
    }
    if key.starts_with('.') || key.ends_with('.') {
        return Err(refuse("a key does not start or end with '.'".into()));
    }
    if let Some(at) = key.find("..") {
        return Err(refuse(format!("empty part between the dots at byte {at}")));
    }
    Ok(())
}

/// A watch's key filter: keys whose dot-separated parts may be `*` (any one part) and, last,
/// `>` (one or more parts). The empty filter means every key (ADR-8), as `>` does.
pub(crate) fn check_key_filter(filter: &str) -> Result<&str, JsError> {
    if filter.is_empty() {
        return Ok(">");
    }
    let refuse = |reason: String| JsError::InvalidKey {
        key: filter.to_owned(),
        reason,
    };
    let parts: Vec<&str> = filter.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match *part {
            "*" => {}
            ">" if i + 1 == parts.len() => {}
            ">" => return Err(refuse("'>' must be the last part of a filter".into())),
            "" => {
                return Err(refuse(
                    "a filter has no empty part (no leading, trailing or double '.')".into(),
                ))
            }
            literal => {
                if let Some(c) = literal.chars().find(|&c| !is_key_char(c)) {
                    let hint = if c == '*' || c == '>' {
                        " (a wildcard is a whole part, such as `a.*` or `a.>`)"
                    } else {
                        " (keys use letters, digits and - / _ = .)"
                    };
                    return Err(refuse(format!(
                        "character {c:?} in part {literal:?} is not allowed{hint}"
                    )));
                }
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_reason(key: &str) -> String {
        match check_key(key) {
            Err(JsError::InvalidKey { key: k, reason }) => {
                assert_eq!(k, key);
                reason
            }
            other => panic!("{key:?}: {other:?}"),
        }
    }

    #[test]
    fn keys_follow_adr_8() {
        for key in ["a", "A.b-c_d/e=f", "0", "a.b.c", "/leading/slash", "x=1"] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
        assert_eq!(key_reason(""), "a key is not empty");
        assert_eq!(key_reason(".a"), "a key does not start or end with '.'");
        assert_eq!(key_reason("a."), "a key does not start or end with '.'");
        assert_eq!(key_reason("a..b"), "empty part between the dots at byte 1");
        assert_eq!(
            key_reason("a b"),
            "character ' ' at byte 1 is not allowed: keys use letters, digits and - / _ = ."
        );
        for bad in ["a*", "a.>", "ü", "a\r\nPUB x 1", "$KV"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            JsError::InvalidKey {
                key: "a b".into(),
                reason: key_reason("a b")
            }
            .to_string(),
            "invalid KV key \"a b\": character ' ' at byte 1 is not allowed: keys use letters, digits and - / _ = ."
        );
    }

    #[test]
    fn filters_allow_whole_part_wildcards() {
        for (filter, used) in [
            ("", ">"),
            (">", ">"),
            ("a.*", "a.*"),
            ("*.b.>", "*.b.>"),
            ("a.b", "a.b"),
        ] {
            assert_eq!(check_key_filter(filter), Ok(used), "{filter:?}");
        }
        for bad in ["a.>.b", "a*", "a..b", ".a", "a.", "a b", "a.b>"] {
            assert!(
                matches!(check_key_filter(bad), Err(JsError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        let Err(err) = check_key_filter("user*") else {
            panic!()
        };
        assert!(
            err.to_string().contains("a wildcard is a whole part"),
            "{err}"
        );
    }

    #[test]
    fn bucket_and_stream_names() {
        assert_eq!(check_bucket("agents_state-1"), Ok(()));
        for bad in ["", "a.b", "a b", "a*", "ü"] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_bucket("a.b").unwrap_err().to_string(),
            "invalid KV bucket name \"a.b\": character '.' at byte 1 is not allowed: bucket names use letters, digits, '-' and '_'"
        );
        assert_eq!(check_stream_name("KV_b"), Ok(()));
        for bad in ["", "a.b", "a>", "a/b", "a b", "a\\b"] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(kv_stream("b"), "KV_b");
        assert_eq!(kv_prefix("b"), "$KV.b.");
    }
}

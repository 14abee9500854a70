//! Name conversions between Rust items, message variants and agent kinds.

/// `ChatRoom` -> `chat-room`, `HTTPServer` -> `http-server`.
pub(crate) fn kebab(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let after_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let ends_acronym = i > 0
                && chars[i - 1].is_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if after_lower || ends_acronym {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// `get_count` -> `GetCount`.
pub(crate) fn camel(ident: &str) -> String {
    ident
        .trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_kinds() {
        assert_eq!(kebab("ChatRoom"), "chat-room");
        assert_eq!(kebab("Counter"), "counter");
        assert_eq!(kebab("HTTPServer"), "http-server");
        assert_eq!(kebab("Room2Go"), "room2-go");
        assert_eq!(kebab("my_agent"), "my-agent");
    }

    #[test]
    fn camel_case_variants() {
        assert_eq!(camel("post"), "Post");
        assert_eq!(camel("get_count"), "GetCount");
        assert_eq!(camel("r#type"), "Type");
        assert_eq!(camel("a__b_"), "AB");
    }
}

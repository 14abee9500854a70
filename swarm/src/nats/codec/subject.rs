//! Validation of subjects, reply subjects and queue group names.
//!
//! The encoders in [`super::client_op`] splice these strings into whitespace-delimited,
//! CRLF-terminated control lines, so a space, tab, CR or LF inside one would let a caller inject
//! protocol text (`"a\r\nUNSUB 1"`). Every encoder calls these checks before writing a byte.
//!
//! The rules follow the server (`server/sublist.go`) and ADR-6, tightened where the server is
//! lenient in a way that only causes confusion:
//! - tokens are separated by `.` and none may be empty (no leading, trailing or double dots);
//! - no whitespace (ASCII or Unicode) and no control characters anywhere;
//! - `*` and `>` are wildcards only as a whole token; `>` only as the last token. The server
//!   treats `foo*` as a literal token, but ADR-6 forbids it and it almost always is a bug, so
//!   it is refused everywhere;
//! - subjects for publishing and reply subjects must be literal (no wildcard tokens).
//!
//! Non-ASCII UTF-8 is allowed (the docs allow any Unicode except whitespace); the framework's
//! own subjects stick to `[A-Za-z0-9_-]` tokens anyway.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of name a [`SubjectError`] is about; it only changes the wording of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NameKind {
    /// A subject to publish to or subscribe on.
    Subject,
    /// The reply subject of a publish.
    ReplySubject,
    /// A queue group name of a subscription.
    QueueGroup,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Subject => "subject",
            NameKind::ReplySubject => "reply subject",
            NameKind::QueueGroup => "queue group",
        })
    }
}

/// Why a subject, reply subject or queue group was refused. Byte offsets count from 0 in the
/// UTF-8 string; the name is printed with Rust escaping so control characters stay visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SubjectError {
    /// The name is the empty string.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of name was refused.
        what: NameKind,
    },
    /// A token between dots is empty (leading, trailing or double dot).
    #[error("{what} {name:?}: empty token at byte {at}")]
    EmptyToken {
        /// Which kind of name was refused.
        what: NameKind,
        /// The refused name.
        name: String,
        /// Byte offset where the empty token starts.
        at: usize,
    },
    /// A whitespace or control character, which would break the control line.
    #[error("{what} {name:?}: forbidden character {ch:?} at byte {at}")]
    ForbiddenChar {
        /// Which kind of name was refused.
        what: NameKind,
        /// The refused name.
        name: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A wildcard token in a subject that must be literal (publish or reply subject).
    #[error("{what} {name:?}: wildcard {wildcard:?} at byte {at} is not allowed here, the subject must be literal")]
    WildcardNotAllowed {
        /// Which kind of name was refused.
        what: NameKind,
        /// The refused name.
        name: String,
        /// `*` or `>`.
        wildcard: char,
        /// Its byte offset.
        at: usize,
    },
    /// `*` or `>` inside a longer token, such as `foo*`.
    #[error("{what} {name:?}: {wildcard:?} at byte {at} is inside a token, wildcards must be a whole token")]
    WildcardInsideToken {
        /// Which kind of name was refused.
        what: NameKind,
        /// The refused name.
        name: String,
        /// `*` or `>`.
        wildcard: char,
        /// Its byte offset.
        at: usize,
    },
    /// A `>` token that is not the last token.
    #[error("{what} {name:?}: '>' at byte {at} must be the last token")]
    FullWildcardNotLast {
        /// Which kind of name was refused.
        what: NameKind,
        /// The refused name.
        name: String,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks a subject to publish to: non-empty tokens, no whitespace or control characters, no
/// wildcards.
pub fn validate_publish_subject(subject: &str) -> Result<(), SubjectError> {
    check_subject(NameKind::Subject, subject, false)
}

/// Checks a subject to subscribe on: like [`validate_publish_subject`], but `*` may be any
/// whole token and `>` the last whole token.
pub fn validate_subscribe_subject(subject: &str) -> Result<(), SubjectError> {
    check_subject(NameKind::Subject, subject, true)
}

/// Checks a reply subject: the same rules as a publish subject, since replies are published to it.
pub fn validate_reply_subject(reply_to: &str) -> Result<(), SubjectError> {
    check_subject(NameKind::ReplySubject, reply_to, false)
}

/// Checks a queue group name: non-empty, no whitespace or control characters. Dots are allowed
/// (queue groups are often named after the subject they serve).
pub fn validate_queue_group(queue: &str) -> Result<(), SubjectError> {
    let what = NameKind::QueueGroup;
    if queue.is_empty() {
        return Err(SubjectError::Empty { what });
    }
    match queue.char_indices().find(|&(_, ch)| is_forbidden(ch)) {
        Some((at, ch)) => Err(SubjectError::ForbiddenChar {
            what,
            name: queue.to_owned(),
            ch,
            at,
        }),
        None => Ok(()),
    }
}

/// Whitespace and control characters: they delimit or terminate control lines, or are invisible.
fn is_forbidden(ch: char) -> bool {
    ch.is_whitespace() || ch.is_control()
}

fn check_subject(what: NameKind, subject: &str, wildcards: bool) -> Result<(), SubjectError> {
    // This runs for every publish (subject and reply subject), so the common case is checked
    // first, on bytes: printable ASCII without wildcards, and no empty token.
    let bytes = subject.as_bytes();
    let plain = bytes
        .iter()
        .all(|&b| b > b' ' && b < 0x7f && b != b'*' && b != b'>');
    if plain
        && bytes.first().is_some_and(|&b| b != b'.')
        && bytes.last().is_some_and(|&b| b != b'.')
        && !bytes.windows(2).any(|w| w == b"..")
    {
        return Ok(());
    }
    check_subject_slowly(what, subject, wildcards)
}

/// Checks a subject character by character, finding the first problem and where it is.
fn check_subject_slowly(
    what: NameKind,
    subject: &str,
    wildcards: bool,
) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty { what });
    }
    let name = || subject.to_owned();
    let mut start = 0;
    for token in subject.split('.') {
        let end = start + token.len();
        if token.is_empty() {
            return Err(SubjectError::EmptyToken {
                what,
                name: name(),
                at: start,
            });
        }
        for (offset, ch) in token.char_indices() {
            let at = start + offset;
            if is_forbidden(ch) {
                return Err(SubjectError::ForbiddenChar {
                    what,
                    name: name(),
                    ch,
                    at,
                });
            }
            if ch == '*' || ch == '>' {
                if token.len() != 1 {
                    return Err(SubjectError::WildcardInsideToken {
                        what,
                        name: name(),
                        wildcard: ch,
                        at,
                    });
                }
                if !wildcards {
                    return Err(SubjectError::WildcardNotAllowed {
                        what,
                        name: name(),
                        wildcard: ch,
                        at,
                    });
                }
                if ch == '>' && end != subject.len() {
                    return Err(SubjectError::FullWildcardNotLast {
                        what,
                        name: name(),
                        at,
                    });
                }
            }
        }
        start = end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_careful_one() {
        let pieces = [
            "a", "b1", ".", "..", "*", ">", " ", "\t", "\u{7f}", "é", "\u{a0}", "-_", "",
        ];
        let mut subjects = vec![String::new()];
        for _ in 0..3 {
            subjects = subjects
                .iter()
                .flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}")))
                .collect();
            for subject in &subjects {
                for wildcards in [false, true] {
                    assert_eq!(
                        check_subject(NameKind::Subject, subject, wildcards),
                        check_subject_slowly(NameKind::Subject, subject, wildcards),
                        "{subject:?}"
                    );
                }
            }
        }
    }

    fn msg(r: Result<(), SubjectError>) -> String {
        r.expect_err("should be refused").to_string()
    }

    #[test]
    fn accepts_literal_subjects() {
        for s in [
            "a",
            "foo.bar",
            "$JS.API.INFO",
            "_INBOX.abc.def",
            "default.wrpc.0.0.1.wasi:http/outgoing-handler@0.2.1.handle",
            "ünïcode.ok",
            "a-b_c.D9",
        ] {
            assert_eq!(validate_publish_subject(s), Ok(()), "{s}");
            assert_eq!(validate_subscribe_subject(s), Ok(()), "{s}");
            assert_eq!(validate_reply_subject(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn accepts_wildcards_when_subscribing() {
        for s in [
            "*",
            ">",
            "foo.*",
            "foo.>",
            "*.bar.>",
            "a.*.*.b",
            "_INBOX.x.*",
        ] {
            assert_eq!(validate_subscribe_subject(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(msg(validate_publish_subject("")), "subject is empty");
        assert_eq!(msg(validate_queue_group("")), "queue group is empty");
        assert_eq!(msg(validate_reply_subject("")), "reply subject is empty");
    }

    #[test]
    fn refuses_empty_tokens_with_position() {
        assert_eq!(
            msg(validate_publish_subject("a..b")),
            "subject \"a..b\": empty token at byte 2"
        );
        assert_eq!(
            msg(validate_publish_subject(".a")),
            "subject \".a\": empty token at byte 0"
        );
        assert_eq!(
            msg(validate_subscribe_subject("a.")),
            "subject \"a.\": empty token at byte 2"
        );
        assert_eq!(
            msg(validate_subscribe_subject(".")),
            "subject \".\": empty token at byte 0"
        );
    }

    #[test]
    fn refuses_whitespace_and_control_characters() {
        assert_eq!(
            msg(validate_publish_subject("a b")),
            "subject \"a b\": forbidden character ' ' at byte 1"
        );
        assert_eq!(
            msg(validate_publish_subject("a\tb")),
            "subject \"a\\tb\": forbidden character '\\t' at byte 1"
        );
        assert_eq!(
            msg(validate_reply_subject("x\r\nUNSUB 1")),
            "reply subject \"x\\r\\nUNSUB 1\": forbidden character '\\r' at byte 1"
        );
        for s in ["a\nb", "a\0b", "a\u{7f}", "a\u{a0}b", "a\u{2028}", "\u{85}"] {
            assert!(
                matches!(
                    validate_subscribe_subject(s),
                    Err(SubjectError::ForbiddenChar { .. })
                ),
                "{s:?}"
            );
        }
        assert_eq!(
            msg(validate_queue_group("q 1")),
            "queue group \"q 1\": forbidden character ' ' at byte 1"
        );
        assert!(validate_queue_group("q\r\n").is_err());
    }

    #[test]
    fn refuses_wildcards_when_publishing() {
        assert_eq!(
            msg(validate_publish_subject("foo.*")),
            "subject \"foo.*\": wildcard '*' at byte 4 is not allowed here, the subject must be literal"
        );
        assert_eq!(
            validate_reply_subject(">"),
            Err(SubjectError::WildcardNotAllowed {
                what: NameKind::ReplySubject,
                name: ">".into(),
                wildcard: '>',
                at: 0
            })
        );
    }

    #[test]
    fn refuses_misplaced_wildcards() {
        assert_eq!(
            msg(validate_subscribe_subject("foo.>.bar")),
            "subject \"foo.>.bar\": '>' at byte 4 must be the last token"
        );
        assert_eq!(
            msg(validate_subscribe_subject("foo*")),
            "subject \"foo*\": '*' at byte 3 is inside a token, wildcards must be a whole token"
        );
        assert!(matches!(
            validate_publish_subject("a.b>"),
            Err(SubjectError::WildcardInsideToken {
                wildcard: '>',
                at: 3,
                ..
            })
        ));
    }

    #[test]
    fn queue_groups_allow_dots() {
        assert_eq!(validate_queue_group("ns.kind.counter"), Ok(()));
        assert_eq!(validate_queue_group("G1"), Ok(()));
    }
}

//! `-ERR` messages and whether the server closes the connection after them.
//!
//! The server sends `-ERR '<message>'`; some errors are followed by the server closing the
//! socket (authorization, stale connection, maximum payload, ...), others leave it open
//! (invalid subject, permission violations, maximum subscriptions). The list comes from the
//! protocol docs, ADR-40 and nats-server's `client.go`. Matching ignores ASCII case and checks
//! prefixes, because servers append detail (`... (sid "3")`, `..., too many tokens`).
//! Like nats.go, an error we do not recognise counts as fatal: assuming the connection survives
//! when it did not is the worse mistake.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which operation a permission violation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PermissionAction {
    /// A publish (`Permissions Violation for Publish to "<subject>"`).
    Publish,
    /// A subscription (`Permissions Violation for Subscription to "<subject>"`, also with
    /// `using queue "<q>"` or `, too many tokens` after it).
    Subscribe,
    /// A publish whose reply subject the client may not use (`Permissions Violation for Publish
    /// with Reply of "<reply>"`); the subject named is the reply subject.
    Reply,
}

impl fmt::Display for PermissionAction {
    /// The verb of a sentence: "publish to", "subscribe to", "publish with reply subject".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PermissionAction::Publish => "publish to",
            PermissionAction::Subscribe => "subscribe to",
            PermissionAction::Reply => "publish with reply subject",
        })
    }
}

/// The known `-ERR` messages, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerErrorKind {
    /// `Authorization Violation`: bad or missing credentials. Fatal.
    AuthorizationViolation,
    /// `Authentication Timeout`: CONNECT came too late. Fatal.
    AuthenticationTimeout,
    /// `User/Account Authentication Expired`. Fatal.
    AuthenticationExpired,
    /// `Stale Connection`: PINGs went unanswered. Fatal.
    StaleConnection,
    /// `Maximum Connections Exceeded`. Fatal.
    MaxConnectionsExceeded,
    /// `Maximum Payload Violation`: a message exceeded `max_payload`. Fatal.
    MaxPayloadViolation,
    /// `Maximum Control Line Exceeded`. Fatal.
    MaxControlLineExceeded,
    /// `Slow Consumer`: the client did not read fast enough. Fatal.
    SlowConsumer,
    /// `Unknown Protocol Operation`. Fatal.
    UnknownProtocolOperation,
    /// `Parser Error`. Fatal.
    ParserError,
    /// `Secure Connection - TLS Required`. Fatal.
    TlsRequired,
    /// `Invalid Client Protocol`. Fatal.
    InvalidClientProtocol,
    /// `Attempted To Connect To Route Port`. Fatal.
    RoutePort,
    /// `no responders requires headers support`. Fatal.
    NoRespondersRequiresHeaders,
    /// `Invalid Subject`: a SUB was refused. The connection stays open.
    InvalidSubject,
    /// `Invalid Publish Subject` (pedantic mode). The connection stays open.
    InvalidPublishSubject,
    /// `Permissions Violation for ...`. The connection stays open.
    PermissionViolation {
        /// Which operation was refused.
        action: PermissionAction,
        /// The subject named in the message, if it could be read.
        subject: Option<String>,
        /// The queue group named in the message (`... using queue "<q>"`), if any.
        queue: Option<String>,
    },
    /// `maximum subscriptions exceeded`: a SUB was refused. The connection stays open.
    MaxSubscriptionsExceeded,
    /// Anything else. Treated as fatal.
    Other,
}

impl ServerErrorKind {
    /// Whether the server closes the connection after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            ServerErrorKind::InvalidSubject
                | ServerErrorKind::InvalidPublishSubject
                | ServerErrorKind::PermissionViolation { .. }
                | ServerErrorKind::MaxSubscriptionsExceeded
        )
    }
}

/// A `-ERR` from the server: its message with the quotes removed, and its classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("server error: {message}")]
pub struct ServerError {
    /// The message between the single quotes, as sent.
    pub message: String,
    /// What the message means.
    pub kind: ServerErrorKind,
}

/// Known message prefixes (lowercase) and their kinds, except permission violations which
/// carry fields.
const KNOWN: &[(&str, ServerErrorKind)] = &[
    (
        "authorization violation",
        ServerErrorKind::AuthorizationViolation,
    ),
    (
        "authentication timeout",
        ServerErrorKind::AuthenticationTimeout,
    ),
    (
        "authorization timeout",
        ServerErrorKind::AuthenticationTimeout,
    ),
    (
        "user authentication expired",
        ServerErrorKind::AuthenticationExpired,
    ),
    (
        "account authentication expired",
        ServerErrorKind::AuthenticationExpired,
    ),
    ("stale connection", ServerErrorKind::StaleConnection),
    (
        "maximum connections exceeded",
        ServerErrorKind::MaxConnectionsExceeded,
    ),
    (
        "maximum payload violation",
        ServerErrorKind::MaxPayloadViolation,
    ),
    (
        "maximum control line exceeded",
        ServerErrorKind::MaxControlLineExceeded,
    ),
    ("slow consumer", ServerErrorKind::SlowConsumer),
    (
        "unknown protocol operation",
        ServerErrorKind::UnknownProtocolOperation,
    ),
    ("parser error", ServerErrorKind::ParserError),
    (
        "secure connection - tls required",
        ServerErrorKind::TlsRequired,
    ),
    (
        "invalid client protocol",
        ServerErrorKind::InvalidClientProtocol,
    ),
    (
        "attempted to connect to route port",
        ServerErrorKind::RoutePort,
    ),
    (
        "no responders requires headers support",
        ServerErrorKind::NoRespondersRequiresHeaders,
    ),
    ("invalid subject", ServerErrorKind::InvalidSubject),
    (
        "invalid publish subject",
        ServerErrorKind::InvalidPublishSubject,
    ),
    (
        "maximum subscriptions exceeded",
        ServerErrorKind::MaxSubscriptionsExceeded,
    ),
];

impl ServerError {
    /// Reads the text after `-ERR`: trims blanks, strips one pair of surrounding single quotes
    /// (the server always quotes; an unquoted message is accepted as is) and classifies it.
    pub fn parse(text: &str) -> Self {
        let text = text.trim_matches([' ', '\t']);
        let message = text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(text)
            .to_owned();
        let kind = classify(&message);
        ServerError { message, kind }
    }

    /// Whether the server closes the connection after this error.
    pub fn is_fatal(&self) -> bool {
        self.kind.is_fatal()
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn classify(message: &str) -> ServerErrorKind {
    if starts_with_ignore_case(message, "permissions violation") {
        let action = if starts_with_ignore_case(message, "permissions violation for subscription") {
            PermissionAction::Subscribe
        } else if starts_with_ignore_case(message, "permissions violation for publish with reply") {
            PermissionAction::Reply
        } else {
            PermissionAction::Publish
        };
        let subject = first_quoted(message);
        let queue =
            find_ignore_case(message, "using queue").and_then(|at| first_quoted(&message[at..]));
        return ServerErrorKind::PermissionViolation {
            action,
            subject,
            queue,
        };
    }
    KNOWN
        .iter()
        .find(|(prefix, _)| starts_with_ignore_case(message, prefix))
        .map_or(ServerErrorKind::Other, |(_, kind)| kind.clone())
}

fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    let (t, n) = (text.as_bytes(), needle.as_bytes());
    t.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
}

/// The first Go `%q`-quoted string in `text` (unescaping `\"` and `\\` only, enough for
/// subjects).
fn first_quoted(text: &str) -> Option<String> {
    let open = text.find('"')?;
    let mut out = String::new();
    let mut chars = text[open + 1..].chars();
    while let Some(ch) = chars.next() {
        match ch {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some(esc @ ('"' | '\\')) => out.push(esc),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            _ => out.push(ch),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_quotes_and_classifies_fatal_errors() {
        for (text, kind) in [
            (
                "'Authorization Violation'",
                ServerErrorKind::AuthorizationViolation,
            ),
            (
                "'Authentication Timeout'",
                ServerErrorKind::AuthenticationTimeout,
            ),
            (
                "'Authorization Timeout'",
                ServerErrorKind::AuthenticationTimeout,
            ),
            (
                "'User Authentication Expired'",
                ServerErrorKind::AuthenticationExpired,
            ),
            (
                "'Account Authentication Expired'",
                ServerErrorKind::AuthenticationExpired,
            ),
            ("'Stale Connection'", ServerErrorKind::StaleConnection),
            (
                "'Maximum Connections Exceeded'",
                ServerErrorKind::MaxConnectionsExceeded,
            ),
            (
                "'Maximum Payload Violation'",
                ServerErrorKind::MaxPayloadViolation,
            ),
            (
                "'Maximum Control Line Exceeded'",
                ServerErrorKind::MaxControlLineExceeded,
            ),
            ("'Slow Consumer'", ServerErrorKind::SlowConsumer),
            (
                "'Unknown Protocol Operation'",
                ServerErrorKind::UnknownProtocolOperation,
            ),
            ("'Parser Error'", ServerErrorKind::ParserError),
            (
                "'Secure Connection - TLS Required'",
                ServerErrorKind::TlsRequired,
            ),
            (
                "'Invalid Client Protocol'",
                ServerErrorKind::InvalidClientProtocol,
            ),
            (
                "'Attempted To Connect To Route Port'",
                ServerErrorKind::RoutePort,
            ),
            (
                "'no responders requires headers support'",
                ServerErrorKind::NoRespondersRequiresHeaders,
            ),
            ("'Something New'", ServerErrorKind::Other),
        ] {
            let e = ServerError::parse(text);
            assert_eq!(e.kind, kind, "{text}");
            assert!(e.is_fatal(), "{text}");
            assert_eq!(e.message, text.trim_matches('\''));
        }
    }

    #[test]
    fn classifies_non_fatal_errors() {
        for (text, kind) in [
            ("'Invalid Subject'", ServerErrorKind::InvalidSubject),
            (
                "'Invalid Publish Subject'",
                ServerErrorKind::InvalidPublishSubject,
            ),
            (
                "'maximum subscriptions exceeded'",
                ServerErrorKind::MaxSubscriptionsExceeded,
            ),
        ] {
            let e = ServerError::parse(text);
            assert_eq!(e.kind, kind);
            assert!(!e.is_fatal());
        }
    }

    #[test]
    fn reads_permission_violations() {
        let e = ServerError::parse(r#" 'Permissions Violation for Publish to "secret.x"' "#);
        assert_eq!(
            e.message,
            r#"Permissions Violation for Publish to "secret.x""#
        );
        assert_eq!(
            e.kind,
            ServerErrorKind::PermissionViolation {
                action: PermissionAction::Publish,
                subject: Some("secret.x".into()),
                queue: None
            }
        );
        assert!(!e.is_fatal());

        let e = ServerError::parse(
            r#"'Permissions Violation for Subscription to "a.>" using queue "q1"'"#,
        );
        assert_eq!(
            e.kind,
            ServerErrorKind::PermissionViolation {
                action: PermissionAction::Subscribe,
                subject: Some("a.>".into()),
                queue: Some("q1".into())
            }
        );

        let e =
            ServerError::parse(r#"'Permissions Violation for Subscription to "we\"ird" (sid 3)'"#);
        assert!(matches!(
            e.kind,
            ServerErrorKind::PermissionViolation { subject: Some(ref s), queue: None, .. } if s == "we\"ird"
        ));

        // Exactly as nats-server 2.15.1 sends them (`client.go`).
        let e = ServerError::parse(
            r#"'Permissions Violation for Publish with Reply of "_INBOX.abc.1"'"#,
        );
        assert_eq!(
            e.kind,
            ServerErrorKind::PermissionViolation {
                action: PermissionAction::Reply,
                subject: Some("_INBOX.abc.1".into()),
                queue: None
            }
        );
        let e = ServerError::parse(
            r#"'Permissions Violation for Subscription to "a.b.c", too many tokens'"#,
        );
        assert!(matches!(
            e.kind,
            ServerErrorKind::PermissionViolation { action: PermissionAction::Subscribe, subject: Some(ref s), .. } if s == "a.b.c"
        ));
        assert_eq!(
            PermissionAction::Reply.to_string(),
            "publish with reply subject"
        );

        let e = ServerError::parse("'Permissions Violation for Publish to'");
        assert!(matches!(
            e.kind,
            ServerErrorKind::PermissionViolation { subject: None, .. }
        ));
    }

    #[test]
    fn goes_through_bincode() {
        let error = ServerError::parse(
            r#"'Permissions Violation for Subscription to "a.b" using queue "q"'"#,
        );
        let bytes = bincode::serialize(&error).unwrap();
        assert_eq!(bincode::deserialize::<ServerError>(&bytes).unwrap(), error);
    }

    #[test]
    fn accepts_unquoted_and_odd_case() {
        let e = ServerError::parse("STALE CONNECTION");
        assert_eq!(e.message, "STALE CONNECTION");
        assert_eq!(e.kind, ServerErrorKind::StaleConnection);
        let e = ServerError::parse("'");
        assert_eq!(e.message, "'");
        assert_eq!(e.kind, ServerErrorKind::Other);
        assert_eq!(ServerError::parse("").kind, ServerErrorKind::Other);
        assert_eq!(
            ServerError::parse("'Invalid Subject'").to_string(),
            "server error: Invalid Subject"
        );
    }
}

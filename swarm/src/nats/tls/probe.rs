//! Finding out why a TLS handshake failed, since the runtime does not say.
//!
//! The probe is a second connection to the server: it sends a TLS 1.2 ClientHello (in TLS 1.2
//! the server's certificates travel in clear, unlike 1.3) and reads the answer up to the
//! server's Certificate message, or its alert, or a plain NATS `INFO`. [`explain`] then says
//! what is wrong in words: the server is not TLS-first, its certificate is not issued by the
//! configured CA, does not name the host, is out of its validity period, or the server refused
//! the handshake. The probe never completes a handshake and sends nothing else.

use super::x509::Certificate;
use super::{names_host, CaCert};
use crate::nats::codec::ServerInfo;

/// Most bytes of the server's answer read before giving up on it.
const MAX_ANSWER: usize = 64 * 1024;

const RECORD_HANDSHAKE: u8 = 22;
const RECORD_ALERT: u8 = 21;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_CERTIFICATE: u8 = 11;
const HANDSHAKE_CERTIFICATE_REQUEST: u8 = 13;
const HANDSHAKE_SERVER_HELLO_DONE: u8 = 14;

/// A TLS 1.2 ClientHello for `host` (sent as SNI), with the cipher suites, groups and signature
/// schemes a current server (Go's crypto/tls in nats-server) accepts.
pub(crate) fn client_hello(host: &str, random: [u8; 32]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[3, 3]); // TLS 1.2
    body.extend_from_slice(&random);
    body.push(0); // no session id
    let suites: [u16; 6] = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8];
    push_u16(&mut body, (suites.len() * 2) as u16);
    for suite in suites {
        push_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut extensions = Vec::new();
    let name = host.trim_end_matches('.').as_bytes();
    let mut sni = Vec::new();
    push_u16(&mut sni, (name.len() + 3) as u16);
    sni.push(0); // host_name
    push_u16(&mut sni, name.len() as u16);
    sni.extend_from_slice(name);
    extension(&mut extensions, 0x0000, &sni);
    extension(&mut extensions, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // x25519, P-256, P-384
    extension(&mut extensions, 0x000b, &[1, 0]); // uncompressed points
    let schemes: [u16; 9] = [
        0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
    ];
    let mut algorithms = Vec::new();
    push_u16(&mut algorithms, (schemes.len() * 2) as u16);
    for scheme in schemes {
        push_u16(&mut algorithms, scheme);
    }
    extension(&mut extensions, 0x000d, &algorithms);
    extension(&mut extensions, 0x0017, &[]); // extended master secret
    extension(&mut extensions, 0xff01, &[0]); // renegotiation info
    push_u16(&mut body, extensions.len() as u16);
    body.extend_from_slice(&extensions);

    let mut handshake = vec![HANDSHAKE_CLIENT_HELLO];
    push_u24(&mut handshake, body.len());
    handshake.extend_from_slice(&body);
    let mut record = vec![RECORD_HANDSHAKE, 3, 1];
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn push_u24(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    push_u16(out, kind);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// What the server answered to the probe's ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not enough bytes yet.
    NeedMore,
    /// A plain NATS `INFO` (its JSON): the server is not TLS-first.
    PlainInfo(String),
    /// A TLS alert: the server refused the handshake.
    Alert(u8),
    /// The server's certificate chain (leaf first, DER), and whether it asked for a client
    /// certificate.
    Certificates {
        chain: Vec<Vec<u8>>,
        wants_client_certificate: bool,
    },
    /// Something else; says what.
    Other(String),
}

/// Collects the server's answer as it arrives.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    bytes: Vec<u8>,
}

impl Flight {
    pub fn new() -> Flight {
        Flight::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// What the bytes so far say; [`Answer::NeedMore`] until they say something.
    pub fn answer(&self) -> Answer {
        let bytes = &self.bytes;
        let Some(&first) = bytes.first() else {
            return Answer::NeedMore;
        };
        if first.is_ascii_alphabetic() || first == b'-' || first == b'+' {
            return self.text_answer();
        }
        let mut handshake = Vec::new();
        let mut rest = bytes.as_slice();
        let mut wants_client_certificate = false;
        while rest.len() >= 5 {
            let (kind, len) = (rest[0], usize::from(u16::from_be_bytes([rest[3], rest[4]])));
            if rest[1] != 3 {
                return Answer::Other("the server answered with something that is not TLS".into());
            }
            if rest.len() < 5 + len {
                break;
            }
            let payload = &rest[5..5 + len];
            rest = &rest[5 + len..];
            match kind {
                RECORD_ALERT if payload.len() >= 2 => return Answer::Alert(payload[1]),
                RECORD_HANDSHAKE => handshake.extend_from_slice(payload),
                _ => {
                    return Answer::Other(format!(
                        "the server sent a TLS record of type {kind} before its certificate"
                    ))
                }
            }
            // Handshake messages may span records: look at the whole ones so far.
            let mut messages = handshake.as_slice();
            let mut chain = None;
            while messages.len() >= 4 {
                let len = usize::from(messages[1]) << 16
                    | usize::from(messages[2]) << 8
                    | usize::from(messages[3]);
                if messages.len() < 4 + len {
                    break;
                }
                let body = &messages[4..4 + len];
                match messages[0] {
                    HANDSHAKE_CERTIFICATE => match certificate_list(body) {
                        Some(list) => chain = Some(list),
                        None => return Answer::Other("an unreadable Certificate message".into()),
                    },
                    HANDSHAKE_CERTIFICATE_REQUEST => wants_client_certificate = true,
                    HANDSHAKE_SERVER_HELLO_DONE => {
                        return match chain {
                            Some(chain) => Answer::Certificates {
                                chain,
                                wants_client_certificate,
                            },
                            None => Answer::Other("the server sent no certificate".into()),
                        };
                    }
                    _ => {}
                }
                messages = &messages[4 + len..];
            }
        }
        if bytes.len() > MAX_ANSWER {
            return Answer::Other("the server's answer is too long to be a TLS handshake".into());
        }
        Answer::NeedMore
    }

    fn text_answer(&self) -> Answer {
        let Some(end) = self.bytes.windows(2).position(|w| w == b"\r\n") else {
            return if self.bytes.len() > MAX_ANSWER {
                Answer::Other("the server sent a long line of text, not TLS".into())
            } else {
                Answer::NeedMore
            };
        };
        let line = String::from_utf8_lossy(&self.bytes[..end]);
        match line.split_once(' ') {
            Some((op, json)) if op.eq_ignore_ascii_case("INFO") => {
                Answer::PlainInfo(json.trim().to_owned())
            }
            _ => Answer::Other(format!(
                "the server answered in plain text, not TLS: {:?}",
                line.chars().take(80).collect::<String>()
            )),
        }
    }

    /// What the bytes said when the server closed the connection (`closed`) or went quiet.
    pub fn at_end(&self, closed: bool) -> Answer {
        match self.answer() {
            Answer::NeedMore if self.bytes.is_empty() && closed => Answer::Other(
                "the server closed the connection without answering a TLS ClientHello".into(),
            ),
            Answer::NeedMore if self.bytes.is_empty() => {
                Answer::Other("the server did not answer a TLS ClientHello".into())
            }
            Answer::NeedMore => Answer::Other("the server's TLS answer stopped short".into()),
            answer => answer,
        }
    }
}

/// Whether `leaf` is issued by one of `trusted`, directly or through `intermediates` (the
/// certificates the server sent after its own).
fn anchored(leaf: &Certificate, intermediates: &[Certificate], trusted: &[Certificate]) -> bool {
    let mut current = leaf;
    for _ in 0..=intermediates.len() {
        if trusted.iter().any(|ca| current.issued_by(ca)) {
            return true;
        }
        match intermediates
            .iter()
            .find(|c| current.issued_by(c) && c.subject != current.subject)
        {
            Some(issuer) => current = issuer,
            None => return false,
        }
    }
    false
}

/// The certificates of a TLS 1.2 Certificate message.
fn certificate_list(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let total = u24(body)?;
    let mut list = body.get(3..3 + total)?;
    let mut chain = Vec::new();
    while !list.is_empty() {
        let len = u24(list)?;
        chain.push(list.get(3..3 + len)?.to_vec());
        list = &list[3 + len..];
    }
    Some(chain)
}

fn u24(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(..3)?;
    Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
}

fn alert_name(code: u8) -> &'static str {
    match code {
        10 => "unexpected_message",
        40 => "handshake_failure",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        112 => "unrecognized_name",
        116 => "certificate_required",
        _ => "an alert",
    }
}

/// Says why the runtime's TLS handshake with `host` failed, from the probe's `answer`, the
/// configured CAs (empty: the runtime's public roots) and the time now (seconds since 1970).
pub(crate) fn explain(host: &str, cas: &[CaCert], answer: &Answer, now: i64) -> String {
    match answer {
        Answer::PlainInfo(json) => {
            let info = ServerInfo::parse(json).ok();
            let upgrade = info
                .as_ref()
                .is_some_and(|i| i.tls_required || i.tls_available);
            if upgrade {
                "the server is not TLS-first: it sends its INFO in plain text and expects the \
                 client to upgrade the connection to TLS after it, which Lunatic cannot do; \
                 set `handshake_first: true` in the server's `tls { }` block"
                    .into()
            } else {
                "the server does not do TLS: it answered in plain NATS (INFO without TLS); \
                 connect with nats://, or give the server a `tls { }` block with \
                 `handshake_first: true`"
                    .into()
            }
        }
        Answer::Alert(code) => {
            let mut reason = format!(
                "the server refused the TLS handshake ({}, TLS alert {code})",
                alert_name(*code)
            );
            if *code == 116 {
                reason.push_str(
                    "; it wants a client certificate, which Lunatic's TLS client cannot send",
                );
            }
            reason
        }
        Answer::Certificates {
            chain,
            wants_client_certificate,
        } => explain_certificates(host, cas, chain, *wants_client_certificate, now),
        Answer::Other(what) => format!("TLS handshake failed: {what}"),
        Answer::NeedMore => "TLS handshake failed".into(),
    }
}

fn explain_certificates(
    host: &str,
    cas: &[CaCert],
    chain: &[Vec<u8>],
    wants_client_certificate: bool,
    now: i64,
) -> String {
    let Some(leaf) = chain.first().and_then(|der| Certificate::parse(der).ok()) else {
        return "TLS handshake failed: the server's certificate cannot be read".into();
    };
    let described = format!(
        "the server's certificate ({}, issued by {})",
        leaf.subject_text(),
        leaf.issuer_text()
    );
    let mut problems = Vec::new();
    if !cas.is_empty() {
        let trusted: Vec<Certificate> = cas
            .iter()
            .filter_map(|ca| Certificate::parse(&ca.der).ok())
            .collect();
        let intermediates: Vec<Certificate> = chain
            .iter()
            .skip(1)
            .filter_map(|der| Certificate::parse(der).ok())
            .collect();
        if !anchored(&leaf, &intermediates, &trusted) {
            let names: Vec<String> = trusted.iter().map(Certificate::subject_text).collect();
            problems.push(format!(
                "is not issued by the configured CA ({})",
                names.join("; ")
            ));
        }
    }
    if !names_host(&leaf.dns_names, host) {
        problems.push(format!(
            "does not name the host {host:?}: it is for {}",
            leaf.names_text()
        ));
    }
    if now < leaf.not_before.unix {
        problems.push(format!("is not valid before {}", leaf.not_before.text));
    }
    if now > leaf.not_after.unix {
        problems.push(format!("expired on {}", leaf.not_after.text));
    }
    let mut reason = if problems.is_empty() && cas.is_empty() {
        format!(
            "TLS handshake failed: {described} is not trusted: without a configured CA only the \
             public roots built into the runtime (webpki-roots) are, so give its CA with \
             ConnectOptions::tls_ca or tls_ca_file"
        )
    } else if problems.is_empty() {
        format!(
            "TLS handshake failed although {described} names {host:?}, is issued by the \
             configured CA and is within its validity period: the runtime's verifier (webpki \
             0.22) refused it for another reason (for example a signature algorithm or \
             certificate extension it does not support)"
        )
    } else {
        format!(
            "TLS handshake failed: {described} {}",
            problems.join(", and ")
        )
    };
    if wants_client_certificate {
        reason.push_str(
            "; also, the server asks for a client certificate, which Lunatic's TLS client \
             cannot send",
        );
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::super::ca_certificates;
    use super::super::tests::{der, leaf, LEAF_NOT_AFTER, LEAF_NOT_BEFORE, LEAF_PEM};
    use super::super::tests::{CA_PEM, OTHER_CA_PEM};
    use super::*;

    const NOW: i64 = LEAF_NOT_BEFORE + 3600;

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 3, 3];
        push_u16(&mut out, payload.len() as u16);
        out.extend_from_slice(payload);
        out
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        push_u24(&mut out, body.len());
        out.extend_from_slice(body);
        out
    }

    /// ServerHello, Certificate (the chain), optionally CertificateRequest, ServerHelloDone.
    fn server_flight(chain: &[Vec<u8>], request: bool) -> Vec<u8> {
        let mut list = Vec::new();
        for cert in chain {
            push_u24(&mut list, cert.len());
            list.extend_from_slice(cert);
        }
        let mut certificate = Vec::new();
        push_u24(&mut certificate, list.len());
        certificate.extend_from_slice(&list);
        let mut messages = message(2, &[3, 3, 0, 0]);
        messages.extend(message(HANDSHAKE_CERTIFICATE, &certificate));
        if request {
            messages.extend(message(HANDSHAKE_CERTIFICATE_REQUEST, &[1, 64, 0, 0]));
        }
        messages.extend(message(HANDSHAKE_SERVER_HELLO_DONE, &[]));
        // Split over two records, in the middle of the Certificate message.
        let cut = messages.len() / 2;
        let mut out = record(RECORD_HANDSHAKE, &messages[..cut]);
        out.extend(record(RECORD_HANDSHAKE, &messages[cut..]));
        out
    }

    fn answer_of(bytes: &[u8]) -> Answer {
        let mut flight = Flight::new();
        // Byte by byte: every prefix must say NeedMore or the final answer.
        let mut last = Answer::NeedMore;
        for b in bytes {
            flight.feed(&[*b]);
            last = flight.answer();
        }
        last
    }

    #[test]
    fn client_hello_is_a_well_formed_record() {
        let hello = client_hello("localhost", [7; 32]);
        assert_eq!(&hello[..3], &[RECORD_HANDSHAKE, 3, 1]);
        assert_eq!(
            usize::from(u16::from_be_bytes([hello[3], hello[4]])),
            hello.len() - 5
        );
        assert_eq!(hello[5], HANDSHAKE_CLIENT_HELLO);
        assert_eq!(u24(&hello[6..]).unwrap(), hello.len() - 9);
        assert!(hello.windows(9).any(|w| w == b"localhost"));
        // The extensions' length matches what follows it.
        let body = &hello[9..];
        let after_suites = 2 + 32 + 1 + 2 + 12 + 2;
        let extensions = usize::from(u16::from_be_bytes([
            body[after_suites],
            body[after_suites + 1],
        ]));
        assert_eq!(after_suites + 2 + extensions, body.len());
    }

    #[test]
    fn server_answers_are_recognised() {
        let chain = vec![der(LEAF_PEM), der(CA_PEM)];
        assert_eq!(
            answer_of(&server_flight(&chain, false)),
            Answer::Certificates {
                chain: chain.clone(),
                wants_client_certificate: false
            }
        );
        assert!(matches!(
            answer_of(&server_flight(&chain, true)),
            Answer::Certificates {
                wants_client_certificate: true,
                ..
            }
        ));
        assert_eq!(
            answer_of(b"INFO {\"tls_required\":true}\r\n"),
            Answer::PlainInfo("{\"tls_required\":true}".into())
        );
        assert_eq!(
            answer_of(&record(RECORD_ALERT, &[2, 70])),
            Answer::Alert(70)
        );
        assert!(matches!(
            answer_of(b"HTTP/1.1 400 Bad\r\n"),
            Answer::Other(_)
        ));
        assert!(matches!(
            answer_of(&[0x16, 9, 9, 0, 1, 0]),
            Answer::Other(_)
        ));
        let mut flight = Flight::new();
        assert_eq!(
            flight.at_end(false),
            Answer::Other("the server did not answer a TLS ClientHello".into())
        );
        assert!(matches!(flight.at_end(true), Answer::Other(s) if s.contains("closed")));
        flight.feed(&server_flight(&chain, false)[..20]);
        assert_eq!(flight.answer(), Answer::NeedMore);
        assert!(matches!(flight.at_end(true), Answer::Other(s) if s.contains("stopped short")));
    }

    #[test]
    fn plain_servers_are_told_apart_from_upgrade_servers() {
        let plain = explain("localhost", &[], &Answer::PlainInfo("{}".into()), NOW);
        assert!(plain.contains("does not do TLS"), "{plain}");
        let upgrade = Answer::PlainInfo("{\"tls_required\":true}".into());
        let upgrade = explain("localhost", &[], &upgrade, NOW);
        assert!(
            upgrade.contains("not TLS-first") && upgrade.contains("handshake_first: true"),
            "{upgrade}"
        );
    }

    #[test]
    fn certificate_problems_are_named() {
        let cas = ca_certificates(CA_PEM).unwrap();
        let others = ca_certificates(OTHER_CA_PEM).unwrap();
        let answer = Answer::Certificates {
            chain: vec![der(LEAF_PEM)],
            wants_client_certificate: false,
        };
        let wrong_ca = explain("localhost", &others, &answer, NOW);
        assert_eq!(
            wrong_ca,
            "TLS handshake failed: the server's certificate (CN=localhost, issued by O=swarm, \
             CN=swarm test CA) is not issued by the configured CA (CN=swarm untrusted CA)"
        );
        let wrong_name = explain("nats.example.com", &cas, &answer, NOW);
        assert!(
            wrong_name.ends_with(
                "does not name the host \"nats.example.com\": it is for localhost, \
                 *.nats.test, 127.0.0.1"
            ),
            "{wrong_name}"
        );
        let expired = explain("localhost", &cas, &answer, LEAF_NOT_AFTER + 1);
        assert!(
            expired.ends_with("expired on 2126-11-07 08:43:08 UTC"),
            "{expired}"
        );
        let early = explain("a.nats.test", &cas, &answer, LEAF_NOT_BEFORE - 1);
        assert!(early.contains("is not valid before 2026-12-01"), "{early}");
        let both = explain("example.com", &others, &answer, NOW);
        assert!(both.contains("configured CA") && both.contains(", and does not name"));
        let unexplained = explain("localhost", &cas, &answer, NOW);
        assert!(unexplained.contains("for another reason"), "{unexplained}");
        let no_ca = explain("localhost", &[], &answer, NOW);
        assert!(
            no_ca.contains("webpki-roots") && no_ca.contains("tls_ca"),
            "{no_ca}"
        );
        let with_intermediate = Answer::Certificates {
            chain: vec![der(LEAF_PEM), der(OTHER_CA_PEM)],
            wants_client_certificate: true,
        };
        // A configured CA sent along by the server does not make the leaf its own.
        let note = explain("localhost", &others, &with_intermediate, NOW);
        assert!(note.contains("not issued by"), "{note}");
        assert!(note.contains("asks for a client certificate"), "{note}");
        // The leaf is issued by an intermediate the server sends, issued by the configured CA.
        let mut intermediate = Certificate::parse(&der(CA_PEM)).unwrap();
        let root = Certificate::parse(&der(OTHER_CA_PEM)).unwrap();
        intermediate.issuer = root.subject.clone();
        intermediate.authority_key_id = root.subject_key_id.clone();
        assert!(anchored(
            &leaf(),
            &[intermediate],
            std::slice::from_ref(&root)
        ));
        assert!(!anchored(&leaf(), &[], &[root]));
    }

    #[test]
    fn alerts_are_named() {
        let text = explain("localhost", &[], &Answer::Alert(116), NOW);
        assert!(text.contains("certificate_required") && text.contains("client certificate"));
        let text = explain("localhost", &[], &Answer::Alert(70), NOW);
        assert!(text.contains("protocol_version"), "{text}");
    }
}

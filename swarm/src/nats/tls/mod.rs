//! TLS for `tls://` servers: what the runtime's TLS client can do, and explaining what it cannot.
//!
//! Lunatic 0.13's TLS client (`lunatic::net::TlsStream`, rustls 0.20 and webpki 0.22 in the
//! host) opens a TCP connection and does the TLS handshake at once; it cannot upgrade a connection
//! that is already open. NATS normally sends a plain `INFO` first and upgrades after it, so only
//! nats-server's TLS-first mode (`tls { handshake_first: true }`) is reachable. The host checks
//! the server's certificate chain against the CA certificates given (or its built-in public roots)
//! and against the host *name* of the URL, which it also sends as SNI; it cannot check a
//! certificate against an IP address, and it has no client certificates.
//!
//! A handshake that fails does not return an error: the host traps, which ends the calling
//! process, and says nothing about why. The handshake therefore runs in a process of its own
//! (`dial`), and when that process dies, [`probe`] finds out why: it sends the server a TLS 1.2
//! ClientHello over plain TCP, whose answer carries the certificates in clear, and compares them
//! with the configured CAs and the host name ([`x509`] reads them). A plain `INFO` instead of a
//! TLS answer means the server is not TLS-first.
//!
//! Everything here but `dial` is pure and unit tested natively.

// Natively only the tests use what the dialer (wasm32 only) uses.
#[cfg(target_arch = "wasm32")]
pub(crate) mod dial;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod probe;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod x509;

#[cfg(test)]
pub(crate) mod tests;

/// One CA certificate of the configured PEM: its own PEM block (the host reads exactly one
/// certificate per entry) and its DER bytes (for explaining failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaCert {
    pub pem: String,
    pub der: Vec<u8>,
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Splits PEM text into its `CERTIFICATE` blocks (other blocks and text in between are
/// skipped), checking that each decodes as a certificate.
pub(crate) fn ca_certificates(pem: &str) -> Result<Vec<CaCert>, String> {
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body_start = start + BEGIN.len();
        let end = rest[body_start..]
            .find(END)
            .ok_or_else(|| format!("certificate {} has no {END} line", certs.len() + 1))?
            + body_start;
        let body = &rest[body_start..end];
        let der = base64_decode(body)
            .map_err(|e| format!("certificate {} is not valid base64: {e}", certs.len() + 1))?;
        x509::Certificate::parse(&der)
            .map_err(|e| format!("certificate {} does not decode: {e}", certs.len() + 1))?;
        certs.push(CaCert {
            pem: format!("{BEGIN}{body}{END}\n"),
            der,
        });
        rest = &rest[end + END.len()..];
    }
    if certs.is_empty() {
        return Err(format!("no CERTIFICATE block ({BEGIN}) found"));
    }
    Ok(certs)
}

/// Standard base64 with padding; whitespace is skipped.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut padding = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return Err(format!("unexpected character {:?}", c as char)),
        };
        if padding > 0 {
            return Err("text after the padding".into());
        }
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if padding > 2 || bits >= 6 {
        return Err("truncated".into());
    }
    Ok(out)
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
/// Whether `host` is one of the DNS names of a certificate (case-insensitive; a `*.` name
/// stands for exactly one label), as webpki matches them.
pub(crate) fn names_host(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => name == host,
        }
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn pem_blocks_are_split_and_checked() {
        let two = format!("junk\n{}between\n{}", tests::CA_PEM, tests::OTHER_CA_PEM);
        let certs = ca_certificates(&two).unwrap();
        assert_eq!(certs.len(), 2);
        assert!(certs[0].pem.starts_with(BEGIN) && certs[0].pem.ends_with(&format!("{END}\n")));
        assert_eq!(
            ca_certificates(&certs[1].pem).unwrap(),
            vec![certs[1].clone()]
        );
        let truncated = &tests::CA_PEM[..tests::CA_PEM.len() - 40];
        let err = ca_certificates(&format!("{truncated}{END}\n")).unwrap_err();
        assert!(err.contains("certificate 1 does not decode"), "{err}");
        assert!(ca_certificates("-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Z").is_err());
        assert!(base64_decode("Zg==Zg").is_err());
    }

    #[test]
    fn host_names_match_like_webpki() {
        let names = vec!["localhost".to_owned(), "*.nats.test".to_owned()];
        for host in ["localhost", "LOCALHOST", "localhost.", "a.nats.test"] {
            assert!(names_host(&names, host), "{host}");
        }
        for host in [
            "nats.test",
            "a.b.nats.test",
            "localhost2",
            ".nats.test",
            "example.com",
        ] {
            assert!(!names_host(&names, host), "{host}");
        }
    }
}

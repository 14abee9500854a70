//! Just enough DER to read what an X.509 certificate says about itself: subject, issuer,
//! validity, the names it is for and its key identifiers. It explains a failed handshake to the
//! user; it decides nothing (the runtime's webpki does the checking, signatures included).

use std::fmt;
use std::net::IpAddr;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(String);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: &str) -> Result<T, DerError> {
    Err(DerError(what.to_owned()))
}

/// One DER element.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    /// Tag, length and value, as they were.
    whole: &'a [u8],
}

/// Reads the elements of one level of DER, in order.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self) -> Result<Tlv<'a>, DerError> {
        let bytes = self.rest;
        let (&tag, after_tag) = bytes.split_first().ok_or(DerError("truncated".into()))?;
        if tag & 0x1f == 0x1f {
            return err("multi-byte tags are not used in certificates");
        }
        let (&first, mut after) = after_tag
            .split_first()
            .ok_or(DerError("truncated".into()))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || after.len() < count {
                return err("bad length");
            }
            let len = after[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            after = &after[count..];
            len
        };
        if after.len() < len {
            return err("truncated");
        }
        let header = bytes.len() - after.len();
        self.rest = &after[len..];
        Ok(Tlv {
            tag,
            value: &after[..len],
            whole: &bytes[..header + len],
        })
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, DerError> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(DerError(format!(
                "expected {what} (tag {tag:#04x}), found tag {:#04x}",
                tlv.tag
            )));
        }
        Ok(tlv)
    }

    /// The next element if it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;

const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const OID_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];

/// A moment as a certificate gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Time {
    /// Seconds since 1970-01-01 UTC.
    pub unix: i64,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub text: String,
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Certificate {
    /// The subject's distinguished name as DER (compared with an issuer's).
    pub subject: Vec<u8>,
    /// The issuer's distinguished name as DER.
    pub issuer: Vec<u8>,
    pub not_before: Time,
    pub not_after: Time,
    /// DNS names of the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses of the subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
}

impl Certificate {
    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Certificate, DerError> {
        let mut outer = Der::new(der);
        let cert = outer.expect(SEQUENCE, "Certificate")?;
        let mut cert = Der::new(cert.value);
        let tbs = cert.expect(SEQUENCE, "TBSCertificate")?;
        let mut tbs = Der::new(tbs.value);
        tbs.optional(0xa0)?; // version
        tbs.expect(0x02, "serialNumber")?;
        tbs.expect(SEQUENCE, "signature algorithm")?;
        let issuer = tbs.expect(SEQUENCE, "issuer")?;
        let validity = tbs.expect(SEQUENCE, "validity")?;
        let subject = tbs.expect(SEQUENCE, "subject")?;
        tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
        tbs.optional(0x81)?; // issuerUniqueID
        tbs.optional(0x82)?; // subjectUniqueID
        let mut validity = Der::new(validity.value);
        let mut certificate = Certificate {
            subject: subject.whole.to_vec(),
            issuer: issuer.whole.to_vec(),
            not_before: time(validity.next()?)?,
            not_after: time(validity.next()?)?,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            subject_key_id: None,
            authority_key_id: None,
        };
        if let Some(extensions) = tbs.optional(0xa3)? {
            let list = Der::new(extensions.value).expect(SEQUENCE, "extensions")?;
            let mut list = Der::new(list.value);
            while !list.is_empty() {
                let extension = list.expect(SEQUENCE, "extension")?;
                let mut extension = Der::new(extension.value);
                let oid = extension.expect(OID, "extension id")?;
                extension.optional(0x01)?; // critical
                let value = extension.expect(OCTET_STRING, "extension value")?;
                certificate.extension(oid.value, value.value)?;
            }
        }
        Ok(certificate)
    }

    fn extension(&mut self, oid: &[u8], value: &[u8]) -> Result<(), DerError> {
        if oid == OID_SUBJECT_ALT_NAME {
            let names = Der::new(value).expect(SEQUENCE, "subjectAltName")?;
            let mut names = Der::new(names.value);
            while !names.is_empty() {
                let name = names.next()?;
                match name.tag {
                    0x82 => self
                        .dns_names
                        .push(String::from_utf8_lossy(name.value).into_owned()),
                    0x87 => match name.value.len() {
                        4 => self.ip_addresses.push(IpAddr::from(
                            <[u8; 4]>::try_from(name.value).expect("4 bytes"),
                        )),
                        16 => self.ip_addresses.push(IpAddr::from(
                            <[u8; 16]>::try_from(name.value).expect("16 bytes"),
                        )),
                        _ => {}
                    },
                    _ => {}
                }
            }
        } else if oid == OID_SUBJECT_KEY_ID {
            let id = Der::new(value).expect(OCTET_STRING, "subjectKeyIdentifier")?;
            self.subject_key_id = Some(id.value.to_vec());
        } else if oid == OID_AUTHORITY_KEY_ID {
            let aki = Der::new(value).expect(SEQUENCE, "authorityKeyIdentifier")?;
            if let Some(id) = Der::new(aki.value).optional(0x80)? {
                self.authority_key_id = Some(id.value.to_vec());
            }
        }
        Ok(())
    }

    /// Whether `ca` is the one that issued this certificate: the issuer name is the CA's subject,
    /// and the key identifiers agree when both are there. (Signatures are the runtime's job.)
    pub fn issued_by(&self, ca: &Certificate) -> bool {
        self.issuer == ca.subject
            && match (&self.authority_key_id, &ca.subject_key_id) {
                (Some(authority), Some(subject)) => authority == subject,
                _ => true,
            }
    }

    /// The subject, such as `CN=localhost, O=Example`.
    pub fn subject_text(&self) -> String {
        name_text(&self.subject)
    }

    /// The issuer, as [`Certificate::subject_text`].
    pub fn issuer_text(&self) -> String {
        name_text(&self.issuer)
    }

    /// The names the certificate is for, such as `localhost, 127.0.0.1`; `(none)` without any.
    pub fn names_text(&self) -> String {
        let names: Vec<String> = self
            .dns_names
            .iter()
            .cloned()
            .chain(self.ip_addresses.iter().map(ToString::to_string))
            .collect();
        if names.is_empty() {
            "(no subject alternative names)".into()
        } else {
            names.join(", ")
        }
    }
}

/// A distinguished name as text: its common attributes as `CN=...`, in order.
fn name_text(der: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut outer = Der::new(der);
    if let Ok(name) = outer.expect(SEQUENCE, "name") {
        let mut sets = Der::new(name.value);
        while let Ok(set) = sets.expect(SET, "RDN") {
            let mut attributes = Der::new(set.value);
            while let Ok(attribute) = attributes.expect(SEQUENCE, "attribute") {
                let mut attribute = Der::new(attribute.value);
                let (Ok(oid), Ok(value)) = (attribute.expect(OID, "type"), attribute.next()) else {
                    continue;
                };
                let key = match oid.value {
                    [0x55, 0x04, 0x03] => "CN",
                    [0x55, 0x04, 0x06] => "C",
                    [0x55, 0x04, 0x07] => "L",
                    [0x55, 0x04, 0x08] => "ST",
                    [0x55, 0x04, 0x0a] => "O",
                    [0x55, 0x04, 0x0b] => "OU",
                    _ => continue,
                };
                let text = match value.tag {
                    // BMPString: UTF-16BE.
                    0x1e => String::from_utf16_lossy(
                        &value
                            .value
                            .chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .collect::<Vec<_>>(),
                    ),
                    _ => String::from_utf8_lossy(value.value).into_owned(),
                };
                parts.push(format!("{key}={text}"));
            }
        }
    }
    if parts.is_empty() {
        "(an empty name)".into()
    } else {
        parts.join(", ")
    }
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tlv: Tlv<'_>) -> Result<Time, DerError> {
    let text = std::str::from_utf8(tlv.value).map_err(|_| DerError("bad time".into()))?;
    let digits = text
        .strip_suffix('Z')
        .ok_or(DerError("time not in UTC".into()))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return err("bad time");
    }
    let (year, rest) = match (tlv.tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2]
                .parse()
                .map_err(|_| DerError("bad time".into()))?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (
            digits[..4]
                .parse()
                .map_err(|_| DerError("bad time".into()))?,
            &digits[4..],
        ),
        _ => return err("bad time"),
    };
    let field = |i: usize| -> i64 { rest[i..i + 2].parse().unwrap_or(0) };
    let (month, day, hour, minute, second) = (field(0), field(2), field(4), field(6), field(8));
    Ok(Time {
        unix: days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
        text: format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC"),
    })
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::super::tests::{self as fixtures, der, CA_PEM, LEAF_PEM, OTHER_CA_PEM};
    use super::*;

    #[test]
    fn reads_names_validity_and_key_ids() {
        let leaf = fixtures::leaf();
        assert_eq!(leaf.subject_text(), "CN=localhost");
        assert_eq!(leaf.issuer_text(), "O=swarm, CN=swarm test CA");
        assert_eq!(leaf.dns_names, ["localhost", "*.nats.test"]);
        assert_eq!(leaf.ip_addresses, [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(leaf.names_text(), "localhost, *.nats.test, 127.0.0.1");
        assert_eq!(leaf.not_before.text, "2026-12-01 08:43:08 UTC");
        assert_eq!(leaf.not_before.unix, fixtures::LEAF_NOT_BEFORE);
        assert_eq!(leaf.not_after.text, "2126-11-07 08:43:08 UTC");
        assert_eq!(leaf.not_after.unix, fixtures::LEAF_NOT_AFTER);
        let ca = Certificate::parse(&der(CA_PEM)).unwrap();
        assert_eq!(ca.subject_text(), "O=swarm, CN=swarm test CA");
        assert_eq!(
            ca.subject_key_id.as_deref(),
            leaf.authority_key_id.as_deref()
        );
        assert_eq!(ca.names_text(), "(no subject alternative names)");
    }

    #[test]
    fn issuers_are_recognised_by_name_and_key_id() {
        let leaf = fixtures::leaf();
        let ca = Certificate::parse(&der(CA_PEM)).unwrap();
        let other = Certificate::parse(&der(OTHER_CA_PEM)).unwrap();
        assert!(leaf.issued_by(&ca));
        assert!(!leaf.issued_by(&other));
        assert!(ca.issued_by(&ca));
        // Same name, another key: not the issuer.
        let mut impostor = ca.clone();
        impostor.subject_key_id = other.subject_key_id.clone();
        assert!(!leaf.issued_by(&impostor));
    }

    #[test]
    fn broken_der_is_an_error_not_a_panic() {
        let leaf = der(LEAF_PEM);
        for cut in 0..leaf.len() {
            assert!(Certificate::parse(&leaf[..cut]).is_err(), "{cut}");
        }
        let mut flipped = leaf.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = Certificate::parse(&flipped);
            flipped[i] ^= 0xff;
        }
        assert!(Certificate::parse(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
        assert!(Certificate::parse(&[0x1f, 0x01, 0x00]).is_err());
    }

    #[test]
    fn dates_count_from_1970() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}

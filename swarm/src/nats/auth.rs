//! nkey and JWT (`.creds`) authentication: seed decoding, `.creds` parsing and the signature of
//! the server's nonce. Pure (no I/O but [`Credentials::from_file`]), so it is unit tested
//! natively and runs unchanged inside the Wasm guest, where the seed never leaves the process.
//!
//! How the server checks a client (the NATS docs' "NKeys" and "Decentralized JWT" auth): its INFO
//! carries a random `nonce`; the client signs the nonce's bytes with the user's ed25519 key and
//! sends, in CONNECT, `sig` (the 64-byte signature, base64url without padding) plus either
//! - `nkey`, the user's public key (`U...`), for servers that list nkey users in their config, or
//! - `jwt`, the user JWT, in operator mode: the server checks that the JWT is signed by an account
//!   it trusts and that `sig` was made by the key the JWT's `sub` names.
//!
//! A `.creds` file (what `nsc` writes) holds both the user JWT and the user's seed, each between
//! dashed lines:
//!
//! ```text
//! -----BEGIN NATS USER JWT-----
//! eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJ...
//! ------END NATS USER JWT------
//!
//! -----BEGIN USER NKEY SEED-----
//! SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM
//! ------END USER NKEY SEED------
//! ```
//!
//! It is read the way nats.go and nats.rs read it: the first dashed block is the JWT, the second
//! the seed, whatever the words between the dashes say. On top of that the seed must be a user
//! seed and the JWT must be for that user, so a mixed-up file fails here, with a reason, rather
//! than at the server with a bare `Authorization Violation`.
//!
//! The crypto is the `nkeys` crate's (ed25519-dalek underneath), the same async-nats uses.

use std::fmt;
use std::path::Path;

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use super::codec::Connect;
use super::options::Auth;

/// Length of an encoded nkey seed (`S` + type + base32 of the key and a CRC).
const SEED_LENGTH: usize = 58;

/// Why credentials cannot be used. Never contains a seed, or any other part of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthError {
    /// An nkey seed could not be decoded, or is not a user seed.
    #[error("invalid nkey seed: {reason}")]
    InvalidSeed {
        /// What is wrong with it.
        reason: String,
    },
    /// The text of a `.creds` file could not be read as one.
    #[error("malformed credentials (.creds): {reason}")]
    InvalidCredentials {
        /// What is wrong with it.
        reason: String,
    },
    /// A `.creds` file could not be read.
    #[error("cannot read the credentials file {path:?}: {reason}")]
    ReadCredentials {
        /// The path as given.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// A user JWT and the seed of the user it is for, as read from a `.creds` file.
///
/// `Debug` shows neither (the JWT is not secret on its own, but it is a credential's half and
/// there is nothing to learn from it in a log); [`Credentials::public_key`] names the user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    jwt: String,
    seed: String,
}

impl Credentials {
    /// Reads the text of a `.creds` file (see the module docs): the user JWT block, then the user
    /// nkey seed block. Fails naming what is missing or wrong: no blocks, no seed block, a first
    /// block that is not a JWT, a seed that is not a user seed, or a JWT for another user.
    pub fn parse(text: &str) -> Result<Credentials, AuthError> {
        let bad = |reason: String| AuthError::InvalidCredentials { reason };
        let blocks = decorated_blocks(text);
        let (jwt, seed) =
            match blocks.as_slice() {
                [] => return Err(bad(
                    "no `-----BEGIN NATS USER JWT-----` block found; a .creds file holds the user \
                     JWT and the user nkey seed, each on its own line between dashed lines"
                        .into(),
                )),
                [_] => return Err(bad(
                    "the user JWT block is there but the `-----BEGIN USER NKEY SEED-----` block \
                     after it is missing"
                        .into(),
                )),
                [jwt, seed, ..] => (*jwt, *seed),
            };
        Credentials::new(jwt, seed)
    }

    /// Credentials from a user JWT and the user's seed given apart, with the same checks as
    /// [`Credentials::parse`].
    pub fn new(jwt: &str, seed: &str) -> Result<Credentials, AuthError> {
        let bad = |reason: String| AuthError::InvalidCredentials { reason };
        let (jwt, seed) = (jwt.trim(), seed.trim());
        let subject = jwt_subject(jwt).map_err(bad)?;
        let key = user_key(seed).map_err(|e| match e {
            AuthError::InvalidSeed { reason } => bad(format!("the seed: {reason}")),
            other => other,
        })?;
        let public_key = key.public_key();
        if subject != public_key {
            return Err(bad(format!(
                "the JWT is for user {subject} but the seed is the key of user {public_key}"
            )));
        }
        Ok(Credentials {
            jwt: jwt.to_owned(),
            seed: seed.to_owned(),
        })
    }

    /// Reads and parses a `.creds` file. Inside Lunatic the path must lie in a directory the node
    /// was given (the working directory, or `lunatic run --dir DIR`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Credentials, AuthError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::ReadCredentials {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Credentials::parse(&text)
    }

    /// The user JWT.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    /// The user's public nkey (`U...`), which is also the JWT's subject.
    pub fn public_key(&self) -> String {
        user_key(&self.seed).map_or_else(|_| String::new(), |k| k.public_key())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("jwt", &"<redacted>")
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// The signature of a server nonce, ready for CONNECT.
// Used by the client (`client/connector.rs`), which exists on wasm32 only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NonceSignature {
    /// The signer's public key (`U...`).
    pub public_key: String,
    /// The ed25519 signature of the nonce's bytes, base64url without padding.
    pub sig: String,
}

/// Signs `nonce` (the string from INFO, as bytes) with the user seed `seed`.
// Used by the client (`client/connector.rs`), which exists on wasm32 only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn sign_nonce(seed: &str, nonce: &str) -> Result<NonceSignature, AuthError> {
    let key = user_key(seed)?;
    let signature = key
        .sign(nonce.as_bytes())
        .map_err(|e| AuthError::InvalidSeed {
            reason: format!("cannot sign with it: {e}"),
        })?;
    Ok(NonceSignature {
        public_key: key.public_key(),
        sig: BASE64URL_NOPAD.encode(&signature),
    })
}

/// Checks credentials that may have been built by hand (`Auth::NKey { seed }`) or deserialized,
/// before any connection is tried.
// Used by the client (`client/connector.rs`), which exists on wasm32 only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn check(auth: &Auth) -> Result<(), AuthError> {
    match auth {
        Auth::NKey { seed } => user_key(seed).map(drop),
        Auth::Credentials(creds) => Credentials::new(&creds.jwt, &creds.seed).map(drop),
        Auth::None | Auth::Token(_) | Auth::UserPassword { .. } => Ok(()),
    }
}

/// Fills the credential fields of CONNECT for `auth`; `nonce` is the INFO's (servers that
/// expect a signature always send one; without one the empty nonce is signed, as nats.rs does,
/// and the server ignores the signature).
// Used by the client (`client/connector.rs`), which exists on wasm32 only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn fill_connect(
    auth: &Auth,
    nonce: Option<&str>,
    connect: &mut Connect,
) -> Result<(), AuthError> {
    let nonce = nonce.unwrap_or("");
    match auth {
        Auth::None => {}
        Auth::Token(token) => connect.auth_token = Some(token.clone()),
        Auth::UserPassword { user, password } => {
            connect.user = Some(user.clone());
            connect.pass = Some(password.clone());
        }
        Auth::NKey { seed } => {
            let signed = sign_nonce(seed, nonce)?;
            connect.nkey = Some(signed.public_key);
            connect.sig = Some(signed.sig);
        }
        Auth::Credentials(creds) => {
            let signed = sign_nonce(&creds.seed, nonce)?;
            connect.jwt = Some(creds.jwt.clone());
            connect.sig = Some(signed.sig);
        }
    }
    Ok(())
}

/// Decodes a user seed (`SU...`), saying what is wrong without repeating it.
pub(crate) fn user_key(seed: &str) -> Result<KeyPair, AuthError> {
    let bad = |reason: String| AuthError::InvalidSeed { reason };
    let seed = seed.trim();
    if seed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if !seed.starts_with('S') {
        let what = match seed.chars().next() {
            Some('U') => " (this looks like a user's public key, not its seed)",
            Some('e') if seed.contains('.') => " (this looks like a JWT)",
            _ => "",
        };
        return Err(bad(format!("a seed starts with 'S'{what}")));
    }
    if seed.len() != SEED_LENGTH {
        return Err(bad(format!(
            "a seed has {SEED_LENGTH} characters, this one has {}",
            seed.len()
        )));
    }
    let (prefix, _) = nkeys::decode_seed(seed).map_err(|e| {
        bad(match e.kind() {
            nkeys::error::ErrorKind::ChecksumFailure => {
                "its checksum does not match (mistyped or cut?)".into()
            }
            nkeys::error::ErrorKind::CodecFailure => "it is not base32 (A-Z, 2-7)".into(),
            kind => kind.to_string(),
        })
    })?;
    // The public-key prefix of a user is 20 << 3 ('U'); name the others by their letter.
    if prefix != 20 << 3 {
        let kind = match seed.as_bytes()[1] {
            b'A' => "an account",
            b'O' => "an operator",
            b'N' => "a server",
            b'C' => "a cluster",
            _ => "not a user",
        };
        return Err(bad(format!(
            "this is {kind} seed (S{}...); a user seed starts with SU",
            seed.as_bytes()[1] as char
        )));
    }
    KeyPair::from_seed(seed).map_err(|e| bad(e.kind().to_string()))
}

/// The values of the dashed blocks of a `.creds` text, in order: a line of three or more dashes
/// (with anything between them, usually `BEGIN ...`), one line of `[A-Za-z0-9_.=-]`, and a
/// closing line of dashes. Like nats.go's pattern, but blanks around a line are ignored.
fn decorated_blocks(text: &str) -> Vec<&str> {
    let is_dashes =
        |line: &str| line.len() >= 6 && line.starts_with("---") && line.ends_with("---");
    let is_value = |line: &str| {
        !line.is_empty()
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i + 2 < lines.len() {
        if is_dashes(lines[i]) && is_value(lines[i + 1]) && is_dashes(lines[i + 2]) {
            blocks.push(lines[i + 1]);
            i += 3;
        } else {
            i += 1;
        }
    }
    blocks
}

/// The `sub` claim of a JWT (the user's public key), checking its shape on the way.
fn jwt_subject(jwt: &str) -> Result<String, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "the user JWT is not a JWT (three base64url parts separated by dots; it has {})",
            parts.len()
        ));
    }
    let claims = BASE64URL_NOPAD
        .decode(parts[1].trim_end_matches('=').as_bytes())
        .map_err(|e| format!("the JWT's claims are not base64url: {e}"))?;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        sub: String,
    }
    let claims: Claims = serde_json::from_slice(&claims)
        .map_err(|e| format!("the JWT's claims are not a JSON object: {e}"))?;
    if claims.sub.is_empty() {
        return Err("the JWT has no subject (`sub`), which names the user".into());
    }
    Ok(claims.sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's `nkeys` 0.2.1 and PyNaCl 1.6.2 (libsodium), independently of the Rust
    // crates: the seed of the 32 bytes 0..=31 as a user seed, its public key, and the signature
    // of NONCE, base64url without padding.
    const SEED: &str = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y";
    const PUBLIC: &str = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK";
    const NONCE: &str = "pKXyuBxR1s5sDHQ";
    const SIG: &str =
        "SMxyL3S1yyK8zyLw0h8HhZQU5UBhDNKtAgtDOVxgBR6g9gb0Xn7blKm8c0UmJJZxwbe_ZWTNrW_w7kIF3d0CAA";
    // The seed of the 32 bytes 100..=131 as an account seed, from the same tools.
    const ACCOUNT_SEED: &str = "SAAGIZLGM5UGS2TLNRWW433QOFZHG5DVOZ3XQ6L2PN6H27T7QCAYFA5W7M";

    /// A JWT-shaped string with the given claims (unsigned: the client never checks signatures,
    /// the server does).
    fn jwt_for(claims: &str) -> String {
        format!(
            "{}.{}.{}",
            BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
            BASE64URL_NOPAD.encode(claims.as_bytes()),
            BASE64URL_NOPAD.encode(&[7u8; 64])
        )
    }

    fn creds(jwt: &str, seed: &str) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        )
    }

    #[test]
    fn signs_a_nonce_exactly_as_another_implementation_does() {
        let signed = sign_nonce(SEED, NONCE).unwrap();
        assert_eq!(signed.public_key, PUBLIC);
        assert_eq!(signed.sig, SIG);
        // ed25519 is deterministic: the same again, and another nonce gives another signature
        // that verifies under the public key.
        assert_eq!(sign_nonce(SEED, NONCE).unwrap().sig, SIG);
        let other = sign_nonce(SEED, "another").unwrap().sig;
        assert_ne!(other, SIG);
        let raw = BASE64URL_NOPAD.decode(other.as_bytes()).unwrap();
        KeyPair::from_public_key(PUBLIC)
            .unwrap()
            .verify(b"another", &raw)
            .unwrap();
    }

    #[test]
    fn refuses_bad_seeds_saying_why_without_repeating_them() {
        let mut flipped = SEED.to_owned();
        flipped.replace_range(20..21, if &SEED[20..21] == "A" { "B" } else { "A" });
        let not_base32 = format!("{}1{}", &SEED[..2], &SEED[3..]);
        for (seed, why) in [
            ("", "empty"),
            (PUBLIC, "public key"),
            ("eyJhbGciOi.eyJzdWIiOi.c2ln", "JWT"),
            ("SUAAAA", "58 characters"),
            (&SEED[..57], "58 characters"),
            (flipped.as_str(), "checksum"),
            (not_base32.as_str(), "base32"),
            (ACCOUNT_SEED, "account seed (SA...)"),
        ] {
            let err = user_key(seed).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{seed:?}: {text}");
            assert!(seed.len() < 10 || !text.contains(seed), "{text}");
        }
        // Blanks around a seed (a copy-paste) are forgiven.
        assert_eq!(
            user_key(&format!(" {SEED}\n")).unwrap().public_key(),
            PUBLIC
        );
    }

    #[test]
    fn parses_creds_files_as_nsc_writes_them() {
        let jwt = jwt_for(&format!(r#"{{"sub":"{PUBLIC}","nats":{{"type":"user"}}}}"#));
        let parsed = Credentials::parse(&creds(&jwt, SEED)).unwrap();
        assert_eq!(parsed.jwt(), jwt);
        assert_eq!(parsed.public_key(), PUBLIC);
        // CRLF line ends and indentation are fine too.
        let crlf = creds(&jwt, SEED)
            .replace('\n', "\r\n")
            .replace("-----B", "  -----B");
        assert_eq!(Credentials::parse(&crlf).unwrap(), parsed);
        // Without a trailing newline after the last block.
        let bare = format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\
             -----BEGIN USER NKEY SEED-----\n{SEED}\n------END USER NKEY SEED------"
        );
        assert_eq!(Credentials::parse(&bare).unwrap(), parsed);
    }

    #[test]
    fn refuses_malformed_creds_saying_what_is_wrong() {
        let jwt = jwt_for(&format!(r#"{{"sub":"{PUBLIC}"}}"#));
        let other_user = jwt_for(r#"{"sub":"UBOTHERUSER"}"#);
        let only_jwt =
            "-----BEGIN NATS USER JWT-----\nabc.def.ghi\n------END NATS USER JWT------\n";
        for (text, why) in [
            (String::new(), "no `-----BEGIN NATS USER JWT-----` block"),
            (
                "just some text\n".to_owned(),
                "no `-----BEGIN NATS USER JWT-----` block",
            ),
            (
                only_jwt.to_owned(),
                "USER NKEY SEED-----` block after it is missing",
            ),
            (creds(SEED, &jwt), "not a JWT"),
            (creds("a.b", SEED), "not a JWT"),
            (creds("a..c", SEED), "not a JWT"),
            (creds("a.b.c", SEED), "claims are not base64url"),
            // A value with characters a .creds line cannot hold is not a block at all.
            (
                creds("a.%%%.c", SEED),
                "USER NKEY SEED-----` block after it is missing",
            ),
            (creds("abc.YWJj.def", SEED), "not a JSON object"),
            (creds(&jwt_for(r#"{"iss":"A"}"#), SEED), "no subject"),
            (creds(&jwt, "SUAAAA"), "the seed: a seed has 58"),
            (
                creds(&jwt, ACCOUNT_SEED),
                "the seed: this is an account seed",
            ),
            (
                creds(&other_user, SEED),
                "for user UBOTHERUSER but the seed is the key of user UAB2",
            ),
        ] {
            let err = Credentials::parse(&text).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains(why), "{text:?}: {shown}");
            assert!(!shown.contains(SEED), "{shown}");
        }
    }

    #[test]
    fn a_missing_creds_file_names_the_path() {
        let err = Credentials::from_file("/nonexistent/swarm/user.creds").unwrap_err();
        assert!(
            matches!(&err, AuthError::ReadCredentials { path, .. } if path == "/nonexistent/swarm/user.creds"),
            "{err:?}"
        );
    }

    #[test]
    fn fills_connect_for_each_kind_of_auth() {
        let mut c = Connect::default();
        fill_connect(&Auth::NKey { seed: SEED.into() }, Some(NONCE), &mut c).unwrap();
        assert_eq!(
            (c.nkey.as_deref(), c.sig.as_deref(), c.jwt.as_deref()),
            (Some(PUBLIC), Some(SIG), None)
        );
        let jwt = jwt_for(&format!(r#"{{"sub":"{PUBLIC}"}}"#));
        let creds = Credentials::parse(&creds(&jwt, SEED)).unwrap();
        let mut c = Connect::default();
        fill_connect(&Auth::Credentials(creds), Some(NONCE), &mut c).unwrap();
        assert_eq!(
            (c.nkey.as_deref(), c.sig.as_deref(), c.jwt.as_deref()),
            (None, Some(SIG), Some(jwt.as_str()))
        );
        let mut c = Connect::default();
        let err = fill_connect(
            &Auth::NKey {
                seed: "nope".into(),
            },
            Some(NONCE),
            &mut c,
        );
        assert!(err.is_err());
        assert_eq!(c, Connect::default(), "nothing filled in on error");
        let mut c = Connect::default();
        fill_connect(&Auth::Token("t".into()), None, &mut c).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("t"));
    }

    #[test]
    fn checks_hand_made_auth_before_connecting() {
        assert!(check(&Auth::NKey { seed: SEED.into() }).is_ok());
        let err = check(&Auth::NKey {
            seed: ACCOUNT_SEED.into(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("account seed"), "{err}");
        assert!(check(&Auth::Token("x".into())).is_ok());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let jwt = jwt_for(&format!(r#"{{"sub":"{PUBLIC}"}}"#));
        let creds = Credentials::parse(&creds(&jwt, SEED)).unwrap();
        for shown in [
            format!("{creds:?}"),
            format!("{:?}", Auth::Credentials(creds.clone())),
            format!("{:?}", Auth::NKey { seed: SEED.into() }),
        ] {
            assert!(!shown.contains(SEED) && !shown.contains(&jwt), "{shown}");
        }
    }
}

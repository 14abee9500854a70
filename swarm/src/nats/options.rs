//! Connection options, server addresses, errors and reconnect backoff of the NATS client.
//!
//! Everything here is pure (no Lunatic, no I/O), so it builds and is unit tested natively; the
//! connection itself lives in `client` and exists only on wasm32 (inside Lunatic).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::auth::{self, AuthError, Credentials};
use super::codec::{EncodeError, PayloadTooLarge, PermissionAction, SubjectError};
use super::tls;

/// How the client reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// The NATS protocol straight over TCP (`nats://host:port`, default port 4222).
    Tcp,
    /// The NATS protocol inside WebSocket binary frames (`ws://host:port[/path]`, default port 80),
    /// for nats-server's `websocket { }` listener.
    WebSocket,
    /// The NATS protocol inside TLS (`tls://host:port`, default port 4222), with the TLS handshake
    /// first, before the server's INFO: nats-server's `tls { handshake_first: true }`. Lunatic
    /// cannot turn a TCP connection into a TLS one, so the usual NATS upgrade after a plain INFO
    /// is not possible.
    Tls,
}

/// One server of the list the client connects (and reconnects) to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddr {
    /// TCP, WebSocket or TLS.
    pub transport: Transport,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path of the WebSocket upgrade request (`/` unless the URL names one).
    pub path: String,
}

impl ServerAddr {
    /// Parses `nats://host:port`, `tcp://host:port`, `ws://host:port/path`, `tls://host:port` or a
    /// bare `host:port` (TCP). Refuses `wss://` (no WebSocket over TLS yet) and a `tls://` URL
    /// whose host is an IP address: the runtime's TLS client (rustls 0.20) checks the server's
    /// certificate against a host *name* only.
    pub fn parse(url: &str) -> Result<ServerAddr, NatsError> {
        let bad = |reason: &str| NatsError::InvalidAddress {
            addr: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        let (transport, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "nats" | "tcp" => (Transport::Tcp, rest),
                "ws" => (Transport::WebSocket, rest),
                "tls" => (Transport::Tls, rest),
                "wss" => return Err(bad("WebSocket over TLS is not supported, use tls://")),
                _ => {
                    return Err(bad(
                        "unknown scheme, expected nats://, tcp://, tls:// or ws://",
                    ))
                }
            },
            None => (Transport::Tcp, trimmed),
        };
        let (hostport, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if hostport.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported, use ConnectOptions::token, user_password, nkey or credentials",
            ));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path holds whitespace or control characters"));
        }
        let default_port = match transport {
            Transport::Tcp | Transport::Tls => 4222,
            Transport::WebSocket => 80,
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p
                    .parse()
                    .map_err(|_| bad("the port is not a number 0-65535"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("unexpected text after ']'")),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, p)) => (
                    host,
                    p.parse()
                        .map_err(|_| bad("the port is not a number 0-65535"))?,
                ),
                None => (hostport, default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host holds whitespace or control characters"));
        }
        if transport == Transport::Tls && host.parse::<IpAddr>().is_ok() {
            return Err(bad(
                "tls:// needs a host name: Lunatic's TLS client (rustls 0.20) cannot check a \
                 certificate against an IP address; use a name the server's certificate holds, \
                 e.g. tls://localhost:4222",
            ));
        }
        Ok(ServerAddr {
            transport,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port` for connecting (IPv6 hosts in brackets).
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Tcp => write!(f, "nats://{}", self.socket_addr()),
            Transport::WebSocket => write!(f, "ws://{}{}", self.socket_addr(), self.path),
            Transport::Tls => write!(f, "tls://{}", self.socket_addr()),
        }
    }
}

/// Credentials sent in CONNECT.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `auth_token`.
    Token(String),
    /// `user` and `pass`.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// An nkey user (servers that list `nkey: "U..."` users): the server's nonce is signed with
    /// the seed, and the public key and the signature are sent. Build it with
    /// [`ConnectOptions::nkey`], which checks the seed.
    NKey {
        /// The user's seed, `SU...` (58 characters).
        seed: String,
    },
    /// A user JWT and its seed, usually from a `.creds` file (servers in operator mode): the
    /// JWT and the signature of the server's nonce are sent. See [`Credentials`].
    Credentials(Credentials),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::NKey { .. } => f.debug_struct("NKey").field("seed", &"<redacted>").finish(),
            Auth::Credentials(creds) => f.debug_tuple("Credentials").field(creds).finish(),
        }
    }
}

/// How long to wait between reconnect attempts: no wait for the first attempt after a loss, then
/// `min` doubling up to `max`, each with up to a quarter of random jitter so that many clients of
/// one restarted server do not come back in lock step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay before the second attempt.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The delay before attempt number `failures` (0 = first attempt after losing the server),
    /// with `jitter` a random number (any `u64`).
    pub fn delay(&self, failures: u32, jitter: u64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(20);
        let base = self.min.saturating_mul(factor).min(self.max);
        let quarter = base.as_micros() as u64 / 4;
        let extra = if quarter == 0 { 0 } else { jitter % quarter };
        (base + Duration::from_micros(extra)).min(self.max)
    }
}

/// Everything [`NatsClient::connect`](super::NatsClient) needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectOptions {
    /// Servers to connect to, tried in order; on a loss the client moves on to the next one.
    pub servers: Vec<ServerAddr>,
    /// Credentials.
    pub auth: Auth,
    /// Client name shown in the server's monitoring.
    pub name: Option<String>,
    /// Whether the server may deliver this connection's own publishes back to it.
    pub echo: bool,
    /// Longest wait for TCP connect plus the NATS handshake, per attempt.
    pub connect_timeout: Duration,
    /// How often the client PINGs the server when idle.
    pub ping_interval: Duration,
    /// Unanswered PINGs after which the connection counts as dead.
    pub max_pings_out: u32,
    /// Reconnect attempts after a loss before giving up and closing; `None` tries forever.
    pub max_reconnects: Option<u32>,
    /// Delays between reconnect attempts.
    pub backoff: Backoff,
    /// Most bytes of publishes kept while disconnected; publishes beyond it are dropped and
    /// counted in [`ClientStatus::dropped`](super::ClientStatus).
    pub max_buffer: usize,
    /// Longest wait of `flush`, `subscribe` and other calls that need the server's answer.
    pub op_timeout: Duration,
    /// PEM text of the CA certificates that `tls://` servers' certificates must be issued by;
    /// `None`: the public roots built into the runtime (webpki-roots). Set it with
    /// [`ConnectOptions::tls_ca`] or [`ConnectOptions::tls_ca_file`], which check it.
    pub tls_ca: Option<String>,
}

impl ConnectOptions {
    /// Options for one or more server URLs (see [`ServerAddr::parse`]), with defaults: no auth,
    /// echo on, 5 s connect timeout, PING every 60 s and 2 unanswered allowed, reconnect
    /// forever with backoff, an 8 MiB buffer while disconnected.
    pub fn new<I, S>(servers: I) -> Result<ConnectOptions, NatsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let servers = servers
            .into_iter()
            .map(|s| ServerAddr::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(NatsError::NoServers);
        }
        Ok(ConnectOptions {
            servers,
            auth: Auth::None,
            name: None,
            echo: true,
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(60),
            max_pings_out: 2,
            max_reconnects: None,
            backoff: Backoff::default(),
            max_buffer: 8 * 1024 * 1024,
            op_timeout: Duration::from_secs(10),
            tls_ca: None,
        })
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with a user name and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Authenticates as an nkey user with the user's seed (`SU...`): on connect the server's
    /// nonce is signed inside this process and only the public key and the signature are sent.
    /// A seed that cannot be decoded, or is not a user seed, is refused here with
    /// [`NatsError::Auth`] saying why (never repeating the seed).
    ///
    /// ```
    /// # use swarm::nats::ConnectOptions;
    /// let options = ConnectOptions::new(["nats://127.0.0.1:4222"])?
    ///     .nkey("SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y")?;
    /// assert!(ConnectOptions::new(["h:1"])?.nkey("SUAAAA").is_err());
    /// # Ok::<(), swarm::nats::NatsError>(())
    /// ```
    pub fn nkey(mut self, seed: impl Into<String>) -> Result<Self, NatsError> {
        let seed = seed.into().trim().to_owned();
        auth::user_key(&seed)?;
        self.auth = Auth::NKey { seed };
        Ok(self)
    }

    /// Authenticates with a user JWT and its seed (operator mode), from
    /// [`Credentials::parse`] (the text of a `.creds` file), [`Credentials::from_file`] or
    /// [`Credentials::new`].
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.auth = Auth::Credentials(credentials);
        self
    }

    /// Reads a `.creds` file ([`Credentials::from_file`]) and authenticates with it; a file
    /// that cannot be read or is malformed is [`NatsError::Auth`], saying what is wrong. Inside
    /// Lunatic the path must lie in a directory the node may read (its working directory, or a
    /// `--dir`).
    pub fn credentials_file(self, path: impl AsRef<Path>) -> Result<Self, NatsError> {
        Ok(self.credentials(Credentials::from_file(path)?))
    }

    /// Sets the client name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the connect (and handshake) timeout per attempt.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the PING interval and how many may go unanswered.
    pub fn ping_interval(mut self, interval: Duration, max_pings_out: u32) -> Self {
        self.ping_interval = interval;
        self.max_pings_out = max_pings_out.max(1);
        self
    }

    /// Limits reconnect attempts (`None`: forever).
    pub fn max_reconnects(mut self, max: Option<u32>) -> Self {
        self.max_reconnects = max;
        self
    }

    /// Sets the reconnect backoff.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff { min, max };
        self
    }

    /// Sets the buffer kept for publishes while disconnected.
    pub fn max_buffer(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes;
        self
    }

    /// Sets whether the server echoes this connection's own publishes to it.
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Sets the longest wait of calls that need the server's answer (flush, subscribe).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks)
    /// for `tls://` servers, instead of the runtime's built-in public roots.
    /// [`NatsError::InvalidCa`] if `pem` holds no certificate or one that does not decode.
    ///
    /// ```
    /// # use swarm::nats::{ConnectOptions, NatsError};
    /// let err = ConnectOptions::new(["tls://localhost:4222"])?
    ///     .tls_ca("not a certificate")
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("no CERTIFICATE block"));
    /// # Ok::<(), NatsError>(())
    /// ```
    pub fn tls_ca(self, pem: impl Into<String>) -> Result<Self, NatsError> {
        self.with_ca(pem.into(), "the PEM text given")
    }

    /// As [`ConnectOptions::tls_ca`], with the PEM read from the file at `path`. Inside Lunatic
    /// the file's directory must be open to the node (`lunatic run --dir <dir> ...`).
    pub fn tls_ca_file(self, path: impl AsRef<Path>) -> Result<Self, NatsError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|e| NatsError::InvalidCa {
            origin: origin.clone(),
            reason: format!("cannot read the file: {e}"),
        })?;
        self.with_ca(pem, &origin)
    }

    fn with_ca(mut self, pem: String, origin: &str) -> Result<Self, NatsError> {
        tls::ca_certificates(&pem).map_err(|reason| NatsError::InvalidCa {
            origin: origin.to_owned(),
            reason,
        })?;
        self.tls_ca = Some(pem);
        Ok(self)
    }
}

/// Everything that can go wrong with the client. Serializable, so that a process can hand an
/// error to another (and errors that contain it, such as JetStream's, can travel too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NatsError {
    /// A server URL could not be read.
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress {
        /// The URL as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server list is empty.
    #[error("no server address given")]
    NoServers,
    /// The CA certificates given for `tls://` cannot be used.
    #[error("cannot use the CA certificates of {origin}: {reason}")]
    InvalidCa {
        /// Where they came from: a file's path, or "the PEM text given".
        origin: String,
        /// What is wrong with them.
        reason: String,
    },
    /// No server of the list could be reached or accepted the connection.
    #[error("could not connect to {server}: {reason}")]
    Connect {
        /// The last server tried.
        server: String,
        /// Why the last attempt failed (a socket error, the server's `-ERR`, or for `tls://` what
        /// was wrong with the TLS handshake: a server that is not TLS-first, a certificate not
        /// issued by the configured CA or not naming the host).
        reason: String,
    },
    /// The credentials cannot be used (a bad nkey seed, a malformed `.creds` file); nothing
    /// was sent.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The server refused an operation this user has no permission for (its `-ERR
    /// 'Permissions Violation ...'`): a publish or request to `subject` ([`NatsClient::flush`]
    /// reports a refused publish), a subscription to it, or a reply subject. The connection
    /// stays up.
    ///
    /// [`NatsClient::flush`]: super::NatsClient
    #[error("the server denied permission to {operation} {subject:?}")]
    PermissionDenied {
        /// What was refused.
        operation: PermissionAction,
        /// The subject the server named (the reply subject for [`PermissionAction::Reply`]).
        subject: String,
    },
    /// A subject, queue group or header was refused before anything was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The message is larger than the server's `max_payload`; nothing was sent.
    #[error(transparent)]
    PayloadTooLarge(#[from] PayloadTooLarge),
    /// Nobody subscribes to the subject of a request (the server's 503 answer).
    #[error("no responders for a request to {subject:?}")]
    NoResponders {
        /// The request's subject.
        subject: String,
    },
    /// No answer within the time given.
    #[error("{what} timed out after {timeout:?}")]
    TimedOut {
        /// What was waited for.
        what: String,
        /// The time given.
        timeout: Duration,
    },
    /// The connection to the server was lost while this call waited; the client reconnects.
    #[error("the connection to the server was lost while waiting for an answer")]
    Disconnected,
    /// The client is between servers (reconnecting) and cannot do this now.
    #[error("not connected to a server right now (reconnecting)")]
    NotConnected,
    /// The server refused an operation for another reason than permissions (for example an
    /// `Invalid Subject`), or a call was used wrongly (`respond` to a message without reply).
    #[error("the server refused: {0}")]
    Server(String),
    /// The client was closed, gave up reconnecting, or its connection process is gone.
    #[error("the NATS client is closed")]
    Closed,
}

impl From<SubjectError> for NatsError {
    fn from(e: SubjectError) -> Self {
        NatsError::Encode(EncodeError::Subject(e))
    }
}

/// A failure reported by the connection process to a waiting caller; turned into a
/// [`NatsError`] on the caller's side.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    Disconnected,
    NotConnected,
    Closed,
    Server(String),
    PermissionDenied {
        operation: PermissionAction,
        subject: String,
    },
    PayloadTooLarge {
        size: u64,
        max_payload: u64,
    },
    Connect {
        server: String,
        reason: String,
    },
}

impl From<Failure> for NatsError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Disconnected => NatsError::Disconnected,
            Failure::NotConnected => NatsError::NotConnected,
            Failure::Closed => NatsError::Closed,
            Failure::Server(s) => NatsError::Server(s),
            Failure::PermissionDenied { operation, subject } => {
                NatsError::PermissionDenied { operation, subject }
            }
            Failure::PayloadTooLarge { size, max_payload } => {
                NatsError::PayloadTooLarge(PayloadTooLarge { size, max_payload })
            }
            Failure::Connect { server, reason } => NatsError::Connect { server, reason },
        }
    }
}

/// A random `u64` without a random-number crate: std seeds `RandomState` from the OS (WASI's
/// `random_get` under Lunatic), and `salt` makes successive calls differ.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn random_u64(salt: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(salt);
    h.finish()
}

/// `n` characters of base 62 from random numbers, for the inbox prefix.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(n);
    let mut salt = 0u64;
    while out.len() < n {
        let mut r = random_u64(salt);
        salt += 1;
        for _ in 0..10 {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[(r % 62) as usize] as char);
            r /= 62;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_urls() {
        let a = ServerAddr::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(
            (a.transport, a.host.as_str(), a.port),
            (Transport::Tcp, "127.0.0.1", 4222)
        );
        assert_eq!(ServerAddr::parse("localhost").unwrap().port, 4222);
        assert_eq!(ServerAddr::parse("tcp://h:1").unwrap().socket_addr(), "h:1");
        let ws = ServerAddr::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!(
            (ws.transport, ws.port, ws.path.as_str()),
            (Transport::WebSocket, 8080, "/")
        );
        let ws = ServerAddr::parse("WS://h/nats").unwrap();
        assert_eq!((ws.port, ws.path.as_str()), (80, "/nats"));
        assert_eq!(ws.to_string(), "ws://h:80/nats");
        let v6 = ServerAddr::parse("nats://[::1]:5000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5000));
        assert_eq!(v6.socket_addr(), "[::1]:5000");
        let tls = ServerAddr::parse("TLS://nats.example.com").unwrap();
        assert_eq!(
            (tls.transport, tls.host.as_str(), tls.port),
            (Transport::Tls, "nats.example.com", 4222)
        );
        assert_eq!(tls.to_string(), "tls://nats.example.com:4222");
        assert_eq!(
            ServerAddr::parse("tls://localhost:7422").unwrap().port,
            7422
        );
    }

    #[test]
    fn refuses_bad_urls_saying_why() {
        for (url, why) in [
            ("wss://h:1", "WebSocket over TLS is not supported"),
            ("tls://127.0.0.1:4222", "needs a host name"),
            ("tls://[::1]:4222", "needs a host name"),
            ("http://h:1", "unknown scheme"),
            ("nats://h:x", "port"),
            ("nats://h:70000", "port"),
            ("nats://:1", "host is empty"),
            ("nats://u:p@h:1", "credentials"),
            ("ws://h:1/a b", "path"),
        ] {
            let err = ServerAddr::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert_eq!(
            ConnectOptions::new(Vec::<String>::new()).unwrap_err(),
            NatsError::NoServers
        );
    }

    #[test]
    fn backoff_starts_at_once_doubles_and_stays_bounded() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0, 12345), Duration::ZERO);
        assert_eq!(b.delay(1, 0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0), Duration::from_millis(400));
        for failures in 1..100 {
            for jitter in [0, 1, 7_777_777, u64::MAX] {
                let d = b.delay(failures, jitter);
                assert!(d <= b.max, "{failures}: {d:?}");
                assert!(d >= Duration::from_millis(100));
            }
        }
        // Jitter adds at most a quarter.
        assert!(b.delay(1, u64::MAX) < Duration::from_millis(126));
    }

    #[test]
    fn auth_is_redacted_in_debug_output() {
        let o = ConnectOptions::new(["h:1"])
            .unwrap()
            .user_password("alice", "s3cret");
        let dbg = format!("{o:?}");
        assert!(dbg.contains("alice") && !dbg.contains("s3cret"), "{dbg}");
        let o = o.token("tok3n");
        assert!(!format!("{o:?}").contains("tok3n"));
        // The seed of the 32 bytes 0..=31 (see auth.rs).
        let seed = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y";
        let o = o.nkey(seed).unwrap();
        assert_eq!(o.auth, Auth::NKey { seed: seed.into() });
        let dbg = format!("{o:?}");
        assert!(dbg.contains("NKey") && !dbg.contains(seed), "{dbg}");
    }

    #[test]
    fn bad_nkey_seeds_and_creds_files_fail_at_construction() {
        let o = ConnectOptions::new(["h:1"]).unwrap();
        let err = o.clone().nkey("SUAAAA").unwrap_err();
        assert!(
            matches!(&err, NatsError::Auth(AuthError::InvalidSeed { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("invalid nkey seed"), "{err}");
        let err = o.credentials_file("/nonexistent/u.creds").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/u.creds"), "{err}");
    }

    #[test]
    fn permission_denied_names_the_operation_and_subject() {
        let e: NatsError = Failure::PermissionDenied {
            operation: PermissionAction::Publish,
            subject: "secret.x".into(),
        }
        .into();
        assert_eq!(
            e.to_string(),
            r#"the server denied permission to publish to "secret.x""#
        );
        let e = NatsError::PermissionDenied {
            operation: PermissionAction::Subscribe,
            subject: "secret.>".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"the server denied permission to subscribe to "secret.>""#
        );
    }

    #[test]
    fn ca_certificates_are_checked_when_given() {
        let options = ConnectOptions::new(["tls://localhost"]).unwrap();
        assert_eq!(options.tls_ca, None);
        let with_ca = options.clone().tls_ca(tls::tests::CA_PEM).unwrap();
        assert_eq!(with_ca.tls_ca.as_deref(), Some(tls::tests::CA_PEM));
        for (pem, why) in [
            ("", "no CERTIFICATE block"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "base64",
            ),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", "END CERTIFICATE"),
        ] {
            let err = options.clone().tls_ca(pem).unwrap_err();
            assert!(
                matches!(&err, NatsError::InvalidCa { origin, reason }
                    if origin == "the PEM text given" && reason.contains(why)),
                "{pem:?}: {err}"
            );
        }
        let missing = options
            .clone()
            .tls_ca_file("/nonexistent/ca.pem")
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("/nonexistent/ca.pem: cannot read the file"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("swarm-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, tls::tests::CA_PEM).unwrap();
        let from_file = options.tls_ca_file(&file).unwrap();
        assert_eq!(from_file.tls_ca.as_deref(), Some(tls::tests::CA_PEM));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_tokens_are_base62_and_differ() {
        let a = random_token(22);
        let b = random_token(22);
        assert_eq!(a.len(), 22);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}

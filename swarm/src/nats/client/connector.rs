//! Dialing a server: the socket (TCP, TLS), the WebSocket upgrade request, framing of what is
//! written, and the client's half of the NATS handshake (CONNECT with credentials).

use std::io::{Read, Write};
use std::time::Duration;

use lunatic::net::{TcpStream, TlsStream};
use serde::{Deserialize, Serialize};

use crate::nats::auth::{self, AuthError};
use crate::nats::codec::{encode_connect, encode_ping, Connect};
use crate::nats::options::{ConnectOptions, ServerAddr, Transport};
use crate::nats::{tls, ws};

/// The socket of one connection: TCP (`nats://`, `ws://`) or TLS (`tls://`). Clones are
/// handles to the same socket: the connection process writes through one while the reader
/// process reads through another (the runtime locks reads and writes of a socket separately, TLS
/// included), and the reader's handle moves into its process with its spawn message.
#[derive(Clone, Serialize, Deserialize)]
pub(super) enum Stream {
    Tcp(TcpStream),
    Tls(TlsStream),
}

/// A socket to a server, before the NATS handshake.
pub(super) struct Dialed {
    pub(super) stream: Stream,
    /// For WebSocket: the key the server's upgrade answer must confirm (the reader checks it
    /// before it reads frames).
    pub(super) ws_key: Option<String>,
}

/// Connects to `addr` within `timeout`: for `tls://` with the TLS handshake and the server's
/// certificate checked against `tls_ca` (see `tls::dial`), for `ws://` with the upgrade request
/// sent (`nonce` makes its key). The write timeout keeps a stuck server from blocking the
/// connection process for long. `Err` says what went wrong.
pub(super) fn dial(
    addr: &ServerAddr,
    tls_ca: Option<&str>,
    timeout: Duration,
    nonce: [u8; 16],
) -> Result<Dialed, String> {
    let mut stream = match addr.transport {
        Transport::Tcp | Transport::WebSocket => {
            TcpStream::connect_timeout(addr.socket_addr().as_str(), timeout)
                .map(Stream::Tcp)
                .map_err(|e| e.to_string())?
        }
        Transport::Tls => tls::dial::dial(addr, tls_ca, timeout).map(Stream::Tls)?,
    };
    let ws_key = match addr.transport {
        Transport::Tcp | Transport::Tls => None,
        Transport::WebSocket => {
            let key = ws::handshake_key(nonce);
            let request = ws::handshake_request(&addr.host, addr.port, &addr.path, &key);
            stream
                .write_all(&request)
                .map_err(|e| format!("WebSocket upgrade request: {e}"))?;
            Some(key)
        }
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    Ok(Dialed { stream, ws_key })
}

impl Stream {
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Tls(s) => s.set_write_timeout(timeout),
        }
    }

    /// Writes `data` whole: as it is, or as one masked WebSocket frame (`mask_random` makes the
    /// mask).
    pub(super) fn send(&mut self, ws: bool, data: &[u8], mask_random: u64) -> std::io::Result<()> {
        if ws {
            let mut framed = Vec::with_capacity(data.len() + 14);
            ws::encode_frame(&mut framed, ws::OP_BINARY, data, mask(mask_random));
            self.write_all(&framed)
        } else {
            self.write_all(data)
        }
    }

    /// Answers a WebSocket ping.
    pub(super) fn send_ws_pong(&mut self, payload: &[u8], mask_random: u64) -> std::io::Result<()> {
        let mut frame = Vec::new();
        ws::encode_frame(&mut frame, ws::OP_PONG, payload, mask(mask_random));
        self.write_all(&frame)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A WebSocket masking key from a random number.
fn mask(random: u64) -> [u8; 4] {
    (random as u32).to_le_bytes()
}

/// CONNECT and PING, the client's half of the handshake, in answer to the server's INFO.
/// Credentials go into CONNECT; for nkey and JWT users that includes the signature of the INFO's
/// `nonce`, made here, so the seed never leaves the connection process.
pub(super) fn hello(options: &ConnectOptions, nonce: Option<&str>) -> Result<Vec<u8>, AuthError> {
    let mut connect = Connect {
        name: options.name.clone(),
        echo: options.echo,
        lang: "rust-swarm-lunatic".into(),
        ..Connect::default()
    };
    // `connect` checked the credentials before starting the connection process; should signing
    // fail anyway, the attempt fails with the reason.
    auth::fill_connect(&options.auth, nonce, &mut connect)?;
    let mut out = Vec::new();
    // Cannot fail: the options serialize as JSON.
    let _ = encode_connect(&mut out, &connect);
    encode_ping(&mut out);
    Ok(out)
}

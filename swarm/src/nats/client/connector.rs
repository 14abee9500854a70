//! Dialing a server: the socket (TCP, TLS) and the client's half of the handshake.

use std::io::{Read, Write};
use std::time::Duration;

use lunatic::net::{TcpStream, TlsStream};
use serde::{Deserialize, Serialize};

use crate::nats::options::{ServerAddr, Transport};
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

impl Stream {
    /// Connects to `addr`; for `tls://`, with the TLS handshake and the server's certificate
    /// checked against `tls_ca` (see `tls::dial`). `Err` says why not.
    pub(super) fn open(
        addr: &ServerAddr,
        tls_ca: Option<&str>,
        timeout: Duration,
    ) -> Result<Stream, String> {
        match addr.transport {
            Transport::Tcp | Transport::WebSocket => {
                TcpStream::connect_timeout(addr.socket_addr().as_str(), timeout)
                    .map(Stream::Tcp)
                    .map_err(|e| e.to_string())
            }
            Transport::Tls => tls::dial::dial(addr, tls_ca, timeout).map(Stream::Tls),
        }
    }

    pub(super) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Tls(s) => s.set_write_timeout(timeout),
        }
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
pub(super) fn mask(random: u64) -> [u8; 4] {
    (random as u32).to_le_bytes()
}

pub(super) fn frame_binary(data: &[u8], random: u64) -> Vec<u8> {
    let mut framed = Vec::with_capacity(data.len() + 14);
    ws::encode_frame(&mut framed, ws::OP_BINARY, data, mask(random));
    framed
}

//! Opening a `tls://` connection (wasm32 only).
//!
//! The runtime ends the process whose TLS handshake fails (see the module docs of `tls`), so
//! the handshake runs in a **dialer** process spawned for it: the dialer connects, and sends the
//! stream to the connection process, or its TCP error, or dies. The connection process waits for
//! it, bounded by the connect timeout, and when the dialer died, asks the server itself with
//! [`probe`](super::probe) to say why.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant, SystemTime};

use lunatic::net::{TcpStream, TlsStream};

use super::probe::{client_hello, explain, Flight};
use super::{ca_certificates, CaCert};
use crate::nats::options::{random_u64, ServerAddr};
use crate::runtime::host;
use crate::runtime::mailbox::{reply_slot, wait_for, ReplyTo, WaitError};
use crate::runtime::process::spawn;

/// The least time the probe gets, even when the handshake used up the attempt's time.
const MIN_PROBE_TIME: Duration = Duration::from_millis(500);

/// Connects to `addr` with TLS, checking the server's certificate against `ca_pem` (or the
/// runtime's public roots), within `timeout` plus, when the handshake failed, the time to find
/// out why. `Err` says what went wrong, in words.
pub(crate) fn dial(
    addr: &ServerAddr,
    ca_pem: Option<&str>,
    timeout: Duration,
) -> Result<TlsStream, String> {
    let started = Instant::now();
    let cas = match ca_pem {
        Some(pem) => ca_certificates(pem).map_err(|e| format!("the configured CA: {e}"))?,
        None => Vec::new(),
    };
    let slot = reply_slot();
    let request = Dial {
        host: addr.host.clone(),
        port: addr.port,
        ca_pems: cas.iter().map(|ca| ca.pem.clone()).collect(),
        reply: slot,
    };
    let dialer =
        spawn(request, dialer_main).map_err(|e| format!("cannot start the dialer: {e}"))?;
    match wait_for::<Result<TlsStream, String>>(slot, dialer, Some(timeout)) {
        Ok(result) => result,
        Err(WaitError::ServerGone) => {
            let left = timeout
                .saturating_sub(started.elapsed())
                .max(MIN_PROBE_TIME);
            Err(why_it_failed(addr, &cas, left))
        }
        Err(WaitError::TimedOut(_)) => {
            // A stream it sends from now on is dropped with the message it comes in.
            host::kill(dialer);
            Err(format!(
                "the TLS handshake did not finish within {timeout:?} (is the server TLS-first?)"
            ))
        }
        Err(other) => {
            host::kill(dialer);
            Err(format!("the dialer failed: {other:?}"))
        }
    }
}

/// What the dialer is asked to do.
#[derive(serde::Serialize, serde::Deserialize)]
struct Dial {
    host: String,
    port: u16,
    ca_pems: Vec<String>,
    reply: ReplyTo,
}

/// Connects and sends the stream (or the TCP error) back; a failed handshake ends this process
/// before it can answer, which is how the connection process learns of it.
fn dialer_main(request: Dial) {
    let pems: Vec<&[u8]> = request.ca_pems.iter().map(|p| p.as_bytes()).collect();
    let result = host::tls_connect(&request.host, request.port, &pems);
    request.reply.send::<Result<TlsStream, String>>(result);
}

/// Asks the server, on a connection of its own, what the dialer's handshake ran into.
fn why_it_failed(addr: &ServerAddr, cas: &[CaCert], limit: Duration) -> String {
    let answer = match probe(addr, limit) {
        Ok(answer) => answer,
        Err(e) => {
            return format!("the TLS handshake failed, and asking the server why failed: {e}")
        }
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    explain(&addr.host, cas, &answer, now)
}

/// Sends a ClientHello and reads the server's answer, within `limit`.
fn probe(addr: &ServerAddr, limit: Duration) -> Result<super::probe::Answer, String> {
    let deadline = Instant::now() + limit;
    let mut stream = TcpStream::connect_timeout(addr.socket_addr().as_str(), limit)
        .map_err(|e| format!("connect: {e}"))?;
    let mut random = [0u8; 32];
    for (i, chunk) in random.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&random_u64(i as u64).to_le_bytes());
    }
    stream
        .set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&client_hello(&addr.host, random))
        .map_err(|e| format!("write: {e}"))?;
    let mut flight = Flight::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(flight.at_end(false));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(flight.at_end(true)),
            Ok(n) => {
                flight.feed(&buf[..n]);
                match flight.answer() {
                    super::probe::Answer::NeedMore => {}
                    answer => return Ok(answer),
                }
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => return Ok(flight.at_end(false)),
            // A reset after the server's answer (a plain server drops the connection when it
            // reads the ClientHello): judge what came.
            Err(_) => return Ok(flight.at_end(true)),
        }
    }
}

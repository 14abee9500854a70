//! Helpers for the NATS client tests: the servers started by `nats_harness.py` (through
//! `scripts/test`), its restart control port, and unique subjects.
//!
//! The servers' addresses come in environment variables (Lunatic's test mode passes the
//! environment through). Without them the tests cannot run; `scripts/test` always sets them and
//! also sets `SWARM_NATS_REQUIRED=1`, so there a missing server is a failure, not a skip.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lunatic::net::TcpStream;
use swarm::nats::{ConnectOptions, NatsClient};

/// The value of `SWARM_NATS_<key>`; `None` (with a note on stderr) if the harness is not
/// running, a panic if `SWARM_NATS_REQUIRED` is set.
pub fn server(key: &str) -> Option<String> {
    let var = format!("SWARM_NATS_{key}");
    match std::env::var(&var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var("SWARM_NATS_REQUIRED").is_ok() => {
            panic!(
                "{var} is not set although SWARM_NATS_REQUIRED is: the nats harness did not start"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped: {var} is not set (run `bash scripts/test`, which starts nats-server)"
            );
            None
        }
    }
}

/// Connects to `url` with short timeouts and backoff suited to tests.
pub fn connect(url: &str) -> NatsClient {
    NatsClient::connect(options(url)).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Test options: 2 s connect timeout, backoff 20-200 ms, 5 s op timeout.
pub fn options(url: &str) -> ConnectOptions {
    ConnectOptions::new([url])
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .op_timeout(Duration::from_secs(5))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A subject prefix no other test (or earlier run) uses.
pub fn unique(name: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = lunatic::host::process_id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("t.{name}.{pid}x{n}x{nanos}")
}

/// Asks the harness to `restart`, `stop` or `start` server `r1` or `r2`; returns once done.
pub fn control(command: &str) {
    let addr = server("CONTROL").expect("the harness control port");
    let mut stream = TcpStream::connect_timeout(addr.as_str(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("harness control {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answer.ends_with(b"\n") && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("harness control {command:?}: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.trim(), "ok", "harness control {command:?}");
}

/// Retries `f` every 50 ms until it returns `Some`, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        lunatic::sleep(Duration::from_millis(50));
    }
}

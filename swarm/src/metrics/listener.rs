//! The node's operations listener: a small HTTP/1.1 server inside Lunatic, serving
//! `GET /metrics` (Prometheus text), `GET /livez` and `GET /readyz`. One listener process
//! accepts; each connection gets a process of its own, which reads one request (at most
//! [`MAX_REQUEST`] bytes, within [`READ_TIMEOUT`]), answers it and closes: a slow or hostile
//! client holds one small process, never the listener or the node.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use lunatic::net::{TcpListener, TcpStream};

use super::collector::{self, Snapshot};
use super::exposition::CONTENT_TYPE;
use super::http::{parse_request, response, Request, MAX_REQUEST};
use super::model::{render, NodeFigures, SupervisorState};
use crate::runtime::host;
use crate::runtime::mailbox::{reply_slot, wait_for, ReplyTo};
use crate::runtime::process::spawn;
use crate::store::StoreConfig;

/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long readiness waits for the store to answer.
const STORE_PROBE_WAIT: Duration = Duration::from_secs(2);

/// Binds `addr` and reports the bound address (or why not) to `ready`, then accepts for ever.
pub(crate) fn listener_main((addr, ready): (String, ReplyTo)) {
    let listener = match TcpListener::bind(addr.as_str()) {
        Ok(listener) => listener,
        Err(err) => {
            return ready
                .send::<Result<String, String>>(Err(format!("cannot listen on {addr}: {err}")))
        }
    };
    let bound = listener
        .local_addr()
        .map(|at| at.to_string())
        .map_err(|err| format!("the listener on {addr} has no address: {err}"));
    let failed = bound.is_err();
    ready.send::<Result<String, String>>(bound);
    if failed {
        return;
    }
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                if let Err(err) = spawn(stream, connection_main) {
                    crate::log::warn(
                        "metrics.connection_dropped",
                        &[("reason", &err.to_string())],
                        "the operations listener could not start a process for a connection",
                    );
                }
            }
            Err(err) => {
                crate::log::warn(
                    "metrics.accept_failed",
                    &[("reason", &err.to_string())],
                    "the operations listener could not accept a connection",
                );
                host::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One connection: read the request, answer, close.
fn connection_main(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST {
            let _ = stream.write_all(&response(
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            ));
            return;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let answer = match parse_request(&head) {
        Request::Get("/metrics") => metrics(),
        Request::Get("/livez") | Request::Get("/healthz") => live(),
        Request::Get("/readyz") => ready(),
        Request::Get(_) => response(
            "404 Not Found",
            "text/plain",
            "not found: this node serves /metrics, /livez and /readyz\n",
        ),
        Request::OtherMethod => response("405 Method Not Allowed", "text/plain", "GET only\n"),
        Request::Malformed => response("400 Bad Request", "text/plain", "not an HTTP request\n"),
    };
    let _ = stream.write_all(&answer);
    let _ = stream.flush();
}

fn snapshot() -> Result<Snapshot, String> {
    let collector = host::registry_get(collector::NAME)
        .ok_or_else(|| "the node's metrics process is not running".to_owned())?;
    collector::snapshot(collector.id)
}

fn unavailable(reason: &str) -> Vec<u8> {
    response(
        "503 Service Unavailable",
        "text/plain",
        &format!("{reason}\n"),
    )
}

fn metrics() -> Vec<u8> {
    let snapshot = match snapshot() {
        Ok(snapshot) => snapshot,
        Err(reason) => return unavailable(&reason),
    };
    let mut node = NodeFigures::default();
    if let Ok(Some(live)) = crate::runtime::registry::live_by_kind() {
        node.live_by_kind = live.into_iter().collect::<BTreeMap<_, _>>();
    }
    if let Ok(Some(stats)) = crate::runtime::registry::stats() {
        node.starts = Some((stats.started, stats.failed_starts, stats.refused_starts));
    }
    #[cfg(feature = "nats")]
    {
        node.nats = snapshot.sources.nats.as_ref().map(super::nats_figures);
        node.cluster = snapshot
            .sources
            .cluster
            .as_deref()
            .and_then(super::cluster_figures);
    }
    response("200 OK", CONTENT_TYPE, &render(&snapshot.totals, &node))
}

/// Alive: the node's metrics process answers (a node whose processes no longer run messages
/// does not answer this).
fn live() -> Vec<u8> {
    match snapshot() {
        Ok(_) => response("200 OK", "text/plain", "live\n"),
        Err(reason) => unavailable(&reason),
    }
}

/// Ready: the store answers a read, the NATS connection (if one is configured) is connected, and
/// every supervisor that started on this node is up (or was shut down in order). The body says
/// each check's result, one per line.
fn ready() -> Vec<u8> {
    let snapshot = match snapshot() {
        Ok(snapshot) => snapshot,
        Err(reason) => return unavailable(&reason),
    };
    let mut lines = Vec::new();
    let mut ok = true;
    let store = snapshot
        .sources
        .store
        .clone()
        .unwrap_or_else(crate::runtime::node::default_store);
    match probe_store(store) {
        Ok(()) => lines.push("store: ok".to_owned()),
        Err(reason) => {
            ok = false;
            lines.push(format!("store: {reason}"));
        }
    }
    #[cfg(feature = "nats")]
    if let Some(client) = &snapshot.sources.nats {
        match client.status() {
            Ok(status) if status.state == crate::nats::ConnState::Connected => {
                lines.push(format!("nats: connected to {}", status.server))
            }
            Ok(status) => {
                ok = false;
                lines.push(format!("nats: {:?}", status.state).to_lowercase());
            }
            Err(err) => {
                ok = false;
                lines.push(format!("nats: {err}"));
            }
        }
    }
    let mut up = 0;
    for (name, state) in &snapshot.totals.supervisors {
        match state {
            SupervisorState::Up(process) if host::exists(*process) => up += 1,
            SupervisorState::Up(_) => {
                ok = false;
                lines.push(format!("supervisor {name}: its process is gone"));
            }
            SupervisorState::GaveUp => {
                ok = false;
                lines.push(format!("supervisor {name}: gave up"));
            }
            SupervisorState::Stopped => {}
        }
    }
    if ok {
        lines.push(format!("supervisors: {up} up"));
    }
    let body = lines.join("\n") + "\n";
    if ok {
        response("200 OK", "text/plain", &body)
    } else {
        response("503 Service Unavailable", "text/plain", &body)
    }
}

/// Reads a key from `store` in a process of its own, within [`STORE_PROBE_WAIT`]: a store that
/// hangs makes the node unready, not the check stuck.
fn probe_store(store: StoreConfig) -> Result<(), String> {
    let answer = reply_slot();
    let prober = spawn(
        (store, answer),
        |(store, answer): (StoreConfig, ReplyTo)| {
            let outcome = store
                .open()
                .and_then(|opened| opened.get("swarm-health/probe"))
                .map(|_| ())
                .map_err(|err| err.to_string());
            answer.send::<Result<(), String>>(outcome);
        },
    )
    .map_err(|err| err.to_string())?;
    match wait_for::<Result<(), String>>(answer, prober, Some(STORE_PROBE_WAIT)) {
        Ok(outcome) => outcome,
        Err(err) => {
            host::kill(prober);
            Err(format!("no answer: {err:?}"))
        }
    }
}

//! `swarm dashboard`: serves the dashboard page (`dashboard/` in the repository, built by
//! scripts/setup with esbuild and embedded into this binary by `build.rs`) on a local HTTP port.
//! The page talks to the swarm itself, over NATS WebSocket with the official NATS JavaScript
//! client: this command only hands it the files and where to connect (`/config.json`), so it
//! needs no NATS connection of its own and any number of browsers can watch through one.
//!
//! Why here and not in a node: the page is the operator's view of every node of a namespace, not
//! of one; a node would carry 160 KB of page in each of its WebAssembly instances and could not
//! know the URL browsers reach the server's WebSocket on; and the CLI is already the operator's
//! tool, with the same options (`-n`, `--server`).
//!
//! The HTTP side is deliberately small: `GET`/`HEAD` of four fixed paths, one request per
//! connection, a bounded request head read within a deadline, no file system access.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::failure::Failure;

/// The page's files, as `build.rs` found them in `dashboard/dist` when this binary was compiled.
#[cfg(dashboard_built)]
const PAGE: Option<Page> = Some(Page {
    index: include_bytes!(concat!(env!("SWARM_DASHBOARD_DIST"), "/index.html")),
    script: include_bytes!(concat!(env!("SWARM_DASHBOARD_DIST"), "/dashboard.js")),
    style: include_bytes!(concat!(env!("SWARM_DASHBOARD_DIST"), "/style.css")),
});
#[cfg(not(dashboard_built))]
const PAGE: Option<Page> = None;

struct Page {
    index: &'static [u8],
    script: &'static [u8],
    style: &'static [u8],
}

/// How long a browser may take to send its request head, and how large the head may be.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take in all, its answer included: a client that stops reading
/// (the page is larger than a socket buffer) does not hold its connection for ever.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// Connections served at once; more wait to be accepted (they cannot use up the descriptors).
const MAX_CONNECTIONS: usize = 64;

/// What the page is told (`/config.json`): where the NATS WebSocket is, which namespace.
#[derive(serde::Serialize)]
struct PageConfig<'a> {
    servers: [&'a str; 1],
    namespace: &'a str,
}

pub async fn dashboard(listen: &str, ws: &str, namespace: &str) -> Result<(), Failure> {
    check_ws_url(ws)?;
    let Some(page) = PAGE else {
        return Err(Failure::failed(
            "this swarm was built without the dashboard's page (dashboard/dist was missing): \
             run scripts/setup, which builds it with npm, then build swarm again",
        ));
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|err| Failure::usage(format!("cannot listen on {listen}: {err}")))?;
    let bound = listener
        .local_addr()
        .map_err(|err| Failure::failed(format!("the listener has no address: {err}")))?;
    let config = serde_json::to_vec(&PageConfig {
        servers: [ws],
        namespace,
    })
    .map_err(|err| Failure::failed(format!("the page's settings do not encode: {err}")))?;
    // A page that cannot reach the WebSocket only says "cannot connect": say here what is wrong.
    if let Some(warning) = ws_unreachable(ws).await {
        eprintln!("swarm dashboard: {warning}");
    }
    println!("swarm dashboard: http://{bound}/ (namespace {namespace}, NATS WebSocket {ws}); Ctrl-C stops it");
    let page = std::sync::Arc::new((page, config));
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let serve = async {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(err) => {
                    eprintln!("swarm dashboard: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let page = page.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let served =
                    tokio::time::timeout(CONNECTION_DEADLINE, serve_one(stream, &page.0, &page.1))
                        .await
                        .unwrap_or_else(|_| {
                            Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("closed after {CONNECTION_DEADLINE:?}"),
                            ))
                        });
                if let Err(err) = served {
                    // A browser that went away is not news; anything else is worth a line.
                    if err.kind() != std::io::ErrorKind::BrokenPipe
                        && err.kind() != std::io::ErrorKind::ConnectionReset
                    {
                        eprintln!("swarm dashboard: {peer}: {err}");
                    }
                }
            });
        }
    };
    tokio::select! {
        () = serve => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The WebSocket URL the page is given: `ws://` or `wss://` and a host, or the page could not use it.
fn check_ws_url(ws: &str) -> Result<(), Failure> {
    let rest = ws
        .strip_prefix("ws://")
        .or_else(|| ws.strip_prefix("wss://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(Failure::usage(format!(
            "--ws {ws:?}: give the NATS server's WebSocket URL, ws://host:port (a nats-server \
             needs a `websocket {{ listen: \"host:port\", no_tls: true }}` block for it)"
        ))),
    }
}

/// Why nothing listens at the WebSocket URL's address, if that is so (a plain TCP connect).
async fn ws_unreachable(ws: &str) -> Option<String> {
    let (secure, rest) = match ws.strip_prefix("wss://") {
        Some(rest) => (true, rest),
        None => (false, ws.strip_prefix("ws://")?),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if secure { 443 } else { 80 })
    };
    let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr)).await;
    match connect {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(format!(
            "nothing answers at {addr} ({err}): the page will not connect until a nats-server \
             listens there with a `websocket {{ listen: \"{addr}\", no_tls: true }}` block"
        )),
        Err(_) => Some(format!(
            "{addr} did not answer within 2 s: the page may not connect"
        )),
    }
}

async fn serve_one(mut stream: TcpStream, page: &Page, config: &[u8]) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_DEADLINE, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let Some(head) = head else {
        return respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request head too large\n",
            true,
        )
        .await;
    };
    let (method, path) = match parse_request_line(&head) {
        Some(parsed) => parsed,
        None => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
                true,
            )
            .await
        }
    };
    let with_body = method == "GET";
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET or HEAD\n",
            true,
        )
        .await;
    }
    // The query string is the page's own (`?server=..&namespace=..`).
    let path = path.split('?').next().unwrap_or(path);
    let (kind, body): (&str, &[u8]) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", page.index),
        "/dashboard.js" => ("text/javascript; charset=utf-8", page.script),
        "/style.css" => ("text/css; charset=utf-8", page.style),
        "/config.json" => ("application/json", config),
        _ => {
            return respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found\n",
                with_body,
            )
            .await
        }
    };
    respond(&mut stream, "200 OK", kind, body, with_body).await
}

/// The request head (up to the blank line), or `None` when it is larger than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// `(method, path)` of a request line `GET /path HTTP/1.1`.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let path = parts.next().filter(|p| p.starts_with('/'))?;
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    Some((method, path))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    // The page loads nothing from elsewhere and connects only to NATS WebSockets.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

/// The address `--listen` names, for a clearer error than the OS gives for a typo.
pub fn check_listen(listen: &str) -> Result<(), Failure> {
    listen.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        Failure::usage(format!(
            "--listen {listen:?}: give an address and port, such as 127.0.0.1:8090 (port 0 picks one)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_and_bad_ones_refused() {
        assert_eq!(
            parse_request_line("GET /dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/dashboard.js"))
        );
        assert_eq!(parse_request_line("GET dashboard.js HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line("GET / SPDY/3\r\n"), None);
        assert_eq!(parse_request_line("\r\n"), None);
    }

    #[test]
    fn the_websocket_url_and_listen_address_are_checked() {
        assert!(check_ws_url("ws://127.0.0.1:8080").is_ok());
        assert!(check_ws_url("wss://nats.example.com").is_ok());
        assert!(check_ws_url("nats://127.0.0.1:4222")
            .unwrap_err()
            .message
            .contains("websocket"));
        assert!(check_listen("127.0.0.1:0").is_ok());
        assert!(check_listen("localhost")
            .unwrap_err()
            .message
            .contains("--listen"));
    }
}

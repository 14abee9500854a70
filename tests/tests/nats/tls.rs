//! `tls://` against real nats-servers in TLS-first mode, with a CA and certificates made by
//! `tests/support/nats_harness.py` when it starts (see its docstring): traffic over TLS, a
//! reconnect after the TLS server restarts, and a clear `NatsError::Connect` for each way a TLS
//! connection cannot be made. Every wait is bounded.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process, Tag};
use swarm::nats::{ConnState, ConnectOptions, Headers, NatsClient, NatsError};
use swarm_tests::nats::{control, eventually, options, server, unique};

const WAIT: Duration = Duration::from_secs(5);
/// The longest a refused connect may take: the test options' 2 s connect timeout, the probe
/// that explains the refusal, and slack for a busy machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(6);

/// Options for `url` trusting the CA in the harness's file `SWARM_NATS_<ca_key>`.
fn tls_options(url: &str, ca_key: &str) -> Option<ConnectOptions> {
    let ca = server(ca_key)?;
    Some(
        options(url)
            .tls_ca_file(&ca)
            .unwrap_or_else(|e| panic!("{ca}: {e}")),
    )
}

/// Connects with `options`, expecting a refusal: returns its reason, checking that it names
/// the server and came within [`REFUSED_WITHIN`].
fn refused(options: ConnectOptions, url: &str) -> String {
    let started = Instant::now();
    let err = NatsClient::connect(options).expect_err("the connection must be refused");
    let elapsed = started.elapsed();
    assert!(elapsed < REFUSED_WITHIN, "refused after {elapsed:?}: {err}");
    match err {
        NatsError::Connect { server, reason } => {
            assert_eq!(server, url);
            reason
        }
        other => panic!("expected NatsError::Connect, got {other:?}"),
    }
}

/// Publish/subscribe, a burst (the reader process reads the TLS stream while the connection
/// process writes to it), and request/reply from another process, with headers.
#[lunatic::test]
fn publish_subscribe_and_request_reply_over_tls() {
    let Some(url) = server("TLS_URL") else { return };
    let Some(opts) = tls_options(&url, "TLS_CA") else {
        return;
    };
    let client = NatsClient::connect(opts).unwrap();
    let status = client.status().unwrap();
    assert_eq!(
        (status.state, status.server.as_str()),
        (ConnState::Connected, url.as_str())
    );

    let subject = unique("tls");
    let sub = client.subscribe(&format!("{subject}.*")).unwrap();
    const BURST: usize = 2000;
    for i in 0..BURST {
        client
            .publish(&format!("{subject}.{}", i % 7), format!("m{i}"))
            .unwrap();
    }
    client.flush().unwrap();
    for i in 0..BURST {
        let msg = sub.next_timeout(WAIT).unwrap();
        assert_eq!(msg.payload, format!("m{i}").as_bytes());
    }

    // A responder in its own process, on the same connection.
    let svc = format!("{subject}.svc");
    let ready = Tag::new();
    let mailbox = unsafe { Mailbox::<()>::new() };
    Process::spawn(
        (client.clone(), svc.clone(), mailbox.this(), ready),
        |(client, svc, parent, ready), _: Mailbox<()>| {
            let requests = client.subscribe(&svc).unwrap();
            parent.tag_send(ready, ());
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                match requests.next_timeout(Duration::from_millis(200)) {
                    Ok(msg) => {
                        let reply = msg.reply_to.clone().unwrap();
                        let answer = [b"re:".as_slice(), &msg.payload].concat();
                        match &msg.headers {
                            Some(h) => client.publish_with_headers(&reply, h, answer).unwrap(),
                            None => client.publish(&reply, answer).unwrap(),
                        }
                    }
                    Err(NatsError::TimedOut { .. }) => {}
                    Err(_) => break,
                }
            }
        },
    );
    mailbox.tag_receive_timeout(&[ready], WAIT).unwrap();
    for i in 0..50 {
        let reply = client.request(&svc, format!("{i}"), WAIT).unwrap();
        assert_eq!(reply.payload, format!("re:{i}").as_bytes());
    }
    let mut h = Headers::new();
    h.append("Trace-Id", "tls-1").unwrap();
    let reply = client.request_with_headers(&svc, &h, "h", WAIT).unwrap();
    assert_eq!(reply.payload, b"re:h");
    assert_eq!(reply.headers.unwrap().get("Trace-Id"), Some("tls-1"));
    drop(sub);
    client.close();
}

/// The harness restarts the TLS server (same port, same certificate): the client does the TLS
/// handshake again and its subscriptions work again. (A server of its own: the other tests run
/// at the same time.)
#[lunatic::test]
fn reconnects_after_the_tls_server_restarts() {
    let Some(url) = server("TLS_R_URL") else {
        return;
    };
    let Some(opts) = tls_options(&url, "TLS_CA") else {
        return;
    };
    let client = NatsClient::connect(opts).unwrap();
    let subject = unique("tls.restart");
    let sub = client.subscribe(&subject).unwrap();
    client.publish(&subject, "before").unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"before");

    control("restart tls_r");
    let got = eventually(Duration::from_secs(15), || {
        let _ = client.publish(&subject, "after");
        sub.next_timeout(Duration::from_millis(200))
            .ok()
            .filter(|m| m.payload == b"after")
    });
    assert!(got.is_some(), "the subscription works after the restart");
    let status = client.status().unwrap();
    assert!(status.reconnects >= 1, "{status:?}");
    assert_eq!(status.state, ConnState::Connected);
    client.close();
}

#[lunatic::test]
fn a_certificate_from_another_ca_is_refused_saying_so() {
    let Some(url) = server("TLS_URL") else { return };
    let Some(opts) = tls_options(&url, "TLS_UNTRUSTED_CA") else {
        return;
    };
    let reason = refused(opts, &url);
    assert_eq!(
        reason,
        "TLS handshake failed: the server's certificate (CN=localhost, issued by CN=swarm test \
         CA) is not issued by the configured CA (CN=swarm untrusted CA)"
    );
}

#[lunatic::test]
fn without_a_ca_only_public_roots_are_trusted() {
    let Some(url) = server("TLS_URL") else { return };
    let reason = refused(options(&url), &url);
    assert!(
        reason.contains("issued by CN=swarm test CA) is not trusted")
            && reason.contains("ConnectOptions::tls_ca"),
        "{reason}"
    );
}

#[lunatic::test]
fn a_certificate_for_another_host_is_refused_saying_so() {
    let Some(url) = server("TLS_WRONG_NAME_URL") else {
        return;
    };
    let Some(opts) = tls_options(&url, "TLS_CA") else {
        return;
    };
    let reason = refused(opts, &url);
    assert!(
        reason.ends_with("does not name the host \"localhost\": it is for nats.invalid"),
        "{reason}"
    );
    assert!(!reason.contains("configured CA"), "{reason}");
}

/// `tls://` to a server without TLS: refused at once (not after a timeout), saying so.
#[lunatic::test]
fn tls_to_a_plain_server_is_refused_at_once() {
    let (Some(plain), Some(ca)) = (server("URL"), server("TLS_CA")) else {
        return;
    };
    let port = plain.rsplit(':').next().unwrap();
    let url = format!("tls://localhost:{port}");
    let opts = options(&url).tls_ca_file(&ca).unwrap();
    let started = Instant::now();
    let reason = refused(opts, &url);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        reason.starts_with("the server does not do TLS: it answered in plain NATS"),
        "{reason}"
    );
}

/// A server with TLS the classic NATS way (plain INFO, then upgrade) cannot be reached: the
/// error says to turn on TLS-first.
#[lunatic::test]
fn a_server_that_upgrades_after_info_is_refused_naming_handshake_first() {
    let Some(url) = server("TLS_UPGRADE_URL") else {
        return;
    };
    let Some(opts) = tls_options(&url, "TLS_CA") else {
        return;
    };
    let reason = refused(opts, &url);
    assert!(
        reason.contains("not TLS-first") && reason.contains("handshake_first: true"),
        "{reason}"
    );
}

/// With several servers, a refused TLS one is skipped like any failed server.
#[lunatic::test]
fn a_refused_tls_server_is_skipped_for_the_next_one() {
    let (Some(tls), Some(plain)) = (server("TLS_URL"), server("URL")) else {
        return;
    };
    let Some(ca) = server("TLS_UNTRUSTED_CA") else {
        return;
    };
    let opts = ConnectOptions::new([tls.as_str(), plain.as_str()])
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .tls_ca_file(&ca)
        .unwrap();
    let client = NatsClient::connect(opts).unwrap();
    assert_eq!(client.status().unwrap().server, plain);
    client.close();
}

/// A server that accepts the TCP connection but never answers the TLS handshake: the attempt
/// ends after the connect timeout (the runtime's handshake itself has no time limit).
#[lunatic::test]
fn a_silent_server_fails_after_the_connect_timeout() {
    let Some(ca) = server("TLS_CA") else { return };
    // Listening but never accepting: the kernel completes TCP connects, nobody answers.
    let listener = lunatic::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("tls://localhost:{port}");
    let opts = options(&url)
        .connect_timeout(Duration::from_secs(1))
        .tls_ca_file(&ca)
        .unwrap();
    let started = Instant::now();
    let reason = refused(opts, &url);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        reason,
        "the TLS handshake did not finish within 1s (is the server TLS-first?)"
    );
    drop(listener);
}

/// A server that wants a client certificate (`verify: true`): Lunatic's TLS client has none, and
/// the refusal names it. (Over TLS 1.3 the client's handshake ends before the server checks, so
/// the server's alert comes with the first read.)
#[lunatic::test]
fn a_server_that_wants_a_client_certificate_is_refused_saying_so() {
    let Some(url) = server("TLS_VERIFY_URL") else {
        return;
    };
    let Some(opts) = tls_options(&url, "TLS_CA") else {
        return;
    };
    let reason = refused(opts, &url);
    assert!(reason.contains("CertificateRequired"), "{reason}");
}

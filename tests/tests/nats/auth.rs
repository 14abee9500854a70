//! nkey and JWT authentication and permission violations, against real nats-servers started by
//! `tests/support/nats_harness.py` (through `scripts/test`):
//!
//! - `SWARM_NATS_NKEY_URL`: nkey users; `SWARM_NATS_NKEY_SEED` may publish and subscribe only on
//!   `allowed.>` and `_INBOX.>`, `SWARM_NATS_NKEY_FULL_SEED` anywhere, and
//!   `SWARM_NATS_NKEY_NOINBOX_SEED` only on `allowed.>`;
//! - `SWARM_NATS_JWT_URL`: operator mode; `SWARM_NATS_JWT_CREDS` is a `.creds` file of a user
//!   limited to `allowed.>` and `_INBOX.>`, `SWARM_NATS_JWT_UNTRUSTED_CREDS` one of an account the
//!   server does not trust.
//!
//! Keys and JWTs are made afresh by the harness at every run. Every wait is bounded; refusals
//! must come back well within the time a call is given (`WAIT`), never as its timeout.

use std::time::{Duration, Instant};

use lunatic::{Mailbox, Process, Tag};
use serde::{Deserialize, Serialize};
use swarm::nats::{
    Auth, AuthError, ConnState, ConnectOptions, NatsClient, NatsError, PermissionAction,
};
use swarm_tests::nats::{options, server, unique};

/// What callers are given to wait; refusals must come much sooner (`PROMPT`, with room for a
/// loaded machine).
const WAIT: Duration = Duration::from_secs(5);
const PROMPT: Duration = Duration::from_millis(2_500);

/// A user seed no server of the harness knows (the 32 bytes 0..=31, see `swarm/src/nats/auth.rs`).
const STRANGER_SEED: &str = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y";

#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Ready,
}

/// A subject inside the limited users' permissions.
fn allowed(name: &str) -> String {
    format!("allowed.{}", unique(name))
}

/// Answers requests on `subject` with `re:<payload>`, in its own process, for up to 60 s.
fn spawn_responder(client: &NatsClient, subject: &str) {
    let mailbox = unsafe { Mailbox::<Report>::new() };
    Process::spawn(
        (client.clone(), subject.to_owned(), mailbox.this()),
        |(client, subject, parent), _: Mailbox<()>| {
            let sub = client.subscribe(&subject).unwrap();
            parent.tag_send(Tag::special(64).unwrap(), Report::Ready);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                match sub.next_timeout(Duration::from_millis(200)) {
                    Ok(msg) => {
                        let mut answer = b"re:".to_vec();
                        answer.extend_from_slice(&msg.payload);
                        client.respond(&msg, answer).unwrap();
                    }
                    Err(NatsError::TimedOut { .. }) => {}
                    Err(_) => break,
                }
            }
        },
    );
    match mailbox.tag_receive_timeout(&[Tag::special(64).unwrap()], WAIT) {
        Ok(Report::Ready) => {}
        Err(e) => panic!("responder not ready: {e:?}"),
    }
}

/// Publish, subscribe and request on subjects the user may use.
fn works_inside_permissions(client: &NatsClient) {
    let subject = allowed("pubsub");
    let sub = client.subscribe(&subject).unwrap();
    client.publish(&subject, "in").unwrap();
    client.flush().unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"in");
    let svc = allowed("svc");
    spawn_responder(client, &svc);
    for i in 0..5 {
        let reply = client.request(&svc, format!("{i}"), WAIT).unwrap();
        assert_eq!(reply.payload, format!("re:{i}").as_bytes());
    }
}

/// Asserts that `result` is the typed refusal of `operation` on `subject`, and came quickly.
fn assert_denied<T: std::fmt::Debug>(
    result: Result<T, NatsError>,
    started: Instant,
    operation: PermissionAction,
    subject: &str,
) {
    let took = started.elapsed();
    match result {
        Err(NatsError::PermissionDenied {
            operation: op,
            subject: s,
        }) => assert_eq!((op, s.as_str()), (operation, subject)),
        other => panic!(
            "{operation} {subject:?}: expected PermissionDenied, got {other:?} after {took:?}"
        ),
    }
    assert!(
        took < PROMPT,
        "{operation} {subject:?} refused only after {took:?}"
    );
}

/// Every kind of refusal, then the connection is still up and usable.
fn refused_outside_permissions(client: &NatsClient) {
    // A subscription: `subscribe` waits for the server's answer, which is the refusal.
    let forbidden = unique("forbidden");
    let started = Instant::now();
    assert_denied(
        client.subscribe(&forbidden),
        started,
        PermissionAction::Subscribe,
        &forbidden,
    );
    let started = Instant::now();
    assert_denied(
        client.queue_subscribe(&format!("{forbidden}.q"), "workers"),
        started,
        PermissionAction::Subscribe,
        &format!("{forbidden}.q"),
    );
    // A request: the server drops the PUB and says so; the request fails at once instead of
    // waiting out its timeout.
    let started = Instant::now();
    assert_denied(
        client.request(&forbidden, "q", WAIT),
        started,
        PermissionAction::Publish,
        &forbidden,
    );
    // A publish is queued without waiting; the refusal comes back from the next flush.
    client.publish(&forbidden, "x").unwrap();
    let started = Instant::now();
    assert_denied(
        client.flush(),
        started,
        PermissionAction::Publish,
        &forbidden,
    );
    // Reported once: the next flush is clean.
    client.flush().unwrap();
    // A reply subject the server reserves for itself (`_R_.`, service imports) is refused for
    // any user, whatever the subject.
    client
        .publish_with_reply(&allowed("reply"), "_R_.swarm.x", "x")
        .unwrap();
    let started = Instant::now();
    assert_denied(
        client.flush(),
        started,
        PermissionAction::Reply,
        "_R_.swarm.x",
    );

    // Still the same connection, and it still works.
    let status = client.status().unwrap();
    assert_eq!(status.state, ConnState::Connected, "{status:?}");
    assert_eq!(status.reconnects, 0, "{status:?}");
    assert_eq!(status.pending_requests, 0, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Permissions Violation")),
        "{status:?}"
    );
    works_inside_permissions(client);
}

fn nkey_options(url: &str, seed_var: &str) -> Option<ConnectOptions> {
    let seed = server(seed_var)?;
    Some(options(url).nkey(seed).unwrap())
}

#[lunatic::test]
fn connects_with_an_nkey_seed() {
    let Some(url) = server("NKEY_URL") else {
        return;
    };
    let Some(opts) = nkey_options(&url, "NKEY_FULL_SEED") else {
        return;
    };
    let client = NatsClient::connect(opts).unwrap();
    // The unlimited user may use any subject.
    let subject = unique("nkey");
    let sub = client.subscribe(&subject).unwrap();
    client.publish(&subject, "hello").unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"hello");
    works_inside_permissions(&client);
    client.close();
}

#[lunatic::test]
fn connects_with_a_creds_file() {
    let (Some(url), Some(creds)) = (server("JWT_URL"), server("JWT_CREDS")) else {
        return;
    };
    let client = NatsClient::connect(options(&url).credentials_file(&creds).unwrap()).unwrap();
    works_inside_permissions(&client);
    client.close();
}

#[lunatic::test]
fn the_server_refuses_unknown_keys_and_untrusted_jwts() {
    let (Some(nkey_url), Some(jwt_url), Some(untrusted)) = (
        server("NKEY_URL"),
        server("JWT_URL"),
        server("JWT_UNTRUSTED_CREDS"),
    ) else {
        return;
    };
    // A well-formed user seed that the server does not list.
    let err = NatsClient::connect(options(&nkey_url).nkey(STRANGER_SEED).unwrap()).unwrap_err();
    assert!(
        matches!(&err, NatsError::Connect { reason, .. } if reason.contains("Authorization Violation")),
        "{err:?}"
    );
    // No credentials at all.
    let err = NatsClient::connect(options(&nkey_url)).unwrap_err();
    assert!(err.to_string().contains("Authorization Violation"), "{err}");
    // An nkey where the server expects a JWT.
    let err = NatsClient::connect(options(&jwt_url).nkey(STRANGER_SEED).unwrap()).unwrap_err();
    assert!(err.to_string().contains("Authorization Violation"), "{err}");
    // A well-formed .creds file of an account the operator never signed.
    let err =
        NatsClient::connect(options(&jwt_url).credentials_file(&untrusted).unwrap()).unwrap_err();
    assert!(
        matches!(&err, NatsError::Connect { reason, .. } if reason.contains("Authorization Violation")),
        "{err:?}"
    );
}

#[lunatic::test]
fn bad_seeds_and_creds_fail_before_anything_is_sent() {
    let Some(url) = server("NKEY_URL") else {
        return;
    };
    // At construction, saying what is wrong.
    let err = options(&url).nkey("SUAAAA").unwrap_err();
    assert!(
        matches!(&err, NatsError::Auth(AuthError::InvalidSeed { reason }) if reason.contains("58 characters")),
        "{err:?}"
    );
    let err = options(&url)
        .credentials_file("test-data/no-such.creds")
        .unwrap_err();
    assert!(
        matches!(&err, NatsError::Auth(AuthError::ReadCredentials { path, .. }) if path == "test-data/no-such.creds"),
        "{err:?}"
    );
    // A seed put into `Auth` by hand is checked by `connect`, with the same error.
    let mut opts = options(&url);
    opts.auth = Auth::NKey {
        seed: "not a seed".into(),
    };
    let err = NatsClient::connect(opts).unwrap_err();
    assert!(matches!(err, NatsError::Auth(_)), "{err:?}");
}

#[lunatic::test]
fn nkey_user_is_refused_outside_its_permissions_with_a_typed_error() {
    let Some(url) = server("NKEY_URL") else {
        return;
    };
    let Some(opts) = nkey_options(&url, "NKEY_SEED") else {
        return;
    };
    let client = NatsClient::connect(opts).unwrap();
    works_inside_permissions(&client);
    refused_outside_permissions(&client);
    client.close();
}

#[lunatic::test]
fn jwt_user_is_refused_outside_its_permissions_with_a_typed_error() {
    let (Some(url), Some(creds)) = (server("JWT_URL"), server("JWT_CREDS")) else {
        return;
    };
    let client = NatsClient::connect(options(&url).credentials_file(&creds).unwrap()).unwrap();
    refused_outside_permissions(&client);
    client.close();
}

/// A user who may not subscribe to `_INBOX.>` cannot get replies: its requests fail at once
/// with the refused inbox subscription, instead of each waiting out its timeout.
#[lunatic::test]
fn requests_of_a_user_without_inbox_permission_fail_at_once() {
    let Some(url) = server("NKEY_URL") else {
        return;
    };
    let Some(opts) = nkey_options(&url, "NKEY_NOINBOX_SEED") else {
        return;
    };
    let client = NatsClient::connect(opts).unwrap();
    let svc = allowed("svc");
    for _ in 0..3 {
        let started = Instant::now();
        match client.request(&svc, "q", WAIT) {
            Err(NatsError::PermissionDenied {
                operation: PermissionAction::Subscribe,
                subject,
            }) => assert!(
                subject.starts_with("_INBOX.") && subject.ends_with(".*"),
                "{subject}"
            ),
            other => panic!("expected the inbox to be refused, got {other:?}"),
        }
        assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    }
    // Publish and subscribe inside `allowed.>` still work.
    let subject = allowed("noinbox");
    let sub = client.subscribe(&subject).unwrap();
    client.publish(&subject, "x").unwrap();
    assert_eq!(sub.next_timeout(WAIT).unwrap().payload, b"x");
    client.close();
}

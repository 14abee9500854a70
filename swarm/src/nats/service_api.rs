//! The NATS services API (ADR-32, `$SRV.PING|INFO|STATS`) as data: the JSON of its answers, the
//! service name a namespace gets, the per-endpoint counters, and the error a front-door reply
//! carries in its `Nats-Service-Error` headers. Pure (no I/O), so it is tested natively against
//! what the `io.nats.micro.v1` schemas require; `discovery.rs` answers with it inside Lunatic.
//!
//! The schemas (`schemas/micro/v1/*.json` in nats-io/jsm.go, vendored for the tests under
//! `tests/support/schemas/`) require `type`, `name` (`^[a-zA-Z0-9_-]+$`), `id` and a SemVer
//! `version` in every answer; `description` in INFO; `started` (RFC 3339) and per endpoint
//! `name`, `subject`, `num_requests`, `num_errors`, `last_error`, `processing_time` and
//! `average_processing_time` (nanoseconds) in STATS. Metadata values are strings.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::codec::Headers;

/// The header naming a service error, per ADR-32: the text to show a user.
pub const SERVICE_ERROR_HEADER: &str = "Nats-Service-Error";
/// The header carrying a service error's number (HTTP-like: 400, 500, 503, 504).
pub const SERVICE_ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";

/// What every service name of swarm starts with: `swarm-<namespace>`.
const NAME_PREFIX: &str = "swarm-";

/// The version every answer reports: swarm's own (a SemVer string, as the schemas require).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The service name of the agents of `namespace`: `swarm-<namespace>`, with each `.` of a
/// namespace of several tokens written `_` (`acme.prod` → `swarm-acme_prod`). ADR-32 names allow
/// only `A-Z a-z 0-9 _ -`; a namespace with any other character is refused, with the reason.
pub fn service_name(namespace: &str) -> Result<String, String> {
    if namespace.is_empty() {
        return Err("an empty namespace cannot name a NATS service".into());
    }
    let mut name = String::with_capacity(NAME_PREFIX.len() + namespace.len());
    name.push_str(NAME_PREFIX);
    for ch in namespace.chars() {
        match ch {
            '.' => name.push('_'),
            ch if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' => name.push(ch),
            ch => {
                return Err(format!(
                    "namespace {namespace:?} cannot name a NATS service (ADR-32): character \
                     {ch:?} is not allowed; service names use A-Z a-z 0-9 _ - (a '.' between \
                     tokens is written '_')"
                ))
            }
        }
    }
    Ok(name)
}

/// Whether `name` is a valid ADR-32 service or endpoint name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `at` in RFC 3339, UTC, with nanoseconds: `2026-12-01T09:30:05.123456789Z`. A time before
/// 1970 (a clock set wrong) is written as the epoch.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// An error reply of the front door, as ADR-32 wants it shown: a code that always parses as a
/// number and a description for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceError {
    /// 400 (the caller's request is wrong), 500, 503 (overloaded), 504 (timed out).
    pub code: u16,
    /// The error reply's message, on one line.
    pub description: String,
}

impl ServiceError {
    /// The error for a front-door reply `{"error": {"kind": kind, "message": message}}`;
    /// `timed_out` for a call that failed because the agent did not answer in time.
    pub fn for_reply(kind: &str, message: &str, timed_out: bool) -> ServiceError {
        let code = match kind {
            "bad_arguments" | "invalid_key" | "unknown_handler" | "bad_request_id" => 400,
            // Call again: another node (or this one, a moment later) takes it.
            "overloaded" | "unavailable" => 503,
            // The agent lives on another node now: call again through the front door.
            "moved" => 409,
            "call_failed" if timed_out => 504,
            _ => 500,
        };
        // A header value is one line: a handler's panic message may have several.
        let description = message
            .chars()
            .map(|ch| if ch == '\r' || ch == '\n' { ' ' } else { ch })
            .collect();
        ServiceError { code, description }
    }

    /// The `Nats-Service-Error` and `Nats-Service-Error-Code` headers.
    pub fn headers(&self) -> Headers {
        let mut headers = Headers::new();
        // Neither value can hold a line break (see `for_reply`; a number has none), which is
        // all a header value may not contain.
        let _one_line = headers.insert(SERVICE_ERROR_HEADER, self.description.as_str());
        let _a_number = headers.insert(SERVICE_ERROR_CODE_HEADER, self.code.to_string());
        headers
    }

    /// How STATS shows it as `last_error`: `<code>:<description>`, as the Go and other
    /// reference implementations of ADR-32 do.
    pub fn last_error(&self) -> String {
        format!("{}:{}", self.code, self.description)
    }
}

/// What one process (a front-door worker or its responder) counted for one endpoint (one
/// handler of one kind). Processes answer requests in parallel; the discovery process adds
/// their counters up (see [`Counter::add`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Requests answered (an answer that could not be published counts too).
    pub requests: u64,
    /// Of those, answered with an error.
    pub errors: u64,
    /// Nanoseconds from taking each request to publishing its answer, in total.
    pub processing_ns: u64,
    /// The last error: when (nanoseconds since the Unix epoch, to find the latest of several
    /// processes) and its `last_error` text.
    pub last_error: Option<(u64, String)>,
}

impl Counter {
    /// Counts one answer that took `elapsed`, an error if `error` is given.
    pub fn record(&mut self, elapsed: Duration, error: Option<&ServiceError>) {
        self.requests += 1;
        self.processing_ns = self
            .processing_ns
            .saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        if let Some(error) = error {
            self.errors += 1;
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
                });
            self.last_error = Some((at, error.last_error()));
        }
    }

    /// Adds another process' counts for the same endpoint; the later of the two last errors
    /// stays.
    pub fn add(&mut self, other: &Counter) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.processing_ns = self.processing_ns.saturating_add(other.processing_ns);
        if let Some((at, _)) = &other.last_error {
            if self.last_error.as_ref().map_or(true, |(mine, _)| mine < at) {
                self.last_error.clone_from(&other.last_error);
            }
        }
    }
}

/// One endpoint of the service: one handler of one agent kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `<kind>-<handler>`.
    pub name: String,
    /// `<namespace>.<kind>.*.<handler>`.
    pub subject: String,
    /// `<namespace>.<kind>`: the workers' queue group.
    pub queue_group: String,
    /// `kind`, `handler`, and `request` (`"true"` when the caller gets the handler's answer,
    /// `"false"` for a fire-and-forget handler, answered `{"ok": null}` once delivered); for a
    /// kind with `#[agent(schema)]`, also `arguments_schema` and `reply_schema` (see
    /// `crate::schema`).
    pub metadata: BTreeMap<String, String>,
}

impl Endpoint {
    /// The endpoint of `handler` of agents of `kind`, served in `namespace`.
    pub fn new(namespace: &str, kind: &str, handler: &str, request: bool) -> Endpoint {
        let metadata = [
            ("kind", kind.to_owned()),
            ("handler", handler.to_owned()),
            ("request", request.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        Endpoint {
            name: format!("{kind}-{handler}"),
            subject: format!("{namespace}.{kind}.*.{handler}"),
            queue_group: format!("{namespace}.{kind}"),
            metadata,
        }
    }
}

/// Who answers: the fields every answer starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `swarm-<namespace>` (see [`service_name`]).
    pub name: String,
    /// This node's run of the service.
    pub id: String,
    /// `node` (the id again, until the cluster names nodes) and `kinds` (the kinds served,
    /// comma-separated, in the order they were added).
    pub metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Ping<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'static str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Info<'a> {
    #[serde(flatten)]
    ping: Ping<'a>,
    description: &'a str,
    endpoints: Vec<EndpointInfo<'a>>,
}

#[derive(Serialize)]
struct EndpointInfo<'a> {
    name: &'a str,
    subject: &'a str,
    queue_group: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Stats<'a> {
    #[serde(flatten)]
    ping: Ping<'a>,
    started: &'a str,
    endpoints: Vec<EndpointStats<'a>>,
}

#[derive(Serialize)]
struct EndpointStats<'a> {
    name: &'a str,
    subject: &'a str,
    queue_group: &'a str,
    num_requests: u64,
    num_errors: u64,
    last_error: &'a str,
    processing_time: u64,
    average_processing_time: u64,
    data: &'a serde_json::Value,
}

impl Identity {
    fn ping(&self, kind: &'static str) -> Ping<'_> {
        Ping {
            kind,
            name: &self.name,
            id: &self.id,
            version: VERSION,
            metadata: &self.metadata,
        }
    }

    /// The answer to `$SRV.PING`: `io.nats.micro.v1.ping_response`.
    pub fn ping_json(&self) -> Vec<u8> {
        to_json(&self.ping("io.nats.micro.v1.ping_response"))
    }

    /// The answer to `$SRV.INFO`: `io.nats.micro.v1.info_response`.
    pub fn info_json(&self, description: &str, endpoints: &[Endpoint]) -> Vec<u8> {
        to_json(&Info {
            ping: self.ping("io.nats.micro.v1.info_response"),
            description,
            endpoints: endpoints
                .iter()
                .map(|endpoint| EndpointInfo {
                    name: &endpoint.name,
                    subject: &endpoint.subject,
                    queue_group: &endpoint.queue_group,
                    metadata: &endpoint.metadata,
                })
                .collect(),
        })
    }

    /// The answer to `$SRV.STATS`: `io.nats.micro.v1.stats_response`, each endpoint with its
    /// counts and `data` (ADR-32's per-endpoint "additional statistics").
    pub fn stats_json(
        &self,
        started: &str,
        endpoints: &[(&Endpoint, &Counter)],
        data: &serde_json::Value,
    ) -> Vec<u8> {
        to_json(&Stats {
            ping: self.ping("io.nats.micro.v1.stats_response"),
            started,
            endpoints: endpoints
                .iter()
                .map(|&(endpoint, counter)| EndpointStats {
                    name: &endpoint.name,
                    subject: &endpoint.subject,
                    queue_group: &endpoint.queue_group,
                    num_requests: counter.requests,
                    num_errors: counter.errors,
                    last_error: counter
                        .last_error
                        .as_ref()
                        .map_or("", |(_, text)| text.as_str()),
                    // The schemas' nanoseconds are signed 64-bit integers.
                    processing_time: counter.processing_ns.min(i64::MAX as u64),
                    average_processing_time: counter
                        .processing_ns
                        .checked_div(counter.requests)
                        .unwrap_or(0)
                        .min(i64::MAX as u64),
                    data,
                })
                .collect(),
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Strings, integers and maps with string keys: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn identity() -> Identity {
        Identity {
            name: service_name("acme.prod").unwrap(),
            id: "0f3a9c".into(),
            metadata: [("node", "0f3a9c"), ("kinds", "counter,echo")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    /// The official SemVer 2.0 grammar (what the schemas' pattern encodes), by hand.
    fn is_semver(version: &str) -> bool {
        let (core, build) = version.split_once('+').unwrap_or((version, ""));
        let (core, pre) = core.split_once('-').unwrap_or((core, ""));
        let numeric = |part: &str| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'))
        };
        let ident = |part: &str| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3
            && parts.iter().all(|part| numeric(part))
            && (pre.is_empty()
                || pre.split('.').all(|part| {
                    ident(part) && (numeric(part) || !part.bytes().all(|b| b.is_ascii_digit()))
                }))
            && (build.is_empty() || build.split('.').all(ident))
    }

    #[test]
    fn a_namespace_names_a_service_or_is_refused_with_the_reason() {
        assert_eq!(service_name("chat").unwrap(), "swarm-chat");
        assert_eq!(service_name("acme.prod-1").unwrap(), "swarm-acme_prod-1");
        assert!(is_valid_name(&service_name("t.a_b.7x0x123").unwrap()));
        let refused = service_name("chat$1").unwrap_err();
        assert!(
            refused.contains("\"chat$1\"") && refused.contains("'$'"),
            "{refused}"
        );
        assert!(service_name("").is_err());
        assert!(!is_valid_name("") && !is_valid_name("a.b") && is_valid_name("counter-add"));
    }

    #[test]
    fn the_version_is_semver() {
        assert!(is_semver(VERSION), "{VERSION}");
        assert!(VERSION.len() >= 5);
        assert!(is_semver("1.0.0-rc.1+build.5") && !is_semver("1.02.0") && !is_semver("1.0"));
    }

    #[test]
    fn started_is_rfc3339_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29 (a leap day) 23:59:58.5 UTC.
        let leap = UNIX_EPOCH + Duration::new(1_709_251_198, 500_000_000);
        assert_eq!(rfc3339(leap), "2024-02-29T23:59:58.500000000Z");
        // 2000-03-01, after the century's leap day.
        let y2k = UNIX_EPOCH + Duration::from_secs(951_868_800);
        assert_eq!(rfc3339(y2k), "2000-03-01T00:00:00.000000000Z");
        let now = rfc3339(SystemTime::now());
        assert_eq!(now.len(), 30);
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
    }

    #[test]
    fn ping_has_the_standard_fields_and_string_metadata() {
        let ping = parse(&identity().ping_json());
        assert_eq!(
            ping,
            json!({
                "type": "io.nats.micro.v1.ping_response",
                "name": "swarm-acme_prod",
                "id": "0f3a9c",
                "version": VERSION,
                "metadata": {"node": "0f3a9c", "kinds": "counter,echo"},
            })
        );
    }

    #[test]
    fn info_lists_one_endpoint_per_kind_and_handler() {
        let endpoints = [
            Endpoint::new("acme.prod", "counter", "add", true),
            Endpoint::new("acme.prod", "counter", "bump", false),
        ];
        let info = parse(&identity().info_json("agents", &endpoints));
        assert_eq!(info["type"], "io.nats.micro.v1.info_response");
        assert_eq!(info["description"], "agents");
        assert_eq!(info["version"], VERSION);
        assert_eq!(
            info["endpoints"],
            json!([
                {
                    "name": "counter-add",
                    "subject": "acme.prod.counter.*.add",
                    "queue_group": "acme.prod.counter",
                    "metadata": {"kind": "counter", "handler": "add", "request": "true"},
                },
                {
                    "name": "counter-bump",
                    "subject": "acme.prod.counter.*.bump",
                    "queue_group": "acme.prod.counter",
                    "metadata": {"kind": "counter", "handler": "bump", "request": "false"},
                },
            ])
        );
    }

    #[test]
    fn stats_have_every_required_field_in_nanoseconds() {
        let endpoint = Endpoint::new("ns", "counter", "add", true);
        let idle = Endpoint::new("ns", "counter", "total", true);
        let mut counted = Counter::default();
        counted.record(Duration::from_micros(300), None);
        counted.record(
            Duration::from_micros(100),
            Some(&ServiceError::for_reply("bad_arguments", "no n", false)),
        );
        let data = json!({"agents_live": 3});
        let stats = parse(&identity().stats_json(
            "2026-12-01T09:30:05.000000000Z",
            &[(&endpoint, &counted), (&idle, &Counter::default())],
            &data,
        ));
        assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
        assert_eq!(stats["started"], "2026-12-01T09:30:05.000000000Z");
        assert_eq!(
            stats["endpoints"][0],
            json!({
                "name": "counter-add",
                "subject": "ns.counter.*.add",
                "queue_group": "ns.counter",
                "num_requests": 2,
                "num_errors": 1,
                "last_error": "400:no n",
                "processing_time": 400_000,
                "average_processing_time": 200_000,
                "data": {"agents_live": 3},
            })
        );
        // An endpoint never called: zeros and an empty last_error, never a division by zero.
        assert_eq!(stats["endpoints"][1]["num_requests"], 0);
        assert_eq!(stats["endpoints"][1]["average_processing_time"], 0);
        assert_eq!(stats["endpoints"][1]["last_error"], "");
    }

    #[test]
    fn counters_of_several_processes_add_up_and_keep_the_latest_error() {
        let mut worker = Counter::default();
        worker.record(
            Duration::from_nanos(10),
            Some(&ServiceError::for_reply("invalid_key", "old", false)),
        );
        std::thread::sleep(Duration::from_millis(2));
        let mut responder = Counter::default();
        responder.record(
            Duration::from_nanos(30),
            Some(&ServiceError::for_reply("call_failed", "late", true)),
        );
        let mut total = Counter::default();
        total.add(&responder);
        total.add(&worker);
        assert_eq!(
            (total.requests, total.errors, total.processing_ns),
            (2, 2, 40)
        );
        assert_eq!(total.last_error.unwrap().1, "504:late");
    }

    #[test]
    fn error_codes_and_headers_follow_the_reply_kind() {
        let code = |kind, timed_out| ServiceError::for_reply(kind, "m", timed_out).code;
        assert_eq!(code("bad_arguments", false), 400);
        assert_eq!(code("invalid_key", false), 400);
        assert_eq!(code("unknown_handler", false), 400);
        assert_eq!(code("overloaded", false), 503);
        assert_eq!(code("unavailable", false), 503);
        assert_eq!(code("moved", false), 409);
        assert_eq!(code("corrupt_directory", false), 500);
        assert_eq!(code("call_failed", true), 504);
        assert_eq!(code("call_failed", false), 500);
        assert_eq!(code("start_failed", false), 500);
        assert_eq!(code("reply_too_large", false), 500);
        let error = ServiceError::for_reply("call_failed", "panicked:\nline two\r\n", false);
        let headers = error.headers();
        assert_eq!(
            headers.get(SERVICE_ERROR_HEADER),
            Some("panicked: line two  ")
        );
        assert_eq!(headers.get(SERVICE_ERROR_CODE_HEADER), Some("500"));
    }
}

//! Parser tests: every op, every error, a checklist of the protocol's traps (numbered `c01_`..
//! `c14_`; the list came from research notes kept outside the repository, and each test's name
//! and comment say which trap it covers), the bytes observed from nats-server 2.9.10, and split
//! invariance.

use super::*;

type Outcome = Result<ServerOp, ParseError>;

/// Takes every op out of the parser; stops after a fatal error, as a connection would.
fn drain(parser: &mut ServerOpParser, out: &mut Vec<Outcome>) -> bool {
    loop {
        match parser.next_op() {
            Ok(None) => return true,
            Ok(Some(op)) => out.push(Ok(op)),
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return false;
                }
            }
        }
    }
}

fn parse_chunks<'a>(
    limits: ParserLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Outcome> {
    let mut parser = ServerOpParser::with_limits(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        if !drain(&mut parser, &mut out) {
            break;
        }
    }
    out
}

fn parse(input: &[u8]) -> Vec<Outcome> {
    parse_chunks(ParserLimits::default(), [input])
}

fn ops(input: &[u8]) -> Vec<ServerOp> {
    parse(input)
        .into_iter()
        .map(|r| r.expect("no error expected"))
        .collect()
}

fn msg(op: &Outcome) -> &Msg {
    match op {
        Ok(ServerOp::Msg(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn plain(subject: &str, sid: u64, reply_to: Option<&str>, payload: &[u8]) -> ServerOp {
    ServerOp::Msg(Msg {
        subject: subject.into(),
        sid,
        reply_to: reply_to.map(Into::into),
        headers: None,
        status: None,
        description: None,
        payload: payload.to_vec(),
    })
}

/// Tiny deterministic PRNG (xorshift) for chunk sizes; no dependency needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_chunks(input: &[u8], seed: u64, max_chunk: usize) -> Vec<&[u8]> {
    let mut rng = Rng(seed | 1);
    let mut rest = input;
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let n = (rng.next() as usize % max_chunk + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        chunks.push(a);
        rest = b;
    }
    chunks
}

/// A long stream with every op, every recoverable error and the awkward formatting, ending in a
/// fatal error so that poisoning is covered by the split tests too.
fn mixed_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"INFO {\"server_id\":\"S1\",\"version\":\"2.9.10\",\"proto\":1,\"headers\":true,\"max_payload\":1048576}\r\n");
    s.extend_from_slice(b"+OK\r\nPONG\r\n");
    s.extend_from_slice(b"MSG foo.bar 1 11\r\nHello World\r\n");
    s.extend_from_slice(b"MSG FOO.BAR 9 GREETING.34 11\r\nHello World\r\n");
    s.extend_from_slice(
        b"msg\t _INBOX.probe.a4 \t1  31\r\n{\"stream\":\"KV_agents\", \"seq\":1}\r\n",
    );
    s.extend_from_slice(b"PING\r\n");
    s.extend_from_slice(b"HMSG _INBOX.probe.a1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    s.extend_from_slice(b"MSG crlf 2 16\r\nhello\r\nwith crlf\r\n");
    s.extend_from_slice(b"BOGUS op here\r\n");
    s.extend_from_slice(b"MSG balance.\xff 3 2\r\nhi\r\n");
    s.extend_from_slice(b"HMSG _INBOX.probe.a6 1  172 188\r\nNATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\nNats-Stream: KV_agents\r\nNats-Subject: $KV.agents.a1\r\nNats-Sequence: 1\r\nNats-Time-Stamp: 2026-11-24T11:48:39.479467447Z\r\n\r\nhello\r\nwith crlf\r\n");
    s.extend_from_slice(b"-ERR 'Invalid Subject'\r\n");
    s.extend_from_slice(b"info {\"ldm\":true,\"connect_urls\":[\"10.0.0.2:4222\"]}\r\n");
    s.extend_from_slice(b"MSG big 4 220\r\n");
    s.extend_from_slice(&[b'x'; 220]);
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(b"HMSG h 5 reply.x 12 14\r\nNATS/1.0\r\n\r\n\xff\x00\r\n");
    s.extend_from_slice(b"HMSG bad 6 30 20\r\n");
    s.extend_from_slice(&[b'y'; 20]);
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(b"HMSG badhdr 7 6 8\r\nHTTP/1ab\r\n");
    s.extend_from_slice(b"MSG s notanumber 1\r\nz\r\n");
    s.extend_from_slice(b"PING extra\r\n");
    s.extend_from_slice(b"INFO {broken\r\n");
    s.extend_from_slice(
        b"HMSG _INBOX.probe.a7 1  34 34\r\nNATS/1.0 404 Message Not Found\r\n\r\n\r\n",
    );
    s.extend_from_slice(b"MSG empty 8 0\r\n\r\n");
    s.extend_from_slice(b"-ERR 'Stale Connection'\r\n");
    s.extend_from_slice(b"MSG wrong 9 3\r\nabcd\r\n");
    s.extend_from_slice(b"PING\r\n");
    s
}

/// Limits for the mixed stream: `big` (220 bytes) is over the body limit.
fn mixed_limits() -> ParserLimits {
    ParserLimits {
        max_control_line: 256,
        max_body: 200,
    }
}

#[test]
fn mixed_stream_parses_as_expected() {
    let out = parse_chunks(mixed_limits(), [mixed_stream().as_slice()]);
    let kinds: Vec<String> = out
        .iter()
        .map(|r| match r {
            Ok(ServerOp::Info(_)) => "INFO".into(),
            Ok(ServerOp::Msg(m)) => format!("MSG {}", m.subject),
            Ok(ServerOp::Ping) => "PING".into(),
            Ok(ServerOp::Pong) => "PONG".into(),
            Ok(ServerOp::Ok) => "+OK".into(),
            Ok(ServerOp::Err(e)) => format!("-ERR {}", e.message),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "INFO",
            "+OK",
            "PONG",
            "MSG foo.bar",
            "MSG FOO.BAR",
            "MSG _INBOX.probe.a4",
            "PING",
            "MSG _INBOX.probe.a1",
            "MSG crlf",
            "error: unknown operation \"BOGUS\"",
            "error: MSG for sid 3: subject is not valid UTF-8",
            "MSG _INBOX.probe.a6",
            "-ERR Invalid Subject",
            "INFO",
            "error: MSG for sid 4: body of 220 bytes exceeds the limit of 200 bytes",
            "MSG h",
            "error: HMSG for sid 6: header length 30 exceeds total length 20",
            "error: HMSG for sid 7: header block does not start with NATS/1.0",
            "error: MSG: sid \"notanumber\" is not a decimal number",
            "error: PING takes no fields",
            "error: INFO: invalid JSON: key must be a string at line 1 column 2",
            "MSG _INBOX.probe.a7",
            "MSG empty",
            "-ERR Stale Connection",
            "error: MSG: payload not followed by CRLF, its declared length does not match the data",
        ]
    );
    let h = msg(&out[15]);
    assert_eq!(h.reply_to.as_deref(), Some("reply.x"));
    assert_eq!(h.payload, b"\xff\x00");
    assert!(h.headers.as_ref().is_some_and(Headers::is_empty));
}

#[test]
fn c01_split_at_every_offset_gives_the_same_ops() {
    let input = mixed_stream();
    let whole = parse_chunks(mixed_limits(), [input.as_slice()]);
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(parse_chunks(mixed_limits(), [a, b]), whole, "split at {at}");
    }
}

#[test]
fn c01_byte_by_byte_and_random_chunks_give_the_same_ops() {
    let input = mixed_stream();
    let whole = parse_chunks(mixed_limits(), [input.as_slice()]);
    assert_eq!(
        parse_chunks(mixed_limits(), input.chunks(1)),
        whole,
        "byte by byte"
    );
    for seed in 0..300 {
        let chunks = random_chunks(&input, seed, 1 + (seed as usize % 64));
        assert_eq!(parse_chunks(mixed_limits(), chunks), whole, "seed {seed}");
    }
}

#[test]
fn c01_feeding_everything_before_draining_gives_the_same_ops() {
    // A caller may feed several reads before draining; the buffer compaction must cope.
    let input = mixed_stream();
    let whole = parse_chunks(mixed_limits(), [input.as_slice()]);
    let mut parser = ServerOpParser::with_limits(mixed_limits());
    let mut out = Vec::new();
    for (i, chunk) in random_chunks(&input, 99, 40).into_iter().enumerate() {
        parser.feed(chunk);
        if i % 3 == 2 && !drain(&mut parser, &mut out) {
            break;
        }
    }
    if !parser.is_poisoned() {
        drain(&mut parser, &mut out);
    }
    assert_eq!(out, whole);
}

#[test]
fn c02_payload_with_crlf_is_framed_by_length() {
    let payload = b"hello\r\nMSG fake 1 0\r\n\r\n\r\nxx";
    let input = [
        format!("MSG a 1 {}\r\n", payload.len()).as_bytes(),
        payload,
        b"\r\nPING\r\n",
    ]
    .concat();
    assert_eq!(ops(&input), [plain("a", 1, None, payload), ServerOp::Ping]);
}

#[test]
fn c03_runs_of_spaces_and_tabs_between_fields() {
    let out = ops(b"MSG _INBOX.probe.a4 1  31\r\n{\"stream\":\"KV_agents\", \"seq\":1}\r\nMSG\t\ta  \t 2 \t r \t 1 \t\r\nx\r\n  PING  \r\n");
    assert_eq!(
        out,
        [
            plain(
                "_INBOX.probe.a4",
                1,
                None,
                b"{\"stream\":\"KV_agents\", \"seq\":1}"
            ),
            plain("a", 2, Some("r"), b"x"),
            ServerOp::Ping,
        ]
    );
}

#[test]
fn c03_op_names_ignore_case() {
    let out = ops(b"ping\r\nPong\r\n+ok\r\n-err 'x'\r\nmsg a 1 0\r\n\r\nhMsG a 1 12 12\r\nNATS/1.0\r\n\r\n\r\nInFo {}\r\n");
    assert_eq!(out.len(), 7);
    assert_eq!(out[..3], [ServerOp::Ping, ServerOp::Pong, ServerOp::Ok]);
    assert!(matches!(out[3], ServerOp::Err(_)));
    assert!(matches!(out[6], ServerOp::Info(_)));
}

#[test]
fn c04_optional_reply_to_decided_by_field_count() {
    let out = parse(
        b"MSG s 1 2\r\nhi\r\nMSG s 1 r 2\r\nhi\r\nHMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHMSG s 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    );
    let replies: Vec<_> = out.iter().map(|o| msg(o).reply_to.clone()).collect();
    assert_eq!(replies, [None, Some("r".into()), None, Some("r".into())]);
    assert!(out.iter().all(|o| msg(o).payload == b"hi"));
    assert_eq!(msg(&out[2]).headers, Some(Headers::new()));
}

#[test]
fn c04_wrong_field_counts_are_fatal() {
    for (line, op, expected, got) in [
        (&b"MSG s 1\r\n"[..], "MSG", "3 or 4", 2),
        (b"MSG s 1 r x 2\r\n", "MSG", "3 or 4", 5),
        (b"MSG\r\n", "MSG", "3 or 4", 0),
        (b"HMSG s 1 2\r\n", "HMSG", "4 or 5", 3),
        (b"HMSG s 1 r a 2 3\r\n", "HMSG", "4 or 5", 6),
    ] {
        let out = parse(line);
        assert_eq!(out, [Err(ParseError::ArgumentCount { op, expected, got })]);
        assert!(out[0].as_ref().unwrap_err().is_fatal());
    }
}

#[test]
fn c05_header_only_and_empty_payloads() {
    let out = parse(b"HMSG _INBOX.probe.a7 1  34 34\r\nNATS/1.0 404 Message Not Found\r\n\r\n\r\nHMSG n 2 28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\nMSG e 3 0\r\n\r\nHPUB\r\n");
    let m = msg(&out[0]);
    assert_eq!(m.status, Some(StatusCode::NOT_FOUND));
    assert_eq!(m.description.as_deref(), Some("Message Not Found"));
    assert!(m.payload.is_empty() && !m.is_no_responders());
    assert_eq!(msg(&out[1]).description.as_deref(), Some("No Messages"));
    assert_eq!(out[2], Ok(plain("e", 3, None, b"")));
    assert!(matches!(out[3], Err(ParseError::UnknownOp { .. })));
}

#[test]
fn c05_header_length_over_total_skips_the_message() {
    let out = parse(b"HMSG s 1 30 20\r\n01234567890123456789\r\nPING\r\n");
    assert_eq!(
        out,
        [
            Err(ParseError::HeaderLenExceedsTotal {
                sid: 1,
                header_len: 30,
                total_len: 20
            }),
            Ok(ServerOp::Ping)
        ]
    );
    assert!(!out[0].as_ref().unwrap_err().is_fatal());
}

#[test]
fn c05_no_responders_status() {
    let out = parse(b"HMSG _INBOX.probe.a1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nHMSG _INBOX.x.y 1 40 40\r\nNATS/1.0 503\r\nNats-Subject: svc.echo\r\n\r\n\r\n");
    for o in &out {
        let m = msg(o);
        assert!(m.is_no_responders());
        assert_eq!(m.status, Some(StatusCode(503)));
        assert_eq!(m.description, None);
    }
    assert_eq!(
        msg(&out[1])
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Subject")),
        Some("svc.echo")
    );
}

#[test]
fn c06_async_info_mid_stream_with_lame_duck_mode() {
    let out = ops(b"MSG a 1 1\r\nx\r\nINFO {\"server_id\":\"S\",\"ldm\":true,\"connect_urls\":[\"10.0.0.2:4222\",\"10.0.0.3:4222\"]}\r\nMSG a 1 1\r\ny\r\n");
    assert_eq!(out.len(), 3);
    let ServerOp::Info(info) = &out[1] else {
        panic!("expected INFO, got {:?}", out[1])
    };
    assert!(info.ldm);
    assert_eq!(info.connect_urls, ["10.0.0.2:4222", "10.0.0.3:4222"]);
    assert!(info.raw.starts_with("{\"server_id\""));
    assert_eq!(out[2], plain("a", 1, None, b"y"));
}

#[test]
fn c07_ping_amid_heavy_traffic_comes_out_in_order() {
    let mut input = Vec::new();
    for i in 0..500u32 {
        input.extend_from_slice(format!("MSG load.{i} 1 4\r\n").as_bytes());
        input.extend_from_slice(&i.to_le_bytes());
        input.extend_from_slice(b"\r\n");
        if i == 250 {
            input.extend_from_slice(b"PING\r\n");
        }
    }
    for chunks in [vec![input.as_slice()], random_chunks(&input, 7, 1500)] {
        let out = parse_chunks(ParserLimits::default(), chunks);
        assert_eq!(out.len(), 501);
        assert_eq!(out[251], Ok(ServerOp::Ping));
        assert_eq!(msg(&out[252]).payload, 251u32.to_le_bytes());
    }
}

#[test]
fn c08_err_quotes_stripped_and_classified() {
    let out = ops(b"-ERR 'Authorization Violation'\r\n-ERR 'Permissions Violation for Subscription to \"secret.>\"'\r\n-ERR\t'Invalid Subject'  \r\n-ERR\r\n");
    let errs: Vec<_> = out
        .iter()
        .map(|op| match op {
            ServerOp::Err(e) => e.clone(),
            other => panic!("expected -ERR, got {other:?}"),
        })
        .collect();
    assert_eq!(errs[0].message, "Authorization Violation");
    assert_eq!(errs[0].kind, ServerErrorKind::AuthorizationViolation);
    assert!(errs[0].is_fatal());
    assert_eq!(
        errs[1].kind,
        ServerErrorKind::PermissionViolation {
            action: PermissionAction::Subscribe,
            subject: Some("secret.>".into()),
            queue: None
        }
    );
    assert!(!errs[1].is_fatal());
    assert_eq!(errs[2].kind, ServerErrorKind::InvalidSubject);
    assert_eq!((errs[3].message.as_str(), errs[3].is_fatal()), ("", true));
}

#[test]
fn c08_err_with_invalid_utf8_is_still_reported() {
    let out = ops(b"-ERR 'Slow Consumer \xff'\r\n");
    let ServerOp::Err(e) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(e.kind, ServerErrorKind::SlowConsumer);
    assert_eq!(e.message, "Slow Consumer \u{fffd}");
}

#[test]
fn c09_unknown_ops_are_skipped_line_by_line() {
    let out = parse(b"PUB foo 5\r\nhello\r\nWAT\r\n\r\n   \r\nPING\r\n");
    assert_eq!(
        out,
        [
            Err(ParseError::UnknownOp { op: "PUB".into() }),
            Err(ParseError::UnknownOp { op: "hello".into() }),
            Err(ParseError::UnknownOp { op: "WAT".into() }),
            Err(ParseError::UnknownOp { op: "".into() }),
            Err(ParseError::UnknownOp { op: "".into() }),
            Ok(ServerOp::Ping),
        ]
    );
    assert!(out[..5].iter().all(|o| !o.as_ref().unwrap_err().is_fatal()));
    let long = format!("{}\r\n", "Z".repeat(100));
    assert_eq!(
        parse(long.as_bytes()),
        [Err(ParseError::UnknownOp { op: "Z".repeat(32) })]
    );
}

#[test]
fn c10_non_utf8_subjects_fail_one_message_only() {
    let out = parse(b"MSG balance.\xFF 1 2\r\nhi\r\nMSG ok 1 r\xc3 2\r\nhi\r\nHMSG \xfe 2 12 12\r\nNATS/1.0\r\n\r\n\r\nMSG ok 1 3\r\n\xff\xfe\x00\r\n");
    assert_eq!(
        out,
        [
            Err(ParseError::InvalidUtf8 {
                op: "MSG",
                field: "subject",
                sid: 1
            }),
            Err(ParseError::InvalidUtf8 {
                op: "MSG",
                field: "reply-to",
                sid: 1
            }),
            Err(ParseError::InvalidUtf8 {
                op: "HMSG",
                field: "subject",
                sid: 2
            }),
            Ok(plain("ok", 1, None, b"\xff\xfe\x00")),
        ]
    );
}

#[test]
fn c11_unknown_and_stored_headers_are_kept() {
    let input = b"HMSG _INBOX.probe.a6 1  172 188\r\nNATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\nNats-Stream: KV_agents\r\nNats-Subject: $KV.agents.a1\r\nNats-Sequence: 1\r\nNats-Time-Stamp: 2026-11-24T11:48:39.479467447Z\r\n\r\nhello\r\nwith crlf\r\n";
    let out = parse(input);
    let m = msg(&out[0]);
    assert_eq!(m.subject, "_INBOX.probe.a6");
    assert_eq!(m.payload, b"hello\r\nwith crlf");
    assert_eq!(m.status, None);
    let h = m.headers.as_ref().expect("headers");
    assert_eq!(h.len(), 5);
    assert_eq!(h.get("Nats-Expected-Last-Subject-Sequence"), Some("0"));
    assert_eq!(h.get("Nats-Subject"), Some("$KV.agents.a1"));
    assert_eq!(h.get("Nats-Sequence"), Some("1"));
}

#[test]
fn c11_multi_valued_headers_keep_order() {
    let block = b"NATS/1.0\r\nA: 1\r\nB: x\r\nA: 2\r\n\r\n";
    let input = [
        format!("HMSG s 1 {0} {0}\r\n", block.len()).as_bytes(),
        block,
        b"\r\n",
    ]
    .concat();
    let out = parse(&input);
    let h = msg(&out[0]).headers.clone().expect("headers");
    assert_eq!(h.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(
        h.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["A", "B", "A"]
    );
}

#[test]
fn c12_verbose_ok_per_op() {
    assert_eq!(
        ops(b"+OK\r\n+OK\r\nPONG\r\n"),
        [ServerOp::Ok, ServerOp::Ok, ServerOp::Pong]
    );
    assert_eq!(
        parse(b"+OK now\r\n"),
        [Err(ParseError::UnexpectedFields { op: "+OK" })]
    );
    assert_eq!(
        parse(b"PONG x\r\n"),
        [Err(ParseError::UnexpectedFields { op: "PONG" })]
    );
}

#[test]
fn c13_no_encoder_accepts_protocol_text() {
    let evil = [
        "a\r\nPUB x 0",
        "a b",
        "a\tb",
        "a\nb",
        "a\rb",
        "a\0b",
        "",
        "a..b",
        ".a",
        "a.",
    ];
    let mut out = Vec::new();
    for s in evil {
        assert!(encode_pub(&mut out, s, None, b"").is_err(), "{s:?}");
        assert!(encode_pub(&mut out, "ok", Some(s), b"").is_err(), "{s:?}");
        assert!(
            encode_hpub(&mut out, s, None, &Headers::new(), b"").is_err(),
            "{s:?}"
        );
        assert!(encode_sub(&mut out, s, None, 1).is_err(), "{s:?}");
    }
    for q in ["", "q 1", "q\r\n", "q\t"] {
        assert!(encode_sub(&mut out, "ok", Some(q), 1).is_err(), "{q:?}");
    }
    assert!(out.is_empty());
}

#[test]
fn c14_websocket_frames_are_arbitrary_chunks() {
    // A WebSocket binary frame may end anywhere, including inside CRLF: same parser, same ops.
    let input = b"INFO {}\r\nMSG a 1 2\r\n\r\n\r\nPING\r\n";
    let whole = parse(input);
    for at in 0..input.len() {
        for at2 in at..input.len() {
            let chunks = [&input[..at], &input[at..at2], &input[at2..]];
            assert_eq!(
                parse_chunks(ParserLimits::default(), chunks),
                whole,
                "{at} {at2}"
            );
        }
    }
}

#[test]
fn appendix_a_transcript() {
    let out = parse(b"INFO {\"server_id\":\"NCX2\",\"server_name\":\"NCX2\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19.8\",\"host\":\"127.0.0.1\",\"port\":36225,\"headers\":true,\"max_payload\":1048576,\"jetstream\":true,\"client_id\":4,\"client_ip\":\"127.0.0.1\"} \r\nPONG\r\nMSG _INBOX.probe.a5 1  107\r\n{\"error\":{\"code\":400,\"err_code\":10071,\"description\":\"wrong last sequence: 1\"},\"stream\":\"KV_agents\",\"seq\":0}\r\nMSG foo* 2 1\r\nx\r\n-ERR 'Maximum Payload Violation'\r\n");
    let ServerOp::Info(info) = out[0].as_ref().unwrap() else {
        panic!("{:?}", out[0])
    };
    assert_eq!(
        (info.version.as_str(), info.max_payload),
        ("2.9.10", 1_048_576)
    );
    assert_eq!(out[1], Ok(ServerOp::Pong));
    assert_eq!(msg(&out[2]).payload.len(), 107);
    assert_eq!(msg(&out[3]).subject, "foo*");
    let Ok(ServerOp::Err(e)) = &out[4] else {
        panic!("{:?}", out[4])
    };
    assert_eq!(
        (&e.kind, e.is_fatal()),
        (&ServerErrorKind::MaxPayloadViolation, true)
    );
}

#[test]
fn bare_lf_line_endings_are_accepted_for_control_lines() {
    assert_eq!(
        ops(b"PING\nMSG a 1 1\nx\r\n"),
        [ServerOp::Ping, plain("a", 1, None, b"x")]
    );
}

#[test]
fn control_line_limit_is_exact_and_split_invariant() {
    let limits = ParserLimits {
        max_control_line: 10,
        max_body: 100,
    };
    // "MSG a 1 12" is 10 bytes, plus CR makes 11: over the limit; without the CR it fits.
    assert_eq!(
        parse_chunks(limits, [&b"MSG a 1 12\r\n"[..]]),
        [Err(ParseError::ControlLineTooLong { max: 10 })]
    );
    assert_eq!(parse_chunks(limits, [&b"-ERR 'abc'\n"[..]]).len(), 1);
    assert!(parse_chunks(limits, [&b"-ERR 'abc'\n"[..]])[0].is_ok());
    let long = b"INFO {\"a\":1}\r\n";
    for at in 0..long.len() {
        let (a, b) = long.split_at(at);
        assert_eq!(
            parse_chunks(limits, [a, b]),
            [Err(ParseError::ControlLineTooLong { max: 10 })]
        );
    }
}

#[test]
fn oversized_line_is_bounded_and_poisons() {
    let mut parser = ServerOpParser::new();
    let junk = vec![b'A'; 4096];
    let mut fed = 0;
    let err = loop {
        parser.feed(&junk);
        fed += junk.len();
        match parser.next_op() {
            Ok(None) => assert!(parser.buffered_len() <= DEFAULT_MAX_CONTROL_LINE + junk.len()),
            Ok(Some(op)) => panic!("unexpected {op:?}"),
            Err(e) => break e,
        }
        assert!(fed < 1 << 20, "no error after {fed} bytes");
    };
    assert_eq!(
        err,
        ParseError::ControlLineTooLong {
            max: DEFAULT_MAX_CONTROL_LINE
        }
    );
    assert!(err.is_fatal() && parser.is_poisoned());
    assert_eq!(parser.buffered_len(), 0);
    parser.feed(b"PING\r\n");
    assert_eq!(parser.next_op(), Err(ParseError::Poisoned));
    assert_eq!(parser.buffered_len(), 0);
    parser.reset();
    parser.feed(b"PING\r\n");
    assert_eq!(parser.next_op(), Ok(Some(ServerOp::Ping)));
}

#[test]
fn invalid_lengths_are_fatal() {
    for (line, field, text) in [
        (&b"MSG a 1 x\r\n"[..], "payload length", "x"),
        (b"MSG a 1 -1\r\n", "payload length", "-1"),
        (b"MSG a 1 +1\r\n", "payload length", "+1"),
        (
            b"MSG a 1 18446744073709551616\r\n",
            "payload length",
            "18446744073709551616",
        ),
        (b"HMSG a 1 1x 12\r\n", "header length", "1x"),
        (b"HMSG a 1 12 0x10\r\n", "total length", "0x10"),
    ] {
        let op = if line.starts_with(b"H") {
            "HMSG"
        } else {
            "MSG"
        };
        let expected = ParseError::InvalidLength {
            op,
            field,
            text: text.into(),
        };
        assert_eq!(parse(line), [Err(expected.clone())], "{}", expected);
        assert!(expected.is_fatal());
    }
}

#[test]
fn missing_payload_terminator_is_fatal() {
    for input in [
        &b"MSG a 1 3\r\nabcd\r\nPING\r\n"[..],
        b"MSG a 1 3\r\nab\r\n\r\n",
        b"MSG a 1 0\r\nX\r\n",
    ] {
        assert_eq!(
            parse(input),
            [Err(ParseError::MissingPayloadTerminator { op: "MSG" })]
        );
    }
    assert_eq!(
        parse(b"HMSG a 1 12 12\r\nNATS/1.0\r\n\r\nzz"),
        [Err(ParseError::MissingPayloadTerminator { op: "HMSG" })]
    );
    // A discarded message is checked too.
    assert_eq!(
        parse(b"MSG \xff 1 1\r\nab\r\n"),
        [
            Err(ParseError::InvalidUtf8 {
                op: "MSG",
                field: "subject",
                sid: 1
            }),
            Err(ParseError::MissingPayloadTerminator { op: "MSG" })
        ]
    );
}

#[test]
fn body_over_the_limit_is_skipped_without_buffering() {
    let mut parser = ServerOpParser::with_limits(ParserLimits {
        max_control_line: 64,
        max_body: 1024,
    });
    parser.feed(b"MSG big 3 10000000\r\n");
    assert_eq!(
        parser.next_op(),
        Err(ParseError::BodyTooLarge {
            op: "MSG",
            sid: 3,
            len: 10_000_000,
            max: 1024
        })
    );
    let chunk = vec![0u8; 65536];
    let mut left = 10_000_000usize;
    while left > 0 {
        let n = left.min(chunk.len());
        parser.feed(&chunk[..n]);
        left -= n;
        assert_eq!(parser.next_op(), Ok(None));
        assert_eq!(parser.buffered_len(), 0, "skipped bytes must not be kept");
    }
    parser.feed(b"\r\nPING\r\n");
    assert_eq!(parser.next_op(), Ok(Some(ServerOp::Ping)));

    // A length beyond any memory is skipped the same way, also on 32-bit targets.
    parser.feed(b"MSG huge 4 18446744073709551615\r\n");
    assert!(matches!(
        parser.next_op(),
        Err(ParseError::BodyTooLarge { sid: 4, .. })
    ));
    assert!(!parser.is_poisoned());
}

#[test]
fn max_body_can_follow_info() {
    let mut parser = ServerOpParser::new();
    parser.set_max_body(4);
    assert_eq!(parser.limits().max_body, 4);
    parser.feed(b"MSG a 1 4\r\nabcd\r\nMSG a 1 5\r\nabcde\r\n");
    assert!(matches!(parser.next_op(), Ok(Some(ServerOp::Msg(_)))));
    assert!(matches!(
        parser.next_op(),
        Err(ParseError::BodyTooLarge { len: 5, max: 4, .. })
    ));
    assert_eq!(parser.next_op(), Ok(None));
}

#[test]
fn invalid_sid_info_and_headers_skip_one_item() {
    assert_eq!(
        parse(b"MSG a -1 1\r\nx\r\nPING\r\n"),
        [
            Err(ParseError::InvalidSid {
                op: "MSG",
                text: "-1".into()
            }),
            Ok(ServerOp::Ping)
        ]
    );
    let out = parse(b"INFO nope\r\nINFO {\"port\":\"x\"}\r\nINFO \xff\r\nPING\r\n");
    assert!(
        out[..3]
            .iter()
            .all(|o| matches!(o, Err(ParseError::InvalidInfo { .. }))),
        "{out:?}"
    );
    assert_eq!(out[3], Ok(ServerOp::Ping));
    assert_eq!(
        parse(b"HMSG a 9 13 13\r\nNATS/1.0 5x\r\n\r\nPING\r\n"),
        [
            Err(ParseError::InvalidHeaders {
                sid: 9,
                source: HeaderParseError::InvalidStatus { text: "5x".into() }
            }),
            Ok(ServerOp::Ping)
        ]
    );
}

#[test]
fn large_payload_spanning_reads_arrives_intact() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut input = format!(
        "HMSG big.one 1 r 22 {}\r\nNATS/1.0\r\nBar: Baz\r\n\r\n",
        22 + payload.len()
    )
    .into_bytes();
    input.extend_from_slice(&payload);
    input.extend_from_slice(b"\r\nPONG\r\n");
    for max_chunk in [1000, 65536, 7] {
        let out = parse_chunks(
            ParserLimits::default(),
            random_chunks(&input, max_chunk as u64, max_chunk),
        );
        let m = msg(&out[0]);
        assert_eq!(m.payload, payload);
        assert_eq!(m.headers.as_ref().and_then(|h| h.get("Bar")), Some("Baz"));
        assert_eq!(out[1], Ok(ServerOp::Pong));
    }
}

#[test]
fn error_messages_read_well() {
    assert_eq!(
        ParseError::ControlLineTooLong { max: 16384 }.to_string(),
        "control line longer than 16384 bytes"
    );
    assert_eq!(
        ParseError::ArgumentCount {
            op: "MSG",
            expected: "3 or 4",
            got: 2
        }
        .to_string(),
        "MSG: expected 3 or 4 fields, got 2"
    );
    assert_eq!(
        ParseError::Poisoned.to_string(),
        "parser stopped after a fatal error; reset it for a new connection"
    );
    assert_eq!(
        format!("{:?}", ServerOpParser::new()),
        "ServerOpParser { buffered: 0, state: \"line\", limits: ParserLimits { max_control_line: 16384, max_body: 67108864 }, poisoned: false }"
    );
}

#[test]
fn messages_survive_serialization_between_processes() {
    let out =
        parse(b"HMSG s.x 4 r.y 34 37\r\nNATS/1.0 404 Message Not Found\r\n\r\n\xff\x00\n\r\n");
    let original = msg(&out[0]).clone();
    let json = serde_json::to_string(&original).unwrap();
    let back: Msg = serde_json::from_str(&json).unwrap();
    assert_eq!(back, original);
    assert_eq!(back.status, Some(StatusCode::NOT_FOUND));
}

//! Encodes PUB/HPUB/SUB with arbitrary names and checks that whatever the encoders accept is
//! exactly one well-formed op: no input can smuggle a space, tab, CR or LF into a control line.
//! Accepted publishes are also turned into the MSG/HMSG the server would deliver and parsed
//! back, which must give the same subject, reply-to, headers and payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_fuzz::codec::{encode_hpub, encode_pub, encode_sub, Headers, ServerOp, ServerOpParser};

/// Cuts the input into NUL-separated fields (NUL is refused everywhere, so it is a safe cut).
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

fn no_blanks(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn deliver(wire: &[u8]) -> ServerOp {
    let mut parser = ServerOpParser::new();
    parser.feed(wire);
    let op = parser
        .next_op()
        .expect("delivered op parses")
        .expect("delivered op is complete");
    assert_eq!(parser.next_op(), Ok(None), "exactly one op");
    op
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data);
    let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
    let (subject, reply, queue, hname, hvalue) = (get(0), get(1), get(2), get(3), get(4));
    let reply = (!reply.is_empty()).then_some(reply);
    let payload = get(5).as_bytes();

    let mut out = Vec::new();
    if encode_pub(&mut out, subject, reply, payload).is_ok() {
        assert!(no_blanks(subject) && reply.map_or(true, no_blanks));
        let line_end = out.iter().position(|&b| b == b'\n').expect("line");
        assert_eq!(&out[line_end + 1..], [payload, b"\r\n"].concat());
        let msg = format!(
            "MSG {subject} 1 {} {}\r\n",
            reply.unwrap_or(""),
            payload.len()
        );
        let wire = [msg.as_bytes(), payload, b"\r\n"].concat();
        let ServerOp::Msg(m) = deliver(&wire) else {
            panic!("not a message")
        };
        assert_eq!(
            (m.subject.as_str(), m.reply_to.as_deref()),
            (subject, reply)
        );
        assert_eq!(m.payload, payload);
    } else {
        assert!(out.is_empty(), "nothing written on error");
    }

    out.clear();
    if encode_sub(&mut out, subject, (!queue.is_empty()).then_some(queue), 7).is_ok() {
        assert!(no_blanks(subject) && no_blanks(queue));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b" 7\r\n"));
    } else {
        assert!(out.is_empty(), "nothing written on error");
    }

    let mut headers = Headers::new();
    if headers.append(hname, hvalue).is_err() {
        return;
    }
    out.clear();
    if encode_hpub(&mut out, subject, reply, &headers, payload).is_ok() {
        // Turn the HPUB into the HMSG the server would deliver: same block, same sizes.
        let line_end = out.iter().position(|&b| b == b'\n').expect("line");
        let line = std::str::from_utf8(&out[..line_end - 1]).expect("ascii line");
        let sizes: Vec<&str> = line.rsplitn(3, ' ').take(2).collect();
        let msg = format!(
            "HMSG {subject} 1 {} {} {}\r\n",
            reply.unwrap_or(""),
            sizes[1],
            sizes[0]
        );
        let wire = [msg.as_bytes(), &out[line_end + 1..]].concat();
        let ServerOp::Msg(m) = deliver(&wire) else {
            panic!("not a message")
        };
        assert_eq!(m.payload, payload);
        let got = m.headers.expect("headers");
        // Values are trimmed on receipt; everything else must round-trip.
        assert_eq!(got.len(), 1);
        assert_eq!(got.get(hname), Some(hvalue.trim_matches([' ', '\t'])));
        assert_eq!(m.status, None);
    }
});

//! Feeds arbitrary bytes to `ServerOpParser` whole, byte by byte, and in pseudo-random chunks.
//! Checks: no panic, the same ops and errors however the input is split, and buffered bytes
//! staying within the limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_fuzz::codec::{ParseError, ParserLimits, ServerOp, ServerOpParser};

type Outcome = Result<ServerOp, ParseError>;

fn run<'a>(limits: ParserLimits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Outcome> {
    let mut parser = ServerOpParser::with_limits(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        loop {
            match parser.next_op() {
                Ok(None) => break,
                Ok(Some(op)) => out.push(Ok(op)),
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e));
                    if fatal {
                        assert!(parser.is_poisoned());
                        assert_eq!(parser.next_op(), Err(ParseError::Poisoned));
                        return out;
                    }
                }
            }
        }
        // Drained: what is left is part of one control line, or one body plus a CR.
        let bound = limits.max_control_line.max(limits.max_body + 1);
        assert!(
            parser.buffered_len() <= bound,
            "{} > {bound}",
            parser.buffered_len()
        );
    }
    out
}

/// Splits `input` into chunks whose sizes come from an xorshift generator seeded by `seed`.
fn chunks(input: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut rest = input;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % 97 + 1) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (head, input) = data.split_at(8);
    let seed = u64::from_le_bytes(head.try_into().unwrap_or_default());
    // Small limits so the fuzzer reaches the limit paths; derived from the seed so they vary.
    let limits = ParserLimits {
        max_control_line: 16 + (seed >> 8) as usize % 256,
        max_body: (seed >> 16) as usize % 512,
    };
    let whole = run(limits, [input]);
    assert_eq!(
        run(limits, chunks(input, seed)),
        whole,
        "random chunks changed the result"
    );
    assert_eq!(
        run(limits, input.chunks(1)),
        whole,
        "byte-by-byte feeding changed the result"
    );
});

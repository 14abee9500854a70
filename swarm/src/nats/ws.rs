//! Minimal WebSocket client framing (RFC 6455) for NATS over nats-server's `websocket` listener.
//!
//! Sans-IO like the NATS codec: the connection process writes what [`handshake_request`] and
//! [`encode_frame`] produce, and the reader process feeds received bytes to [`check_handshake`]
//! and then a [`FrameDecoder`]. NATS needs no message boundaries from WebSocket (frames do not
//! line up with protocol ops), so the decoder hands out the payload bytes of data frames as a
//! stream, whatever the fragmentation, and reports control frames (ping, pong, close) apart.
//!
//! Why our own framing and not `tungstenite`: tungstenite's `WebSocket` owns one stream for both
//! directions, while this client reads in one Lunatic process and writes from another; the part
//! we need (client handshake, masking, frame parsing) is small. No extensions are negotiated
//! (no permessage-deflate), so compressed frames are refused.

/// The GUID of RFC 6455 §1.3 used for `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest HTTP response head accepted during the handshake.
const MAX_HANDSHAKE: usize = 16 * 1024;

/// Frame opcodes.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text data frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary data frame (what NATS uses).
pub const OP_BINARY: u8 = 0x2;
/// Close control frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping control frame.
pub const OP_PING: u8 = 0x9;
/// Pong control frame.
pub const OP_PONG: u8 = 0xA;

/// Why the WebSocket stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The server did not switch protocols.
    #[error("WebSocket handshake refused: {0}")]
    Handshake(String),
    /// A frame breaks RFC 6455.
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// Payload bytes of data frames, in order.
    Data(Vec<u8>),
    /// A ping; answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The server closes: status code (if any) and reason.
    Close(Option<u16>, String),
}

/// The HTTP upgrade request for `host:port` and `path`, with `key` a base64 nonce of 16 bytes.
pub fn handshake_request(host: &str, port: u16, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: swarm-nats\r\n\r\n"
    )
    .into_bytes()
}

/// A fresh `Sec-WebSocket-Key` from 16 random bytes.
pub fn handshake_key(random: [u8; 16]) -> String {
    base64(&random)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
pub fn accept_for(key: &str) -> String {
    base64(&sha1(format!("{key}{GUID}").as_bytes()))
}

/// Checks the server's answer to the upgrade request. `Ok(None)`: the head is not complete yet;
/// `Ok(Some(n))`: accepted, and the first `n` bytes were the head (the rest is frames).
pub fn check_handshake(buf: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HANDSHAKE {
            return Err(WsError::Handshake("response head too long".into()));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "101" {
        return Err(WsError::Handshake(format!("server answered {status:?}")));
    }
    let mut accept = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("sec-websocket-accept") {
                accept = Some(value.trim().to_owned());
            }
        }
    }
    match accept {
        Some(a) if a == accept_for(key) => Ok(Some(end + 4)),
        Some(a) => Err(WsError::Handshake(format!(
            "wrong Sec-WebSocket-Accept {a:?}"
        ))),
        None => Err(WsError::Handshake("no Sec-WebSocket-Accept header".into())),
    }
}

/// Appends one final, masked client frame (clients must mask every frame).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | (opcode & 0x0F));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Incremental decoder of server frames. Feed bytes, then take events until `Ok(None)`.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Inside a fragmented data message (a data frame without FIN was seen).
    fragmented: bool,
    /// A fatal error was reported.
    failed: bool,
}

impl FrameDecoder {
    /// A decoder at the start of the frame stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next event, `Ok(None)` if more bytes are needed. Errors are fatal.
    pub fn next_event(&mut self) -> Result<Option<WsEvent>, WsError> {
        if self.failed {
            return Err(WsError::Protocol("stream already failed".into()));
        }
        let r = self.step();
        if r.is_err() {
            self.failed = true;
            self.buf = Vec::new();
        }
        r
    }

    fn step(&mut self) -> Result<Option<WsEvent>, WsError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err(WsError::Protocol(
                "reserved bits set (no extension was negotiated)".into(),
            ));
        }
        let opcode = b[0] & 0x0F;
        let masked = b[1] & 0x80 != 0;
        let mut at = 2;
        let len = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                at = 4;
                u16::from_be_bytes([b[2], b[3]]) as u64
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                at = 10;
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"))
            }
            n => n as u64,
        };
        if len > (64 << 20) {
            return Err(WsError::Protocol(format!(
                "frame of {len} bytes is too large"
            )));
        }
        let len = len as usize;
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return Ok(None);
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= m[i & 3];
            }
        }
        self.buf.drain(..at + len);
        if opcode >= 0x8 {
            if !fin || len > 125 {
                return Err(WsError::Protocol(
                    "control frame fragmented or longer than 125 bytes".into(),
                ));
            }
            return match opcode {
                OP_PING => Ok(Some(WsEvent::Ping(payload))),
                OP_PONG => Ok(Some(WsEvent::Pong)),
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    Ok(Some(WsEvent::Close(code, reason)))
                }
                _ => Err(WsError::Protocol(format!(
                    "unknown control opcode {opcode:#x}"
                ))),
            };
        }
        match opcode {
            OP_CONTINUATION if !self.fragmented => {
                return Err(WsError::Protocol(
                    "continuation frame without a message".into(),
                ))
            }
            OP_TEXT | OP_BINARY if self.fragmented => {
                return Err(WsError::Protocol(
                    "new data frame inside a fragmented message".into(),
                ))
            }
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
            _ => {
                return Err(WsError::Protocol(format!(
                    "unknown data opcode {opcode:#x}"
                )))
            }
        }
        self.fragmented = !fin;
        Ok(Some(WsEvent::Data(payload)))
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-1, only for the handshake's accept check (not for security).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked unless `mask` is given).
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            out.push(m | payload.len() as u8);
        } else if payload.len() <= 65535 {
            out.push(m | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            out.push(m | 127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        match mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn events(dec: &mut FrameDecoder) -> Vec<WsEvent> {
        let mut v = Vec::new();
        while let Some(e) = dec.next_event().unwrap() {
            v.push(e);
        }
        v
    }

    #[test]
    fn accept_matches_the_rfc_example_and_sha1_vectors() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn handshake_is_checked_and_split_reads_wait() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x01x";
        let head = resp.len() - 3;
        for cut in 0..head {
            assert_eq!(check_handshake(&resp[..cut], key), Ok(None));
        }
        assert_eq!(check_handshake(resp, key), Ok(Some(head)));
        let bad = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        assert!(check_handshake(bad, key)
            .unwrap_err()
            .to_string()
            .contains("400"));
        let wrong = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(check_handshake(wrong, key).is_err());
        let req = String::from_utf8(handshake_request("h", 8080, "/", key)).unwrap();
        assert!(req.starts_with("GET / HTTP/1.1\r\nHost: h:8080\r\n") && req.ends_with("\r\n\r\n"));
        assert_eq!(handshake_key([0; 16]).len(), 24);
    }

    #[test]
    fn client_frames_are_masked_with_every_length_form() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_BINARY, &payload, [1, 2, 3, 4]);
            assert_eq!(out[0], 0x82);
            assert!(out[1] & 0x80 != 0, "masked");
            // The decoder accepts masked frames too: round trip.
            let mut dec = FrameDecoder::new();
            dec.feed(&out);
            assert_eq!(events(&mut dec), vec![WsEvent::Data(payload)]);
        }
    }

    #[test]
    fn fragmented_frames_and_control_frames_in_between() {
        let mut bytes = frame(false, OP_BINARY, b"MSG a 1 ", None);
        bytes.extend(frame(true, OP_PING, b"hi", None));
        bytes.extend(frame(false, OP_CONTINUATION, b"2\r\n", Some([9, 8, 7, 6])));
        bytes.extend(frame(true, OP_CONTINUATION, b"ok\r\n", None));
        bytes.extend(frame(true, OP_CLOSE, b"\x03\xe8bye", None));
        // Every split point gives the same events.
        for cut in 0..=bytes.len() {
            let mut dec = FrameDecoder::new();
            dec.feed(&bytes[..cut]);
            let mut got = events(&mut dec);
            dec.feed(&bytes[cut..]);
            got.extend(events(&mut dec));
            let data: Vec<u8> = got
                .iter()
                .filter_map(|e| match e {
                    WsEvent::Data(d) => Some(d.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(data, b"MSG a 1 2\r\nok\r\n");
            assert!(got.contains(&WsEvent::Ping(b"hi".to_vec())));
            assert_eq!(got.last(), Some(&WsEvent::Close(Some(1000), "bye".into())));
        }
    }

    #[test]
    fn protocol_violations_are_fatal() {
        for bytes in [
            frame(true, OP_CONTINUATION, b"x", None),
            [
                frame(false, OP_BINARY, b"x", None),
                frame(true, OP_BINARY, b"y", None),
            ]
            .concat(),
            frame(false, OP_PING, b"x", None),
            frame(true, OP_PING, &[0; 126], None),
            frame(true, 0x3, b"x", None),
            vec![0xC2, 0x00],
        ] {
            let mut dec = FrameDecoder::new();
            dec.feed(&bytes);
            let mut result = Ok(Some(WsEvent::Pong));
            while let Ok(Some(_)) = result {
                result = dec.next_event();
            }
            assert!(result.is_err(), "{bytes:?}");
            assert!(dec.next_event().is_err());
        }
    }
}

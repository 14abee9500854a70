//! The reader process: reads the socket, unwraps WebSocket frames, parses server operations.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::connector::Stream;
use super::messages::{Command, Inbound};
use crate::nats::codec::{ParseError, ServerOp, ServerOpParser};
use crate::nats::ws;
use crate::runtime::host;
use crate::runtime::mailbox::process_exists;

/// Size of the reader's read buffer.
const READ_BUFFER: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
pub(super) struct ReaderArgs {
    pub(super) stream: Stream,
    pub(super) conn: u64,
    pub(super) generation: u64,
    /// `Some(key)` for WebSocket: check the upgrade answer first, then unwrap frames.
    pub(super) ws_key: Option<String>,
}

pub(super) fn reader_main(args: ReaderArgs) {
    let ReaderArgs {
        mut stream,
        conn,
        generation,
        ws_key,
    } = args;
    let send = |events: Vec<Inbound>| {
        let inbound = Command::Inbound { generation, events };
        if let Err(err) = host::send(conn, 0, &inbound) {
            eprintln!("swarm: nats: the reader could not hand on what it read: {err}");
        }
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let mut parser = ServerOpParser::new();
    let mut frames = ws_key.as_ref().map(|_| ws::FrameDecoder::new());
    let mut head: Vec<u8> = Vec::new();
    let mut upgraded = ws_key.is_none();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                send(vec![Inbound::Broken(
                    "the server closed the connection".into(),
                )]);
                return;
            }
            Ok(n) => n,
            Err(e) => {
                send(vec![Inbound::Broken(format!("read failed: {e}"))]);
                return;
            }
        };
        if !process_exists(conn) {
            return;
        }
        let mut events = Vec::new();
        let mut data = &buf[..n];
        if !upgraded {
            head.extend_from_slice(data);
            match ws::check_handshake(&head, ws_key.as_deref().unwrap_or_default()) {
                Ok(None) => continue,
                Ok(Some(len)) => {
                    upgraded = true;
                    let rest = head.split_off(len);
                    head = rest;
                    data = &head;
                }
                Err(e) => {
                    send(vec![Inbound::Broken(e.to_string())]);
                    return;
                }
            }
        }
        let mut broken = None;
        match &mut frames {
            Some(decoder) => {
                decoder.feed(data);
                loop {
                    match decoder.next_event() {
                        Ok(Some(ws::WsEvent::Data(bytes))) => parser.feed(&bytes),
                        Ok(Some(ws::WsEvent::Ping(p))) => events.push(Inbound::WsPing(p)),
                        Ok(Some(ws::WsEvent::Pong)) => {}
                        Ok(Some(ws::WsEvent::Close(code, reason))) => {
                            broken = Some(format!(
                                "WebSocket closed by the server ({code:?} {reason})"
                            ));
                            break;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(e.to_string());
                            break;
                        }
                    }
                }
                head.clear();
            }
            None => parser.feed(data),
        }
        loop {
            match parser.next_op() {
                Ok(Some(op)) => events.push(match op {
                    ServerOp::Msg(m) => Inbound::Msg(m),
                    ServerOp::Ping => Inbound::Ping,
                    ServerOp::Pong => Inbound::Pong,
                    ServerOp::Ok => Inbound::Ok,
                    ServerOp::Info(info) => Inbound::Info(info),
                    ServerOp::Err(e) => Inbound::Err(e),
                }),
                Ok(None) => break,
                Err(e) if e.is_fatal() => {
                    broken = Some(format!("protocol error: {e}"));
                    break;
                }
                Err(ParseError::InvalidInfo { reason }) => events.push(Inbound::BadInfo(reason)),
                // One bad line or message, skipped by the parser.
                Err(_) => continue,
            }
        }
        let done = broken.is_some();
        if let Some(reason) = broken {
            events.push(Inbound::Broken(reason));
        }
        if !events.is_empty() {
            send(events);
        }
        if done {
            return;
        }
    }
}

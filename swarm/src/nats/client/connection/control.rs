//! The server's control operations, as the reader hands them on: PING, PONG (which also end the
//! handshake and answer flushes and subscriptions), INFO (which the handshake answers with
//! CONNECT), and -ERR, fatal or a refused operation.

use super::super::connector::hello;
use super::super::messages::{read_id, Control, RouteOp, Which};
use super::{Conn, Link, PongWaiter, Stop};
use crate::nats::codec::{encode_pong, PermissionAction, ServerErrorKind, ServerInfo};
use crate::nats::options::Failure;

impl Conn {
    /// A control operation from the current reader.
    pub(super) fn control(&mut self, op: Control) {
        match op {
            Control::Ping => encode_pong(&mut self.out),
            Control::WsPing(payload) => {
                let salt = self.salt ^ 0xa5;
                if let Link::Up { stream, .. } | Link::Handshake { stream, .. } = &mut self.link {
                    let _ = stream.send_ws_pong(&payload, salt);
                }
            }
            Control::Pong => self.pong(),
            Control::Info(info) => self.info(&info),
            Control::BadInfo(reason) => {
                self.last_error = Some(format!("unreadable INFO: {reason}"))
            }
            Control::Err(error) => {
                self.last_error = Some(error.message.clone());
                if matches!(self.link, Link::Handshake { .. }) || error.is_fatal() {
                    // The server closes the socket after a fatal error, or should: the PING
                    // reaches the reader if it does not.
                    self.lost(format!("server error: {}", error.message), Stop::WithPing);
                    return;
                }
                if let ServerErrorKind::PermissionViolation {
                    action,
                    subject: Some(subject),
                    ..
                } = error.kind
                {
                    self.permission_violation(action, subject);
                }
            }
            Control::Broken(reason) => self.lost(reason, Stop::Quietly),
            Control::Stopped => {}
            Control::Received { messages, bytes } => {
                self.messages_in += messages;
                self.bytes_in += bytes;
            }
        }
    }

    pub(super) fn pong(&mut self) {
        if let Some(reader) = self.link.reader() {
            reader.pongs += 1;
            let pongs = reader.pongs;
            while reader
                .owed
                .front()
                .is_some_and(|(pings, _)| *pings <= pongs)
            {
                reader.owed.pop_front();
            }
        }
        if matches!(self.link, Link::Handshake { got_info: true, .. }) {
            self.up();
            return;
        }
        if let Some((_, waiter)) = self.pongs.pop_front() {
            match waiter {
                PongWaiter::Flush { ack, denied } => {
                    ack.send::<Result<(), Failure>>(&denied.map_or(Ok(()), Err))
                }
                PongWaiter::SubAck { ack, sid } => {
                    let result = if self.subs.contains_key(&sid) {
                        Ok(sid)
                    } else {
                        Err(Failure::Server(self.last_error.clone().unwrap_or_default()))
                    };
                    ack.send::<Result<u64, Failure>>(&result);
                }
                PongWaiter::KeepAlive => {}
            }
        }
    }

    /// The server's INFO: its limits, and during the handshake the answer (CONNECT + PING).
    pub(super) fn info(&mut self, info: &ServerInfo) {
        if info.max_payload > 0 {
            self.max_payload = info.max_payload;
        }
        if !matches!(
            self.link,
            Link::Handshake {
                got_info: false,
                ..
            }
        ) {
            return;
        }
        let hello = hello(&self.options, info.nonce.as_deref());
        let ws = self.is_ws();
        let salt = self.jitter();
        if let Link::Handshake { reader, .. } = &mut self.link {
            // Its PONG ends the handshake; the reader counts it like any other.
            reader.pings += 1;
        }
        self.send_notes();
        let failed = match (&mut self.link, hello) {
            (
                Link::Handshake {
                    stream, got_info, ..
                },
                Ok(hello),
            ) => {
                *got_info = true;
                stream
                    .send(ws, &hello, salt)
                    .err()
                    .map(|e| format!("writing CONNECT: {e}"))
            }
            (_, Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(reason) = failed {
            self.lost(reason, Stop::Quietly);
        }
    }

    /// The server refused one operation and keeps the connection (`-ERR 'Permissions Violation
    /// for ...'`, naming the subject). Whoever waits on that operation gets `PermissionDenied`
    /// now, instead of a timeout or a silent drop:
    /// - a refused SUB: the `subscribe` still waiting for its confirmation (the subscription is
    ///   forgotten). A refused inbox SUB fails every request now, and the next ones at once,
    ///   until the next connection subscribes the inbox again;
    /// - a refused PUB (the subject, or the reply subject): the requests to that subject (or
    ///   with that reply subject), and every `flush` waiting. The server answers in order, so
    ///   the refused PUB was sent before each waiting flush's PING.
    ///
    /// The reader holds the requests: it is told in a note, with a PING that makes it read the
    /// note (and every request noted before it) at once.
    pub(super) fn permission_violation(&mut self, action: PermissionAction, subject: String) {
        let denied = Failure::PermissionDenied {
            operation: action,
            subject: subject.clone(),
        };
        match action {
            PermissionAction::Subscribe if subject == format!("{}*", self.inbox_prefix) => {
                self.fail_requests(Which::All, denied);
                self.inbox_denied = Some(subject);
            }
            PermissionAction::Subscribe => {
                let mut refused = Vec::new();
                for (_, waiter) in self.pongs.iter_mut() {
                    let PongWaiter::SubAck { ack, sid } = *waiter else {
                        continue;
                    };
                    if self.subs.get(&sid).is_some_and(|s| s.subject == subject) {
                        refused.push(sid);
                        ack.send::<Result<u64, Failure>>(&Err(denied.clone()));
                        // Its PONG still comes; nobody waits for it any more.
                        *waiter = PongWaiter::KeepAlive;
                    }
                }
                for sid in refused {
                    // The server has no such subscription: nothing to UNSUB.
                    self.subs.remove(&sid);
                    self.note(RouteOp::Unsubscribe { sid });
                }
            }
            PermissionAction::Publish | PermissionAction::Reply => {
                let which = match action {
                    PermissionAction::Reply => {
                        let id = subject
                            .strip_prefix(self.inbox_prefix.as_str())
                            .and_then(read_id);
                        id.map(Which::Id)
                    }
                    _ => Some(Which::Subject(subject)),
                };
                if let Some(which) = which {
                    self.fail_requests(which, denied.clone());
                }
                for (_, waiter) in self.pongs.iter_mut() {
                    if let PongWaiter::Flush {
                        denied: slot @ None,
                        ..
                    } = waiter
                    {
                        *slot = Some(denied.clone());
                    }
                }
            }
        }
    }

    pub(super) fn fail_requests(&mut self, which: Which, failure: Failure) {
        if self.link.reader().is_some() {
            self.notes.push(RouteOp::Fail { which, failure });
            self.queue_ping(PongWaiter::KeepAlive);
        }
    }
}

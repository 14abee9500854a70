//! The socket's life: connecting (one server after the other, with backoff), the end of the
//! handshake, losing a connection, the readers of ended connections until they have stopped, and
//! the end of the connection process.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lunatic::Tag;

use super::super::connector::dial;
use super::super::messages::{Command, Connected, Control, RouteOp};
use super::super::reader::{reader_main, ReaderArgs};
use super::super::routing::INBOX_SID;
use super::{
    receive, send_note, Conn, Event, Link, Owed, PongWaiter, Reader, Stop, Stopping, STOP_GRACE,
};
use crate::nats::codec::{encode_ping, encode_sub};
use crate::nats::options::Failure;
use crate::runtime::host;
use crate::runtime::process::spawn_linked;

impl Conn {
    /// Opens a socket to the next server and starts its reader; the handshake continues as
    /// the reader reports INFO and PONG.
    pub(super) fn attempt(&mut self) {
        if let Some(max) = self.options.max_reconnects {
            if self.connect_reply.is_none() && self.failures > max {
                self.last_error = Some(format!("gave up after {max} reconnect attempts"));
                self.closing = true;
                return;
            }
        }
        let addr = self.options.servers[self.server % self.options.servers.len()].clone();
        self.generation += 1;
        let timeout = self.options.connect_timeout;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.jitter().to_le_bytes());
        nonce[8..].copy_from_slice(&self.jitter().to_le_bytes());
        let dialed = match dial(&addr, self.options.tls_ca.as_deref(), timeout, nonce) {
            Ok(dialed) => dialed,
            Err(reason) => {
                self.failed_attempt(reason);
                return;
            }
        };
        let args = ReaderArgs {
            stream: dialed.stream.clone(),
            conn: self.this,
            generation: self.generation,
            ws_key: dialed.ws_key,
            inbox_prefix: self.inbox_prefix.clone(),
            subs: self.subs.iter().map(|(sid, s)| (*sid, s.deliver)).collect(),
            next_sid: self.next_sid,
            next_request: self.next_request,
        };
        // A reader the node has no room for is a failed attempt like any other: retried with
        // backoff, never the end of the connection process.
        let link = Tag::new();
        let pid = match spawn_linked(args, reader_main, link) {
            Ok(pid) => pid,
            Err(err) => {
                self.failed_attempt(format!("cannot start the reader: {err}"));
                return;
            }
        };
        self.link = Link::Handshake {
            stream: dialed.stream,
            reader: Reader {
                pid,
                link: link.id(),
                generation: self.generation,
                notes: 0,
                pings: 0,
                pings_noted: 0,
                pongs: 0,
                owed: VecDeque::new(),
            },
            deadline: Instant::now() + timeout,
            got_info: false,
        };
    }

    pub(super) fn failed_attempt(&mut self, reason: String) {
        let server = self.server_name();
        self.last_error = Some(format!("{server}: {reason}"));
        self.server += 1;
        self.failures += 1;
        if let Some(reply) = self.connect_reply {
            self.initial_attempts += 1;
            if self.initial_attempts >= self.options.servers.len() {
                reply.send::<Result<Connected, Failure>>(&Err(Failure::Connect { server, reason }));
                self.connect_reply = None;
                self.closing = true;
                return;
            }
        }
        let jitter = self.jitter();
        let delay = self
            .options
            .backoff
            .delay(self.failures.saturating_sub(1), jitter);
        let delay = if self.connect_reply.is_some() {
            Duration::ZERO
        } else {
            delay
        };
        self.link = Link::Down {
            retry_at: Instant::now() + delay,
        };
    }

    /// Marks the link down and tells its reader to stop (it fails the requests it routes with
    /// `failure`), and answers everyone waiting on a PONG; subscriptions waiting for their
    /// confirmation are confirmed when they are kept for the next connection
    /// (`keep_subscriptions`), failed otherwise.
    pub(super) fn drop_link(&mut self, failure: Failure, keep_subscriptions: bool, stop: Stop) {
        let link = std::mem::replace(
            &mut self.link,
            Link::Down {
                retry_at: Instant::now(),
            },
        );
        let ops = std::mem::take(&mut self.notes);
        if let Link::Handshake {
            mut stream,
            mut reader,
            ..
        }
        | Link::Up {
            mut stream,
            mut reader,
        } = link
        {
            if stop != Stop::Dead {
                let mut ops = ops;
                ops.push(RouteOp::Stop {
                    failure: failure.clone(),
                });
                if stop == Stop::WithPing {
                    reader.pings += 1;
                }
                send_note(&mut reader, ops);
                if stop == Stop::WithPing {
                    let mut ping = Vec::new();
                    encode_ping(&mut ping);
                    let salt = self.jitter();
                    // Best effort: if it cannot be written, the reader is killed after the grace.
                    let _ = stream.send(self.is_ws(), &ping, salt);
                }
                self.stopping.push(Stopping {
                    reader,
                    deadline: Instant::now() + STOP_GRACE,
                });
            } else {
                pay(reader.owed);
            }
        }
        for (_, waiter) in self.pongs.drain(..) {
            match waiter {
                PongWaiter::Flush { ack, .. } => {
                    ack.send::<Result<(), Failure>>(&Err(failure.clone()))
                }
                PongWaiter::SubAck { ack, sid } if keep_subscriptions => {
                    ack.send::<Result<u64, Failure>>(&Ok(sid))
                }
                PongWaiter::SubAck { ack, .. } => {
                    ack.send::<Result<u64, Failure>>(&Err(failure.clone()))
                }
                PongWaiter::KeepAlive => {}
            }
        }
    }

    /// The connection is gone (or the attempt failed): fail what waits on it, plan a retry.
    pub(super) fn lost(&mut self, reason: String, stop: Stop) {
        let was_up = matches!(self.link, Link::Up { .. });
        // Subscriptions stay: they are subscribed again on the next connection.
        self.drop_link(Failure::Disconnected, true, stop);
        if was_up {
            crate::log::warn(
                "nats.disconnected",
                &[("server", &self.server_name()), ("reason", &reason)],
                "the NATS connection was lost; reconnecting",
            );
            // What was buffered may be half written: drop it rather than corrupt the next stream.
            if !self.out.is_empty() {
                self.dropped += 1;
                self.out.clear();
            }
            self.last_error = Some(format!("{}: {reason}", self.server_name()));
            self.server += 1;
            self.failures = 0;
            self.link = Link::Down {
                retry_at: Instant::now(),
            };
        } else {
            self.failed_attempt(reason);
        }
    }

    /// A reader ended abnormally (its link died): the current one means a lost connection; a
    /// stopping one will not confirm.
    pub(super) fn reader_died(&mut self, link: i64) {
        if self.link.reader().is_some_and(|r| r.link == link) {
            self.lost("the reader process failed".into(), Stop::Dead);
        }
        if let Some(at) = self.stopping.iter().position(|s| s.reader.link == link) {
            let stopped = self.stopping.swap_remove(at);
            pay(stopped.reader.owed);
            self.release_held();
        }
    }

    /// A stopping reader confirmed: it delivers nothing more.
    pub(super) fn reader_stopped(&mut self, generation: u64) {
        if let Some(at) = self
            .stopping
            .iter()
            .position(|s| s.reader.generation == generation)
        {
            self.stopping.swap_remove(at);
            self.release_held();
        }
    }

    /// Kills the stopping readers that did not confirm in time, answering what they owed.
    pub(super) fn kill_late_readers(&mut self, now: Instant) {
        let (late, waiting): (Vec<Stopping>, Vec<Stopping>) = std::mem::take(&mut self.stopping)
            .into_iter()
            .partition(|s| now >= s.deadline);
        self.stopping = waiting;
        if late.is_empty() {
            return;
        }
        for stopping in late {
            host::kill(stopping.reader.pid);
            pay(stopping.reader.owed);
        }
        self.release_held();
    }

    /// Gives the held acknowledgements once no stopping reader is left.
    pub(super) fn release_held(&mut self) {
        if self.stopping.is_empty() {
            for ack in std::mem::take(&mut self.held) {
                self.ack_after_readers(ack);
            }
        }
    }

    /// The handshake completed: subscribe the inbox and every subscription again, then send
    /// what was buffered.
    pub(super) fn up(&mut self) {
        let Link::Handshake { stream, reader, .. } = std::mem::replace(
            &mut self.link,
            Link::Down {
                retry_at: Instant::now(),
            },
        ) else {
            return;
        };
        self.link = Link::Up { stream, reader };
        // The inbox is subscribed again below; the server says again if it refuses it.
        self.inbox_denied = None;
        let mut head = Vec::new();
        let inbox = format!("{}*", self.inbox_prefix);
        let _ = encode_sub(&mut head, &inbox, None, INBOX_SID);
        for (sid, sub) in &self.subs {
            let _ = encode_sub(&mut head, &sub.subject, sub.queue.as_deref(), *sid);
        }
        head.append(&mut self.out);
        self.out = head;
        self.failures = 0;
        self.initial_attempts = 0;
        self.next_ping = Instant::now() + self.options.ping_interval;
        match self.connect_reply.take() {
            Some(reply) => reply.send::<Result<Connected, Failure>>(&Ok(Connected {
                max_payload: self.max_payload,
                inbox_prefix: self.inbox_prefix.clone(),
            })),
            None => {
                self.reconnects += 1;
                crate::log::info(
                    "nats.reconnected",
                    &[
                        ("server", &self.server_name()),
                        ("reconnects", &self.reconnects.to_string()),
                    ],
                    "the NATS connection is back; subscriptions renewed",
                );
            }
        }
    }

    /// Writes what is left, stops the reader (the requests it routes fail with `Closed`) and
    /// waits, boundedly, for it to confirm, so those requesters hear it before this process ends.
    pub(super) fn shutdown(&mut self) {
        self.write_out();
        self.drop_link(Failure::Closed, false, Stop::WithPing);
        let deadline = Instant::now() + STOP_GRACE.min(self.options.op_timeout);
        while !self.stopping.is_empty() && Instant::now() < deadline {
            match receive() {
                Event::Command(Command::Control { generation, ops })
                    if ops.iter().any(|op| matches!(op, Control::Stopped)) =>
                {
                    self.reader_stopped(generation);
                }
                Event::Command(Command::Tick) => self.schedule_tick(),
                Event::LinkDied(tag) => self.reader_died(tag),
                // Callers waiting on anything else see this process end.
                _ => {}
            }
        }
        self.kill_late_readers(Instant::now() + STOP_GRACE);
        for ack in std::mem::take(&mut self.held) {
            ack.send(&());
        }
        if let Some(ack) = self.close_ack.take() {
            ack.send(&());
        }
    }
}

/// Gives the answers a reader owed and will not give (it ended without reading its notes).
pub(super) fn pay(owed: VecDeque<(u64, Owed)>) {
    for (_, owed) in owed {
        match owed {
            Owed::Ack(ack) => ack.send(&()),
            Owed::Status(ack, status) => ack.send(&status),
        }
    }
}

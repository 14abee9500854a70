//! The reader's routing table: which process gets a message, decided in the reader itself, so a
//! message goes from the socket to its subscriber or requester in one Lunatic hop.
//!
//! The connection process owns the subscriptions (it subscribes them again after a reconnect)
//! and numbers the requests; it tells the reader of each change in a [`Note`](super::messages::Note)
//! sent *before* the SUB or PUB is written. The reader applies notes lazily, only when it needs
//! them: subscription ids and request numbers only grow, so a message whose id is at or past the
//! highest one known ([`Routes::is_unknown`]) has its note waiting in the reader's mailbox, and a
//! message below it whose route is gone was for a subscription or request that ended (dropped).
//!
//! Nothing here talks to the host: routing produces [`Out`]s, which the reader sends.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::messages::{read_id, Addr, Delivery, Reply, RouteOp, Which};
use super::ClientStatus;
use crate::nats::codec::Msg;
use crate::nats::options::Failure;

/// The sid of the connection's muxed request inbox `_INBOX.<random>.*`.
pub(super) const INBOX_SID: u64 = 1;

/// A map keyed by this connection's own ids (sids, request numbers), looked up for every
/// message: a multiplicative hash instead of SipHash, whose protection against chosen keys is not
/// needed for keys the client makes itself (measured: SipHash was ~0.8% of all CPU at 256
/// requests in flight).
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: spreads consecutive ids over the table's buckets.
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Something the reader sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Out {
    Deliver(Addr, Delivery),
    Reply(Addr, Reply),
    Ack(Addr),
    Status(Addr, ClientStatus),
}

/// Where a subscription's messages go, and the number of its next delivery.
struct Route {
    deliver: Addr,
    seq: u64,
}

/// A request waiting for its reply.
struct Pending {
    reply: Addr,
    subject: String,
}

/// The table of one reader (one connection).
pub(super) struct Routes {
    generation: u64,
    inbox_prefix: String,
    subs: IdMap<Route>,
    /// Every sid below this one has been noted (and may have been removed since).
    next_sid: u64,
    requests: IdMap<Pending>,
    /// Every request number below this one has been noted.
    next_request: u64,
    /// The server refused the inbox subscription: requests cannot get replies on this connection.
    inbox_denied: Option<Failure>,
    /// The messages of the current read, per subscription in order of first arrival: each
    /// becomes one [`Delivery`] (one Lunatic message, however many NATS messages it holds).
    batches: Vec<(u64, Vec<Msg>)>,
    batch_of: IdMap<usize>,
}

impl Routes {
    /// The table of a new reader: the subscriptions of the connection as they are when it starts
    /// (every sid below `next_sid`), and no requests (numbers below `next_request` belong to
    /// earlier connections).
    pub(super) fn new(
        generation: u64,
        inbox_prefix: String,
        subs: impl IntoIterator<Item = (u64, Addr)>,
        next_sid: u64,
        next_request: u64,
    ) -> Routes {
        Routes {
            generation,
            inbox_prefix,
            subs: subs
                .into_iter()
                .map(|(sid, deliver)| (sid, Route { deliver, seq: 0 }))
                .collect(),
            next_sid,
            requests: IdMap::default(),
            next_request,
            inbox_denied: None,
            batches: Vec::new(),
            batch_of: IdMap::default(),
        }
    }

    /// Whether `msg` belongs to a subscription or request whose note the reader has not applied
    /// yet (then it is in the reader's mailbox: the note was sent before the SUB or PUB).
    pub(super) fn is_unknown(&self, msg: &Msg) -> bool {
        if msg.sid == INBOX_SID {
            self.request_id(msg)
                .is_some_and(|id| id >= self.next_request)
        } else {
            msg.sid >= self.next_sid
        }
    }

    fn request_id(&self, msg: &Msg) -> Option<u64> {
        msg.subject
            .strip_prefix(self.inbox_prefix.as_str())
            .and_then(read_id)
    }

    /// Routes one message: a reply goes out at once, a subscription's message joins its batch
    /// (sent by [`Routes::flush`]). Messages without a route (ended subscriptions, cancelled or
    /// answered requests) are dropped.
    pub(super) fn route(&mut self, msg: Msg, out: &mut Vec<Out>) {
        if msg.sid == INBOX_SID {
            let pending = self
                .request_id(&msg)
                .and_then(|id| self.requests.remove(&id));
            if let Some(pending) = pending {
                out.push(Out::Reply(pending.reply, Reply::Msg(msg)));
            }
            return;
        }
        if !self.subs.contains_key(&msg.sid) {
            return;
        }
        match self.batch_of.get(&msg.sid) {
            Some(&index) => self.batches[index].1.push(msg),
            None => {
                self.batch_of.insert(msg.sid, self.batches.len());
                self.batches.push((msg.sid, vec![msg]));
            }
        }
    }

    /// Turns the batches into deliveries, numbered per subscription.
    pub(super) fn flush(&mut self, out: &mut Vec<Out>) {
        self.batch_of.clear();
        for (sid, msgs) in self.batches.drain(..) {
            // Routes change only after a flush (see `apply`), so a batched sid has its route.
            if let Some(route) = self.subs.get_mut(&sid) {
                out.push(Out::Deliver(
                    route.deliver,
                    Delivery {
                        generation: self.generation,
                        seq: route.seq,
                        msgs,
                    },
                ));
                route.seq += 1;
            }
        }
    }

    /// Applies one change. Everything routed before it goes out first, so an acknowledgement
    /// comes after every delivery it covers. `Some(failure)` for [`RouteOp::Stop`]: the waiting
    /// requests have been failed, and the reader ends.
    pub(super) fn apply(&mut self, op: RouteOp, out: &mut Vec<Out>) -> Option<Failure> {
        self.flush(out);
        match op {
            RouteOp::Subscribe { sid, deliver } => {
                self.subs.insert(sid, Route { deliver, seq: 0 });
                self.next_sid = self.next_sid.max(sid + 1);
            }
            RouteOp::Unsubscribe { sid } => {
                self.subs.remove(&sid);
            }
            RouteOp::Request { id, reply, subject } => {
                self.next_request = self.next_request.max(id + 1);
                match &self.inbox_denied {
                    Some(failure) => out.push(Out::Reply(reply, Reply::Failed(failure.clone()))),
                    None => {
                        self.requests.insert(id, Pending { reply, subject });
                    }
                }
            }
            RouteOp::Cancel { reply } => self.requests.retain(|_, p| p.reply != reply),
            RouteOp::Fail { which, failure } => {
                let failed: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(id, p)| match &which {
                        Which::All => true,
                        Which::Subject(subject) => p.subject == *subject,
                        Which::Id(failed) => *id == failed,
                    })
                    .map(|(id, _)| *id)
                    .collect();
                self.fail(failed, &failure, out);
                if which == Which::All {
                    self.inbox_denied = Some(failure);
                }
            }
            RouteOp::Ack(ack) => out.push(Out::Ack(ack)),
            RouteOp::Status { mut status, ack } => {
                status.pending_requests = self.requests.len();
                out.push(Out::Status(ack, status));
            }
            RouteOp::Stop { failure } => {
                let all: Vec<u64> = self.requests.keys().copied().collect();
                self.fail(all, &failure, out);
                self.subs.clear();
                return Some(failure);
            }
        }
        None
    }

    fn fail(&mut self, ids: Vec<u64>, failure: &Failure, out: &mut Vec<Out>) {
        for id in ids {
            if let Some(pending) = self.requests.remove(&id) {
                out.push(Out::Reply(pending.reply, Reply::Failed(failure.clone())));
            }
        }
    }

    /// Forgets the requests of processes that have ended (`alive` says which are running).
    pub(super) fn sweep(&mut self, alive: impl Fn(u64) -> bool) {
        self.requests.retain(|_, p| alive(p.reply.process));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::codec::PermissionAction;

    const PREFIX: &str = "_INBOX.abc.";

    fn addr(process: u64, tag: i64) -> Addr {
        Addr {
            node: 0,
            process,
            tag,
        }
    }

    fn msg(sid: u64, subject: &str, payload: &str) -> Msg {
        Msg {
            subject: subject.into(),
            sid,
            reply_to: None,
            headers: None,
            status: None,
            description: None,
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn reply_msg(id: u64, payload: &str) -> Msg {
        msg(INBOX_SID, &format!("{PREFIX}{id:016x}"), payload)
    }

    fn payloads(delivery: &Delivery) -> Vec<&[u8]> {
        delivery.msgs.iter().map(|m| m.payload.as_slice()).collect()
    }

    #[test]
    fn one_delivery_per_subscription_per_read_numbered_in_order() {
        let (a, b) = (addr(10, 1), addr(11, 2));
        let mut routes = Routes::new(3, PREFIX.into(), [(2, a), (3, b)], 4, 0);
        let mut out = Vec::new();
        for (sid, p) in [(2, "a1"), (3, "b1"), (2, "a2"), (9, "none"), (2, "a3")] {
            let m = msg(sid, "s", p);
            if !routes.is_unknown(&m) {
                routes.route(m, &mut out);
            }
        }
        routes.flush(&mut out);
        routes.route(msg(2, "s", "a4"), &mut out);
        routes.flush(&mut out);
        let deliveries: Vec<(Addr, u64, Vec<&[u8]>)> = out
            .iter()
            .map(|o| match o {
                Out::Deliver(to, d) => {
                    assert_eq!(d.generation, 3);
                    (*to, d.seq, payloads(d))
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            deliveries,
            [
                (a, 0, vec![&b"a1"[..], b"a2", b"a3"]),
                (b, 0, vec![&b"b1"[..]]),
                (a, 1, vec![&b"a4"[..]]),
            ]
        );
    }

    #[test]
    fn ids_past_the_known_ones_wait_for_their_note_and_ended_ones_are_dropped() {
        let mut routes = Routes::new(1, PREFIX.into(), [], 2, 5);
        let mut out = Vec::new();
        // A subscription made after the reader started: unknown until its note is applied.
        assert!(routes.is_unknown(&msg(2, "s", "x")));
        assert!(routes.is_unknown(&reply_msg(5, "r")));
        // Replies for requests of an earlier connection, and foreign inbox subjects: dropped.
        assert!(!routes.is_unknown(&reply_msg(4, "old")));
        assert!(!routes.is_unknown(&msg(INBOX_SID, "_INBOX.other.1", "x")));
        let me = addr(20, 7);
        routes.apply(
            RouteOp::Subscribe {
                sid: 2,
                deliver: me,
            },
            &mut out,
        );
        routes.apply(
            RouteOp::Request {
                id: 5,
                reply: me,
                subject: "svc".into(),
            },
            &mut out,
        );
        assert!(!routes.is_unknown(&msg(2, "s", "x")));
        assert!(!routes.is_unknown(&reply_msg(5, "r")));
        routes.route(reply_msg(5, "r"), &mut out);
        routes.route(reply_msg(5, "again"), &mut out);
        routes.apply(RouteOp::Unsubscribe { sid: 2 }, &mut out);
        assert!(!routes.is_unknown(&msg(2, "s", "late")));
        routes.route(msg(2, "s", "late"), &mut out);
        routes.flush(&mut out);
        assert_eq!(out, [Out::Reply(me, Reply::Msg(reply_msg(5, "r")))]);
    }

    #[test]
    fn an_acknowledgement_follows_the_deliveries_it_covers() {
        let me = addr(20, 7);
        let mut routes = Routes::new(1, PREFIX.into(), [(2, me)], 3, 0);
        let mut out = Vec::new();
        routes.route(msg(2, "s", "before"), &mut out);
        routes.apply(RouteOp::Unsubscribe { sid: 2 }, &mut out);
        routes.apply(RouteOp::Ack(addr(20, 8)), &mut out);
        assert!(matches!(&out[0], Out::Deliver(to, d) if *to == me && payloads(d) == [b"before"]));
        assert_eq!(out[1], Out::Ack(addr(20, 8)));
    }

    #[test]
    fn failures_cancels_status_and_stop() {
        let mut routes = Routes::new(1, PREFIX.into(), [], 2, 0);
        let mut out = Vec::new();
        let (r1, r2, r3) = (addr(1, 1), addr(2, 2), addr(3, 3));
        for (id, reply, subject) in [(0, r1, "a"), (1, r2, "b"), (2, r3, "b")] {
            let subject = subject.into();
            routes.apply(RouteOp::Request { id, reply, subject }, &mut out);
        }
        let denied = Failure::PermissionDenied {
            operation: PermissionAction::Publish,
            subject: "b".into(),
        };
        routes.apply(
            RouteOp::Fail {
                which: Which::Subject("b".into()),
                failure: denied.clone(),
            },
            &mut out,
        );
        let mut failed: Vec<Addr> = out
            .drain(..)
            .map(|o| match o {
                Out::Reply(to, Reply::Failed(f)) if f == denied => to,
                other => panic!("{other:?}"),
            })
            .collect();
        failed.sort_by_key(|a| a.process);
        assert_eq!(failed, [r2, r3]);
        let status = ClientStatus {
            state: super::super::ConnState::Connected,
            server: "s".into(),
            max_payload: 1,
            reconnects: 0,
            dropped: 0,
            subscriptions: 0,
            pending_requests: 0,
            messages_out: 0,
            bytes_out: 0,
            messages_in: 0,
            bytes_in: 0,
            last_error: None,
        };
        let ack = addr(9, 9);
        routes.apply(
            RouteOp::Status {
                status: status.clone(),
                ack,
            },
            &mut out,
        );
        let expected = ClientStatus {
            pending_requests: 1,
            ..status
        };
        assert_eq!(out.pop(), Some(Out::Status(ack, expected)));
        routes.apply(RouteOp::Cancel { reply: r1 }, &mut out);
        routes.route(reply_msg(0, "late"), &mut out);
        assert!(out.is_empty());
        routes.apply(
            RouteOp::Request {
                id: 3,
                reply: r1,
                subject: "a".into(),
            },
            &mut out,
        );
        let stop = routes.apply(
            RouteOp::Stop {
                failure: Failure::Disconnected,
            },
            &mut out,
        );
        assert_eq!(stop, Some(Failure::Disconnected));
        assert_eq!(out, [Out::Reply(r1, Reply::Failed(Failure::Disconnected))]);
    }

    #[test]
    fn a_refused_inbox_fails_every_request_now_and_later() {
        let mut routes = Routes::new(1, PREFIX.into(), [], 2, 0);
        let mut out = Vec::new();
        let me = addr(1, 1);
        let request = |id| RouteOp::Request {
            id,
            reply: me,
            subject: "a".into(),
        };
        routes.apply(request(0), &mut out);
        let denied = Failure::PermissionDenied {
            operation: PermissionAction::Subscribe,
            subject: format!("{PREFIX}*"),
        };
        let which = Which::All;
        let failure = denied.clone();
        routes.apply(RouteOp::Fail { which, failure }, &mut out);
        routes.apply(request(1), &mut out);
        let failed = Out::Reply(me, Reply::Failed(denied));
        assert_eq!(out, [failed.clone(), failed]);
    }
}

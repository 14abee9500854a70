//! [`Subscription`]: a subscription's messages, taken from the subscriber's own mailbox in order.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::messages::{drain_tag, receive_now, wait_tagged, Addr, Command, Delivery, WaitFailed};
use super::NatsClient;
use crate::nats::codec::Msg;
use crate::nats::options::NatsError;

/// A subscription; its messages arrive in the mailbox of the process that subscribed, under a
/// tag of its own, so only that process can receive them. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    client: NatsClient,
    sid: u64,
    tag: i64,
    subject: String,
    active: bool,
    /// Sequence number of the next message to hand out.
    expected: Cell<u64>,
    /// Messages that arrived before an earlier one (see `take`).
    early: RefCell<BTreeMap<u64, Msg>>,
}

impl Subscription {
    pub(super) fn new(client: NatsClient, sid: u64, tag: i64, subject: &str) -> Subscription {
        Subscription {
            client,
            sid,
            tag,
            subject: subject.to_owned(),
            active: true,
            expected: Cell::new(0),
            early: RefCell::new(BTreeMap::new()),
        }
    }

    /// The subscription id on the connection.
    pub fn sid(&self) -> u64 {
        self.sid
    }

    /// The subject subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Waits for the next message; `None` once the client is closed. The subscription survives
    /// reconnects (it is subscribed again on the new connection).
    pub fn next(&self) -> Option<Msg> {
        self.take(None, false).ok()
    }

    /// Waits up to `timeout` for the next message: [`NatsError::TimedOut`] if none came,
    /// [`NatsError::Closed`] once the client is closed.
    pub fn next_timeout(&self, timeout: Duration) -> Result<Msg, NatsError> {
        self.take(Some(timeout), false).map_err(|e| match e {
            WaitFailed::Gone => NatsError::Closed,
            WaitFailed::TimedOut => NatsError::TimedOut {
                what: format!("next message on {:?}", self.subject),
                timeout,
            },
        })
    }

    /// Takes a message already in the mailbox, without waiting.
    pub fn try_next(&self) -> Option<Msg> {
        self.take(None, true).ok()
    }

    /// The next message in order. The connection process numbers each subscription's messages
    /// and sends them in order, but Lunatic 0.13 may move one message to the back of the
    /// mailbox when it arrives just as a timed receive gives up (it keeps the message, out of
    /// order). When a number is skipped, the missing one can only be further back in the
    /// mailbox: take everything queued, then hand out in order.
    fn take(&self, timeout: Option<Duration>, nowait: bool) -> Result<Msg, WaitFailed> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let expected = self.expected.get();
            if let Some(msg) = self.early.borrow_mut().remove(&expected) {
                self.expected.set(expected + 1);
                return Ok(msg);
            }
            let delivery = if nowait {
                receive_now::<Delivery>(self.tag).ok_or(WaitFailed::TimedOut)?
            } else {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                wait_tagged::<Delivery>(self.tag, self.client.conn, left)?
            };
            if delivery.seq == expected {
                self.expected.set(expected + 1);
                return Ok(delivery.msg);
            }
            if delivery.seq < expected {
                return Ok(delivery.msg);
            }
            let mut early = self.early.borrow_mut();
            early.insert(delivery.seq, delivery.msg);
            while let Some(d) = receive_now::<Delivery>(self.tag) {
                early.insert(d.seq, d.msg);
            }
            if !early.contains_key(&expected) {
                // Not there after all (cannot happen): go on with the oldest we have.
                if let Some(first) = early.keys().next() {
                    self.expected.set(*first);
                }
            }
        }
    }

    /// Stops the subscription; waits until the connection process has forgotten it, then
    /// drops messages that were already delivered.
    pub fn unsubscribe(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if !self.active {
            return;
        }
        self.active = false;
        let ack = Addr::fresh();
        if self
            .client
            .command(Command::Unsubscribe {
                sid: self.sid,
                ack: Some(ack),
            })
            .is_ok()
        {
            let _ = wait_tagged::<()>(ack.tag, self.client.conn, Some(self.client.op_timeout));
        }
        drain_tag(self.tag);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop();
    }
}

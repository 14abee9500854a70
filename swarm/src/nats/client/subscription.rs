//! [`Subscription`]: a subscription's messages, taken from the subscriber's own mailbox in order.
//!
//! The reader sends each subscription one [`Delivery`] per read (a batch of messages), numbered
//! per subscription and connection. Numbers are needed even though one process sends them all
//! in order: Lunatic 0.13 may put a message behind later ones when it arrives just as a timed
//! receive gives up (the runtime parks it in a slot that goes to the back of the mailbox at the
//! next receive), and the subscriber's waits are timed (that is how it notices a closed client).

use std::collections::{BTreeMap, VecDeque};

use super::messages::Delivery;
use crate::nats::codec::Msg;

/// Puts a subscription's deliveries back in order.
///
/// Within one connection (`generation`) the numbers go 0, 1, 2, ...; a delivery that comes
/// before an earlier one is kept until the earlier one is taken, which is already in the mailbox
/// (it was sent first). A later connection starts again at 0; deliveries of an earlier
/// connection that come after it are handed out as they come.
#[derive(Debug, Default)]
pub(super) struct InOrder {
    /// The delivery due next: (generation, number).
    expected: (u64, u64),
    early: BTreeMap<(u64, u64), Vec<Msg>>,
    ready: VecDeque<Msg>,
}

impl InOrder {
    /// The next message that is due, if it has been received.
    pub(super) fn next(&mut self) -> Option<Msg> {
        if self.ready.is_empty() {
            let msgs = self.early.remove(&self.expected)?;
            self.expected.1 += 1;
            self.ready.extend(msgs);
        }
        self.ready.pop_front()
    }

    /// Takes a delivery from the mailbox.
    pub(super) fn accept(&mut self, delivery: Delivery) {
        let Delivery {
            generation,
            seq,
            msgs,
        } = delivery;
        if generation > self.expected.0 {
            // A new connection: what an earlier one left waiting cannot be completed any more.
            for (_, msgs) in std::mem::take(&mut self.early) {
                self.ready.extend(msgs);
            }
            self.expected = (generation, 0);
        }
        if generation < self.expected.0 || seq < self.expected.1 {
            self.ready.extend(msgs);
        } else if seq == self.expected.1 {
            self.expected.1 += 1;
            self.ready.extend(msgs);
        } else {
            self.early.insert((generation, seq), msgs);
        }
    }

    /// Whether a delivery is kept back, waiting for an earlier one.
    pub(super) fn is_waiting(&self) -> bool {
        !self.early.is_empty()
    }

    /// Gives up on the missing delivery (it did not come although it was sent first, which
    /// cannot happen) and goes on with the oldest one kept back.
    pub(super) fn skip_gap(&mut self) {
        if let Some(&first) = self.early.keys().next() {
            self.expected = first;
        }
    }

    /// Forgets everything (the subscription ended).
    pub(super) fn clear(&mut self) {
        self.early.clear();
        self.ready.clear();
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::Subscription;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    use super::super::messages::{Command, Delivery};
    use super::super::{drain_tag, receive_now, wait_tagged, Addr, NatsClient, WaitFailed};
    use super::InOrder;
    use crate::nats::codec::Msg;
    use crate::nats::options::NatsError;

    /// A subscription; its messages arrive in the mailbox of the process that subscribed, under
    /// a tag of its own, so only that process can receive them. Dropping it unsubscribes.
    #[derive(Debug)]
    pub struct Subscription {
        client: NatsClient,
        sid: u64,
        tag: i64,
        subject: String,
        active: bool,
        order: RefCell<InOrder>,
    }

    impl Subscription {
        pub(in crate::nats::client) fn new(
            client: NatsClient,
            sid: u64,
            tag: i64,
            subject: &str,
        ) -> Subscription {
            Subscription {
                client,
                sid,
                tag,
                subject: subject.to_owned(),
                active: true,
                order: RefCell::new(InOrder::default()),
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

        /// Waits for the next message; `None` once the client is closed. The subscription
        /// survives reconnects (it is subscribed again on the new connection).
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

        /// Takes a message already received or in the mailbox, without waiting.
        pub fn try_next(&self) -> Option<Msg> {
            self.take(None, true).ok()
        }

        /// The next message in order: from the last delivery taken, else from the mailbox.
        fn take(&self, timeout: Option<Duration>, nowait: bool) -> Result<Msg, WaitFailed> {
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut order = self.order.borrow_mut();
            loop {
                if let Some(msg) = order.next() {
                    return Ok(msg);
                }
                let received = if nowait {
                    receive_now::<Delivery>(self.tag).ok_or(WaitFailed::TimedOut)
                } else {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    wait_tagged::<Delivery>(self.tag, self.client.conn, left)
                };
                match received {
                    Ok(delivery) => order.accept(delivery),
                    Err(_) if order.is_waiting() => order.skip_gap(),
                    Err(failed) => return Err(failed),
                }
            }
        }

        /// Stops the subscription; waits until nothing more can be delivered for it, then drops
        /// what was delivered and not taken.
        pub fn unsubscribe(mut self) {
            self.stop();
        }

        /// Stops the subscription like [`Subscription::unsubscribe`], but hands back the messages
        /// delivered before the server confirmed it, instead of dropping them: a worker that
        /// stops answers everything it was given (NATS calls this draining).
        pub fn drain(mut self) -> Vec<Msg> {
            let mut rest = Vec::new();
            if self.end() {
                while let Ok(msg) = self.take(None, true) {
                    rest.push(msg);
                }
                self.order.borrow_mut().clear();
            }
            rest
        }

        fn stop(&mut self) {
            if self.end() {
                drain_tag(self.tag);
                self.order.borrow_mut().clear();
            }
        }

        /// Unsubscribes and waits until the connection confirms that nothing more can be
        /// delivered; `false` if the subscription had ended already.
        fn end(&mut self) -> bool {
            if !self.active {
                return false;
            }
            self.active = false;
            let ack = Addr::fresh();
            let command = Command::Unsubscribe {
                sid: self.sid,
                ack: Some(ack),
            };
            if self.client.command(command).is_ok() {
                let _ = wait_tagged::<()>(ack.tag, self.client.conn, Some(self.client.op_timeout));
            }
            true
        }
    }

    impl Drop for Subscription {
        fn drop(&mut self) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(generation: u64, seq: u64, payloads: &[&str]) -> Delivery {
        let msgs = payloads
            .iter()
            .map(|p| Msg {
                subject: "s".into(),
                sid: 2,
                reply_to: None,
                headers: None,
                status: None,
                description: None,
                payload: p.as_bytes().to_vec(),
            })
            .collect();
        Delivery {
            generation,
            seq,
            msgs,
        }
    }

    fn drain(order: &mut InOrder) -> Vec<String> {
        std::iter::from_fn(|| order.next())
            .map(|m| String::from_utf8(m.payload).unwrap())
            .collect()
    }

    #[test]
    fn hands_out_in_order_when_a_delivery_overtook_another() {
        let mut order = InOrder::default();
        order.accept(delivery(1, 0, &["a", "b"]));
        assert_eq!(drain(&mut order), ["a", "b"]);
        order.accept(delivery(1, 2, &["e"]));
        assert!(order.is_waiting());
        assert_eq!(drain(&mut order), Vec::<String>::new());
        order.accept(delivery(1, 1, &["c", "d"]));
        assert_eq!(drain(&mut order), ["c", "d", "e"]);
        assert!(!order.is_waiting());
    }

    #[test]
    fn a_new_connection_starts_again_and_late_ones_still_come_out() {
        let mut order = InOrder::default();
        // The first delivery seen may be a later one of its connection: 0 is in the mailbox.
        order.accept(delivery(4, 1, &["b"]));
        assert_eq!(drain(&mut order), Vec::<String>::new());
        order.accept(delivery(4, 0, &["a"]));
        assert_eq!(drain(&mut order), ["a", "b"]);
        // Reconnected: generation 6 starts at 0; a late one of generation 4 is not held back.
        order.accept(delivery(6, 0, &["x"]));
        order.accept(delivery(4, 2, &["late"]));
        assert_eq!(drain(&mut order), ["x", "late"]);
        // A gap that never fills is skipped when the caller gives up on it.
        order.accept(delivery(6, 3, &["z"]));
        order.skip_gap();
        assert_eq!(drain(&mut order), ["z"]);
    }
}

//! Messages from one sender are read in the order it sent them, also by a process that waits
//! with a timeout and then does something else that waits: an agent whose save timer ran out and
//! saves, or an agent of a bounded kind, which looks at its mailbox without waiting before each
//! message. Stock Lunatic 0.13 breaks that order (a receive that timed out left its waiter in the
//! mailbox, and the next message went behind the ones after it); swarm's build of Lunatic is
//! patched (scripts/lunatic-patches.py).

use std::time::{Duration, Instant};

use swarm::prelude::*;
use swarm::runtime::host::{self, Received};

const TAG: i64 = 7;

#[lunatic::test]
fn one_senders_messages_keep_their_order_through_receives_that_time_out() {
    let receiver = host::this().id;
    swarm::runtime::process::spawn(receiver, |to: u64| {
        let mut n: u64 = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            // Pairs, about a receive's timeout apart.
            for _ in 0..2 {
                host::send(to, TAG, &n).unwrap();
                n += 1;
            }
            lunatic::sleep(Duration::from_millis(1));
        }
        host::send(to, TAG, &u64::MAX).unwrap();
    })
    .unwrap();
    let (mut next, mut out_of_order, mut timeouts) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the sender's last message did not come"
        );
        match host::receive(&[], Some(Duration::from_millis(1))) {
            Received::Data => {
                let n: u64 = host::decode().unwrap();
                if n == u64::MAX {
                    break;
                }
                if n != next {
                    out_of_order += 1;
                }
                next = n.max(next) + 1;
            }
            // As an agent whose timer ran out and then does something that waits.
            Received::TimedOut => {
                timeouts += 1;
                lunatic::sleep(Duration::from_millis(2));
            }
            other => panic!("{other:?}"),
        }
    }
    println!("{next} messages, {timeouts} receives timed out, {out_of_order} out of order");
    assert!(
        timeouts > 0,
        "no receive timed out: the test tested nothing"
    );
    assert_eq!(
        out_of_order, 0,
        "of {next} messages (stock Lunatic 0.13 does this: run swarm's build, scripts/setup)"
    );
}

/// Keeps the numbers it is sent, in the order it reads them; a bounded kind with its state saved
/// after each message (each save waits on the store).
#[agent(kind = "in-order", mailbox = 1000)]
pub struct InOrder {
    #[key]
    id: String,
    #[persist]
    seen: Vec<u32>,
}

#[agent]
impl InOrder {
    #[handler]
    pub fn note(&mut self, n: u32) {
        self.seen.push(n);
    }

    #[handler]
    pub fn seen(&self) -> Vec<u32> {
        self.seen.clone()
    }
}

#[lunatic::test]
fn an_agent_reads_one_callers_messages_in_the_order_sent() {
    let store = StoreConfig::file(swarm_tests::scratch_dir("in-order"));
    let agent = InOrder::launcher().store(store).get_or_start("a").unwrap();
    const SENT: u32 = 400;
    for n in 0..SENT {
        agent.note(n).unwrap();
        if n % 2 == 1 {
            // Pairs, a save apart.
            lunatic::sleep(Duration::from_micros(500));
        }
    }
    let seen = agent.seen().unwrap();
    let out_of_order = seen.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!(seen.len(), SENT as usize);
    assert_eq!(
        out_of_order, 0,
        "read out of order (stock Lunatic 0.13 does this: run swarm's build, scripts/setup): \
         {seen:?}"
    );
    agent.shutdown().unwrap();
}

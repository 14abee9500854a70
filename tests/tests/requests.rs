use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterError {
    Overflow { total: u64, add: u64 },
}

#[agent(kind = "counter")]
pub struct Counter {
    #[key]
    name: String,
    #[persist]
    total: u64,
    calls: u32,
}

#[agent]
impl Counter {
    #[handler]
    pub fn add(&mut self, n: u64) -> Result<u64, CounterError> {
        self.calls += 1;
        self.total = self.total.checked_add(n).ok_or(CounterError::Overflow {
            total: self.total,
            add: n,
        })?;
        Ok(self.total)
    }

    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }

    #[handler]
    pub fn bump(&mut self) {
        self.total += 1;
    }

    #[handler]
    pub fn calls(&self) -> u32 {
        self.calls
    }

    #[handler]
    pub fn sleep(&self, ms: u64) -> u64 {
        lunatic::sleep(Duration::from_millis(ms));
        ms
    }

    #[handler]
    pub fn crash(&mut self, why: String) -> u64 {
        self.total += 1000;
        panic!("asked to crash: {why}");
    }
}

fn mem(test: &str) -> StoreConfig {
    StoreConfig::memory(test)
}

#[lunatic::test]
fn a_request_returns_the_handlers_answer() {
    let counter = Counter::launcher()
        .store(mem("req"))
        .get_or_start("a")
        .unwrap();
    assert_eq!(counter.add(2).unwrap(), Ok(2));
    assert_eq!(counter.add(3).unwrap(), Ok(5));
    assert_eq!(counter.total().unwrap(), 5);
}

#[lunatic::test]
fn a_user_error_is_data_not_a_delivery_error() {
    let counter = Counter::launcher()
        .store(mem("err"))
        .get_or_start("a")
        .unwrap();
    counter.add(u64::MAX).unwrap().unwrap();
    assert_eq!(
        counter.add(1).unwrap(),
        Err(CounterError::Overflow {
            total: u64::MAX,
            add: 1
        })
    );
    assert_eq!(counter.total().unwrap(), u64::MAX);
}

#[lunatic::test]
fn a_message_is_fire_and_forget_and_ordered_before_later_requests() {
    let counter = Counter::launcher()
        .store(mem("msg"))
        .get_or_start("a")
        .unwrap();
    for _ in 0..10 {
        counter.bump().unwrap();
    }
    assert_eq!(counter.total().unwrap(), 10);
}

#[lunatic::test]
fn a_slow_handler_times_out() {
    let counter = Counter::launcher()
        .store(mem("slow"))
        .get_or_start("a")
        .unwrap();
    let err = counter
        .with_timeout(Duration::from_millis(50))
        .sleep(500)
        .unwrap_err();
    assert_eq!(err.reason, CallFailure::TimedOut(Duration::from_millis(50)));
    assert_eq!(err.to_string(), "counter/a.sleep: no reply within 50ms");
    assert_eq!(counter.sleep(1).unwrap(), 1);
}

#[lunatic::test]
fn a_panicking_handler_answers_its_caller_and_ends_the_agent() {
    let counter = Counter::launcher()
        .store(mem("panic"))
        .get_or_start("a")
        .unwrap();
    counter.add(7).unwrap().unwrap();
    let err = counter.crash("test".into()).unwrap_err();
    match &err.reason {
        CallFailure::Panicked(message) => {
            assert!(message.starts_with("asked to crash: test"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(!counter.is_alive());
    assert_eq!(counter.total().unwrap_err().reason, CallFailure::NotRunning);
    let again = Counter::launcher()
        .store(mem("panic"))
        .get_or_start("a")
        .unwrap();
    assert_ne!(again.process_id(), counter.process_id());
    assert_eq!(
        again.total().unwrap(),
        7,
        "the acknowledged state survives; the crashed change does not"
    );
}

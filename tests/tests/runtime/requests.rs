//! Requests, messages, user errors vs delivery errors, timeouts.

use std::time::Duration;

use swarm::prelude::*;
use swarm_tests::{Counter, CounterError, Echo};

fn counter(store: &str, key: &str) -> swarm_tests::CounterRef {
    Counter::launcher()
        .store(StoreConfig::memory(store))
        .get_or_start(key)
        .unwrap()
}

#[lunatic::test]
fn a_request_returns_the_handlers_answer() {
    let counter = counter("req", "a");
    assert_eq!(counter.add(2).unwrap(), Ok(2));
    assert_eq!(counter.add(3).unwrap(), Ok(5));
    assert_eq!(counter.total().unwrap(), 5);
    assert_eq!(counter.name().unwrap(), "a");
}

#[lunatic::test]
fn a_user_error_is_data_not_a_delivery_error() {
    let counter = counter("err", "a");
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
fn messages_are_fire_and_forget_and_arrive_in_order() {
    let counter = counter("msg", "a");
    for _ in 0..10 {
        counter.bump().unwrap();
    }
    assert_eq!(counter.total().unwrap(), 10);
    // Short messages travel inside their tag, longer ones with data: both arrive, in order.
    for step in [0u8, 1, 127, 255] {
        counter.bump_by(step).unwrap();
        counter.bump_by_wide(u32::from(step) << 16).unwrap();
    }
    assert_eq!(counter.total().unwrap(), 10 + 383 + (383 << 16));
}

#[lunatic::test]
fn a_slow_handler_times_out_and_the_agent_keeps_serving() {
    let counter = counter("slow", "a");
    let err = counter
        .with_timeout(Duration::from_millis(50))
        .sleep(400)
        .unwrap_err();
    assert_eq!(err.reason, CallFailure::TimedOut(Duration::from_millis(50)));
    assert_eq!(err.to_string(), "counter/a.sleep: no reply within 50ms");
    assert_eq!(counter.sleep(1).unwrap(), 1);
}

#[lunatic::test]
fn a_handle_says_when_the_agent_is_not_running() {
    let counter = counter("gone", "a");
    counter.shutdown().unwrap();
    assert!(!counter.is_alive());
    let err = counter.total().unwrap_err();
    assert_eq!(err.reason, CallFailure::NotRunning);
    assert_eq!(err.to_string(), "counter/a.total: the agent is not running");
    assert_eq!(counter.bump().unwrap_err().reason, CallFailure::NotRunning);
}

#[lunatic::test]
fn agents_without_a_key_are_started_fresh_each_time() {
    let first = Echo::start().unwrap();
    let second = Echo::start().unwrap();
    assert_ne!(first.process_id(), second.process_id());
    assert_eq!(first.echo("hi".into()).unwrap(), ("hi".to_string(), 1));
    assert_eq!(
        first.echo("again".into()).unwrap(),
        ("again".to_string(), 2)
    );
    assert_eq!(second.echo("x".into()).unwrap(), ("x".to_string(), 1));
    assert_eq!(first.key(), "");
}

#[lunatic::test]
fn handles_travel_to_other_processes(mailbox: lunatic::Mailbox<u64>) {
    let counter = counter("travel", "a");
    let this = mailbox.this();
    lunatic::Process::spawn_link(
        (counter.clone(), this),
        |(counter, parent), _: lunatic::Mailbox<()>| {
            parent.send(counter.add(5).unwrap().unwrap());
        },
    );
    // The worker's `add(5)` is the agent's first message: this process sends nothing until the
    // worker's answer is here, so the worker sees 5 and nothing else.
    assert_eq!(mailbox.receive(), 5);
    counter.add(1).unwrap().unwrap();
    assert_eq!(counter.total().unwrap(), 6);
}

#[lunatic::test]
fn large_messages_and_replies_cross_the_mailbox_whole() {
    let echo = Echo::start().unwrap();
    for size in [0, 1, 255, 256, 257, 4096, 300_000] {
        let text: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let (back, _) = echo.echo(text.clone()).unwrap();
        assert_eq!(back, text, "size {size}");
    }
}

#[lunatic::test]
fn late_replies_to_timed_out_requests_do_not_pile_up_in_the_mailbox() {
    let counter = counter("late", "a");
    for _ in 0..3 {
        let err = counter
            .with_timeout(Duration::from_millis(30))
            .sleep(100)
            .unwrap_err();
        assert_eq!(err.reason, CallFailure::TimedOut(Duration::from_millis(30)));
    }
    // Let the late replies arrive, then make one more call: it takes them out.
    lunatic::sleep(Duration::from_millis(400));
    assert_eq!(counter.total().unwrap(), 0);
    // SAFETY: a zero-timeout look at this process' mailbox.
    let kind = unsafe { lunatic::host::api::message::receive(std::ptr::null(), 0, 0) };
    assert_eq!(kind, 9027, "the mailbox is empty (9027: nothing arrived)");
}

#[lunatic::test]
fn an_answer_that_does_not_encode_is_an_error_for_the_caller_and_the_agent_goes_on() {
    swarm::set_default_store(StoreConfig::memory("requests-unencodable")).unwrap();
    let notes = swarm_tests::Notes::get_or_start("unencodable").unwrap();
    assert_eq!(notes.post("kept".into()).unwrap(), 1);
    let err = notes.unencodable().unwrap_err();
    assert!(
        matches!(&err.reason, CallFailure::Unencodable(why) if why.contains("refuses to be encoded")),
        "{err}"
    );
    // Not a crash: the same process answers, with its state.
    assert!(notes.is_alive());
    assert_eq!(notes.history().unwrap(), vec!["kept".to_owned()]);
}

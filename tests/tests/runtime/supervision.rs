//! Supervision trees under fault injection: each case of OTP's supervisor semantics, checked by
//! the order of starts and stops, process ids, counters and restored state.

use std::time::Duration;

use swarm::prelude::*;
use swarm::supervisor::{Restart, SupervisorError};
use swarm_tests::{eventually, Account, Journal, JournalRef, Member, Worker};

const WAIT: Duration = Duration::from_secs(5);

fn journal(test: &str) -> JournalRef {
    swarm::set_default_store(StoreConfig::memory("supervision")).unwrap();
    Journal::get_or_start(test.to_owned()).unwrap()
}

/// Waits until the journal has `count` events and returns them (and forgets them).
fn events(journal: &JournalRef, count: usize) -> Vec<String> {
    eventually(WAIT, || journal.events().unwrap().len() >= count);
    journal.take().unwrap()
}

supervisor! {
    pub OneForOne: one_for_one(max_restarts = 3, within_secs = 10) {
        a: Member("o4o-a"),
        b: Member("o4o-b"),
        c: Member("o4o-c"),
    }
}

#[lunatic::test]
fn one_for_one_restarts_only_the_crashed_child() {
    let journal = journal("o4o");
    let sup = OneForOne::start().unwrap();
    assert_eq!(events(&journal, 3), ["start a", "start b", "start c"]);
    let (a, c) = (sup.a().unwrap().process_id(), sup.c().unwrap().process_id());
    sup.b().unwrap().incr().unwrap();
    let crashed = sup.b().unwrap();
    assert!(crashed.crash().is_ok(), "a message: delivered");
    assert_eq!(events(&journal, 1), ["start b"]);
    assert!(eventually(WAIT, || sup
        .b()
        .is_ok_and(|b| b.process_id() != crashed.process_id())));
    assert_eq!(sup.a().unwrap().process_id(), a);
    assert_eq!(sup.c().unwrap().process_id(), c);
    assert_eq!(
        sup.b().unwrap().count().unwrap(),
        1,
        "restarted with its saved state"
    );
    let stats = sup.supervisor().stats().unwrap();
    let restarts: Vec<_> = stats
        .iter()
        .map(|s| (s.name.as_str(), s.restarts, s.crashes))
        .collect();
    assert_eq!(restarts, [("a", 0, 0), ("b", 1, 1), ("c", 0, 0)]);
    sup.supervisor().shutdown().unwrap();
    assert_eq!(
        events(&journal, 3),
        ["stop c", "stop b", "stop a"],
        "reverse start order"
    );
}

supervisor! {
    pub OneForAll: one_for_all(max_restarts = 3, within_secs = 10) {
        a: Member("o4a-a"),
        b: Member("o4a-b"),
        c: Member("o4a-c"),
    }
}

#[lunatic::test]
fn one_for_all_stops_the_others_in_reverse_then_starts_all_in_order() {
    let journal = journal("o4a");
    let sup = OneForAll::start().unwrap();
    assert_eq!(events(&journal, 3), ["start a", "start b", "start c"]);
    let before: Vec<Option<u64>> = [sup.a(), sup.b(), sup.c()]
        .map(|h| h.unwrap().process_id())
        .to_vec();
    sup.b().unwrap().crash().unwrap();
    assert_eq!(
        events(&journal, 5),
        ["stop c", "stop a", "start a", "start b", "start c"]
    );
    let after: Vec<Option<u64>> = [sup.a(), sup.b(), sup.c()]
        .map(|h| h.unwrap().process_id())
        .to_vec();
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "{before:?} {after:?}"
    );
    sup.supervisor().shutdown().unwrap();
}

supervisor! {
    pub RestForOne: rest_for_one(max_restarts = 3, within_secs = 10) {
        a: Member("r4o-a"),
        b: Member("r4o-b"),
        c: Member("r4o-c"),
    }
}

#[lunatic::test]
fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    let journal = journal("r4o");
    let sup = RestForOne::start().unwrap();
    assert_eq!(events(&journal, 3), ["start a", "start b", "start c"]);
    let a = sup.a().unwrap().process_id();
    sup.b().unwrap().crash().unwrap();
    assert_eq!(events(&journal, 3), ["stop c", "start b", "start c"]);
    assert_eq!(
        sup.a().unwrap().process_id(),
        a,
        "a was started before b: untouched"
    );
    sup.supervisor().shutdown().unwrap();
}

supervisor! {
    pub Fragile: one_for_one(max_restarts = 2, within_secs = 10) {
        a: Member("fragile-a"),
        b: Member("fragile-b"),
    }
}

#[lunatic::test]
fn past_its_intensity_a_supervisor_stops_its_children_and_gives_up() {
    let journal = journal("fragile");
    let sup = Fragile::start().unwrap();
    assert_eq!(events(&journal, 2), ["start a", "start b"]);
    for round in 1..=2 {
        let b = sup.b().unwrap();
        b.crash().unwrap();
        assert!(
            eventually(WAIT, || sup
                .b()
                .is_ok_and(|now| now.process_id() != b.process_id())),
            "round {round}"
        );
        assert_eq!(events(&journal, 1), ["start b"]);
    }
    // The third restart within 10 s is one too many.
    sup.b().unwrap().crash().unwrap();
    assert!(
        eventually(WAIT, || !sup.supervisor().is_alive()),
        "the supervisor gave up"
    );
    assert_eq!(
        events(&journal, 1),
        ["stop a"],
        "its remaining child was stopped in order"
    );
    assert!(matches!(sup.a(), Err(SupervisorError::NotRunning(_))));
    assert!(Member::lookup("fragile-a".to_owned()).is_none());
}

supervisor! {
    pub Inner: one_for_one(max_restarts = 0, within_secs = 10) {
        x: Member("nest-x"),
    }
}

supervisor! {
    pub Middle: one_for_one(max_restarts = 0, within_secs = 10) {
        inner: Inner,
    }
}

supervisor! {
    pub Root: one_for_one(max_restarts = 5, within_secs = 10) {
        first: Member("nest-first"),
        middle: Middle,
    }
}

#[lunatic::test]
fn a_failure_escalates_two_levels_and_the_root_restarts_the_subtree() {
    let journal = journal("nest");
    let root = Root::start().unwrap();
    assert_eq!(events(&journal, 2), ["start first", "start x"]);
    let middle = root.middle().unwrap();
    let inner = middle.inner().unwrap();
    let x = inner.x().unwrap();
    x.incr().unwrap();
    let first = root.first().unwrap().process_id();

    // Inner allows no restart: it gives up; so does Middle; Root restarts Middle, which starts
    // Inner, which starts x.
    x.crash().unwrap();
    assert_eq!(events(&journal, 1), ["start x"]);
    assert!(eventually(WAIT, || root
        .middle()
        .is_ok_and(|m| m != middle)));
    assert!(!middle.supervisor().is_alive() && !inner.supervisor().is_alive());
    let new_x = root.middle().unwrap().inner().unwrap().x().unwrap();
    assert_ne!(new_x.process_id(), x.process_id());
    assert_eq!(
        new_x.count().unwrap(),
        1,
        "state restored three levels down"
    );
    assert_eq!(
        root.first().unwrap().process_id(),
        first,
        "one_for_one at the root: `first` untouched"
    );
    let stats = root.supervisor().stats().unwrap();
    assert_eq!(
        (stats[1].name.as_str(), stats[1].restarts, stats[1].crashes),
        ("middle", 1, 1)
    );
    root.supervisor().shutdown().unwrap();
}

supervisor! {
    pub Policies: one_for_one(max_restarts = 10, within_secs = 10) {
        perm: permanent Member("pol-perm"),
        trans: transient Member("pol-trans"),
        temp: temporary Member("pol-temp"),
    }
}

#[lunatic::test]
fn restart_policies_permanent_transient_temporary() {
    let journal = journal("pol");
    let sup = Policies::start().unwrap();
    assert_eq!(
        events(&journal, 3),
        ["start perm", "start trans", "start temp"]
    );

    // An orderly stop is a normal exit: permanent restarts, transient and temporary do not.
    // (Perm's restart is awaited before trans stops: `shutdown` returns once the child is gone,
    // which may be before its supervisor has the notice.)
    sup.perm().unwrap().shutdown().unwrap();
    assert_eq!(events(&journal, 2), ["stop perm", "start perm"]);
    sup.trans().unwrap().shutdown().unwrap();
    assert_eq!(events(&journal, 1), ["stop trans"]);
    assert!(eventually(WAIT, || matches!(
        sup.trans(),
        Err(SupervisorError::NoSuchChild { .. })
    )));

    // A crash is abnormal: temporary is still not restarted.
    sup.temp().unwrap().crash().unwrap();
    assert!(eventually(WAIT, || matches!(
        sup.temp(),
        Err(SupervisorError::NoSuchChild { .. })
    )));
    lunatic::sleep(Duration::from_millis(100));
    assert!(
        journal.events().unwrap().is_empty(),
        "nothing restarted: {:?}",
        journal.events()
    );
    let stats = sup.supervisor().stats().unwrap();
    let counts: Vec<_> = stats
        .iter()
        .map(|s| (s.name.as_str(), s.restarts, s.process.is_some()))
        .collect();
    assert_eq!(
        counts,
        [("perm", 1, true), ("trans", 0, false), ("temp", 0, false)]
    );
    sup.supervisor().shutdown().unwrap();
}

supervisor! {
    pub Killed: one_for_one(max_restarts = 3, within_secs = 10) {
        m: Member("kill-m"),
    }
}

#[lunatic::test]
fn a_child_killed_from_outside_is_restarted_with_its_state() {
    let _journal = journal("kill");
    let sup = Killed::start().unwrap();
    let m = sup.m().unwrap();
    for _ in 0..3 {
        m.incr().unwrap();
    }
    m.kill();
    assert!(eventually(WAIT, || sup
        .m()
        .is_ok_and(|now| now.process_id() != m.process_id())));
    assert_eq!(sup.m().unwrap().count().unwrap(), 3);
    assert_eq!(sup.supervisor().stats().unwrap()[0].crashes, 1);
    sup.supervisor().shutdown().unwrap();
}

supervisor! {
    pub Workers: one_for_one(max_restarts = 10, within_secs = 10) {
        pool: pool(Worker, 3),
    }
}

#[lunatic::test]
fn a_pool_member_crashing_under_load_is_replaced_and_the_pool_keeps_serving(
    mailbox: lunatic::Mailbox<(u32, u32)>,
) {
    let sup = Workers::start().unwrap();
    let pool = sup.pool();
    assert_eq!(pool.members().unwrap().len(), 3);

    // Four callers, 25 requests each, while one member crashes.
    let this = mailbox.this();
    for _ in 0..4 {
        lunatic::Process::spawn_link(
            (sup.clone(), this),
            |(sup, parent), _: lunatic::Mailbox<()>| {
                let pool = sup.pool();
                let (mut ok, mut failed) = (0, 0);
                for _ in 0..25 {
                    match pool.pick().map(|w| w.work(2)) {
                        Ok(Ok(_)) => ok += 1,
                        _ => failed += 1,
                    }
                }
                parent.send((ok, failed));
            },
        );
    }
    lunatic::sleep(Duration::from_millis(20));
    pool.pick().unwrap().crash().unwrap();
    let mut answered = 0;
    for _ in 0..4 {
        let (ok, failed) = mailbox
            .receive_timeout(Duration::from_secs(30))
            .expect("every caller finishes");
        answered += ok + failed;
    }
    assert_eq!(answered, 100, "every call got a reply or an error");
    assert!(
        eventually(WAIT, || pool.members().is_ok_and(|m| m.len() == 3)),
        "the crashed member was replaced"
    );
    for _ in 0..6 {
        assert!(pool.pick().unwrap().work(0).is_ok());
    }
    let stats = sup.supervisor().stats().unwrap();
    assert_eq!(stats.iter().map(|s| s.restarts).sum::<u32>(), 1);
    sup.supervisor().shutdown().unwrap();
}

supervisor! {
    pub BadStart: one_for_one(max_restarts = 3, within_secs = 10) {
        a: Member("bad-a"),
        closed: Account(13u64),
        never: Member("bad-never"),
    }
}

#[lunatic::test]
fn a_child_that_fails_to_start_fails_the_supervisor_start() {
    let journal = journal("bad");
    let err = BadStart::start().unwrap_err();
    match &err {
        SupervisorError::ChildFailed {
            supervisor,
            child,
            reason,
        } => {
            assert_eq!(
                (supervisor.as_str(), child.as_str()),
                ("BadStart", "closed")
            );
            assert!(reason.contains("account 13 is closed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        events(&journal, 2),
        ["start a", "stop a"],
        "the started child was stopped; `never` never started"
    );
    assert!(Member::lookup("bad-a".to_owned()).is_none());
}

#[lunatic::test]
fn restart_policy_can_be_set_on_a_hand_built_spec() {
    let spec = Policies::spec();
    let policies: Vec<Restart> = spec.children.iter().map(|c| c.restart).collect();
    assert_eq!(
        policies,
        [Restart::Permanent, Restart::Transient, Restart::Temporary]
    );
    assert_eq!(
        (spec.max_restarts, spec.within),
        (10, Duration::from_secs(10))
    );
}

supervisor! {
    pub BadKey: one_for_one {
        ok: Member("badkey-ok"),
        broken: Member("bad key"),
    }
}

#[lunatic::test]
fn an_invalid_child_key_fails_the_start_with_the_reason() {
    let _journal = journal("badkey");
    match BadKey::start().unwrap_err() {
        SupervisorError::ChildFailed { child, reason, .. } => {
            assert_eq!(child, "broken");
            assert!(
                reason.contains("character ' ' at byte 3 is not allowed"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        Member::lookup("badkey-ok".to_owned()).is_none(),
        "the child started before was stopped"
    );
}

supervisor! {
    pub Adopting: one_for_one(max_restarts = 3, within_secs = 10) {
        a: Member("adopt-a"),
    }
}

/// A keyed child that already runs (someone's `get_or_start` came first) is adopted, not
/// started a second time: the key still has one live agent, and the supervisor restarts it.
#[lunatic::test]
fn a_keyed_child_already_running_is_adopted_and_supervised() {
    let journal = journal("adopt");
    let early = Member::get_or_start("adopt-a".to_owned()).unwrap();
    assert_eq!(events(&journal, 1), ["start a"]);
    early.incr().unwrap();
    let sup = Adopting::start().unwrap();
    assert_eq!(
        sup.a().unwrap().process_id(),
        early.process_id(),
        "the same process"
    );
    assert!(early.crash().is_ok(), "a message: delivered");
    assert_eq!(
        events(&journal, 1),
        ["start a"],
        "restarted once, by the supervisor"
    );
    assert!(eventually(WAIT, || sup
        .a()
        .is_ok_and(|a| a.process_id() != early.process_id())));
    assert_eq!(sup.a().unwrap().incr().unwrap(), 2, "with its saved state");
    sup.supervisor().shutdown().unwrap();
    assert_eq!(events(&journal, 1), ["stop a"]);
}

supervisor! {
    pub ObservedDesk: one_for_one(max_restarts = 0, within_secs = 10) {
        inner: Member("obs-inner"),
    }
}

supervisor! {
    pub Observed: one_for_one(max_restarts = 5, within_secs = 10) {
        top: Member("obs-top"),
        desk: ObservedDesk,
    }
}

supervisor! {
    pub ObservedFragile: one_for_one(max_restarts = 0, within_secs = 10) {
        only: Member("obs-only"),
    }
}

supervisor! {
    pub InnerWorkers: one_for_one(max_restarts = 3, within_secs = 10) {
        pool: pool(Worker, 2),
    }
}

supervisor! {
    pub OuterWorkers: one_for_one(max_restarts = 3, within_secs = 10) {
        inner: InnerWorkers,
    }
}

#[lunatic::test]
fn a_nested_supervisor_and_its_children_end_with_their_parent() {
    let outer = OuterWorkers::start().unwrap();
    let inner = outer.inner().unwrap();
    let inner_id = inner.supervisor().process_id();
    let workers = inner.pool().members().unwrap();
    assert_eq!(workers.len(), 2);
    swarm::runtime::host::kill(outer.supervisor().process_id());
    assert!(
        eventually(WAIT, || !swarm::runtime::host::exists(inner_id)
            && workers.iter().all(|w| !w.is_alive())),
        "the nested supervisor or its workers outlived their parent"
    );
}

supervisor! {
    pub BigPool: one_for_one(max_restarts = 1000, within_secs = 60) {
        pool: pool(Worker, 200),
    }
}

#[lunatic::test]
fn a_burst_of_exits_in_a_large_pool_reaches_the_directory_with_the_last_counts() {
    let sup = BigPool::start().unwrap();
    let id = sup.supervisor().process_id();
    let members = sup.pool().members().unwrap();
    assert_eq!(members.len(), 200);
    for member in &members {
        member.kill();
    }
    // Each a crash (the link's end may reach the supervisor after the monitor's), restarted once;
    // described to the directory at most once per 100 ms while the exits come in, the last
    // description, after the burst, with every restart.
    let restarted = |tree: &swarm::supervisor::SupervisorInfo| {
        let members = &tree.children[0].members;
        members.len() == 200
            && members
                .iter()
                .all(|m| m.restarts == 1 && m.crashes == 1 && m.process.is_some())
    };
    assert!(
        eventually(Duration::from_secs(20), || tree_of("BigPool", id)
            .is_some_and(|t| restarted(&t))),
        "restarts in the directory: {:?}; in the supervisor: {:?}",
        tree_of("BigPool", id).map(|t| t.children[0]
            .members
            .iter()
            .map(|m| m.restarts)
            .sum::<u32>()),
        sup.supervisor()
            .stats()
            .map(|s| s.iter().map(|c| c.restarts).sum::<u32>())
    );
    sup.supervisor().shutdown().unwrap();
}

/// The tree of supervisor `name` running (or last run) as process `process`, as the node's
/// directory shows it (other tests' supervisors are there too).
fn tree_of(name: &str, process: u64) -> Option<swarm::supervisor::SupervisorInfo> {
    swarm::supervisor::trees()
        .unwrap()
        .into_iter()
        .find(|tree| tree.name == name && tree.process == process)
}

#[lunatic::test]
fn the_node_directory_shows_each_tree_with_its_counts_and_how_it_ended() {
    use swarm::supervisor::{ChildKindInfo, SupervisorState};
    let journal = journal("obs");
    let sup = Observed::start().unwrap();
    assert_eq!(events(&journal, 2), ["start top", "start inner"]);
    let id = sup.supervisor().process_id();
    assert!(
        eventually(WAIT, || tree_of("Observed", id).is_some()),
        "a started supervisor is in the directory"
    );
    let tree = tree_of("Observed", id).unwrap();
    assert_eq!(tree.state, SupervisorState::Up);
    assert_eq!((tree.max_restarts, tree.within_secs), (5, 10.0));
    let names: Vec<&str> = tree.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["top", "desk"]);
    assert_eq!(
        tree.children[0].kind,
        ChildKindInfo::Single {
            kind: "member".into(),
            key: "obs-top".into()
        }
    );
    assert_eq!(
        tree.children[0].members[0].process,
        sup.top().unwrap().process_id()
    );
    // The nested supervisor sits under the child that runs it, not among the top-level trees.
    let desk = tree.children[1]
        .supervisor
        .as_ref()
        .expect("nested in place");
    assert_eq!(desk.name, "ObservedDesk");
    assert_eq!(
        Some(desk.process),
        tree.children[1].members[0].process,
        "the child's process is the nested supervisor"
    );
    assert!(tree_of("ObservedDesk", desk.process).is_none());

    // A crash: the restart shows, with the new process.
    let top = sup.top().unwrap();
    top.crash().unwrap();
    assert!(eventually(WAIT, || tree_of("Observed", id).is_some_and(
        |t| {
            let member = &t.children[0].members[0];
            member.restarts == 1
                && member.crashes == 1
                && member.process.is_some()
                && member.process != top.process_id()
        }
    )));

    // The nested one gives up (no restart allowed): its parent restarts it, a new process.
    let old_desk = desk.process;
    sup.desk().unwrap().inner().unwrap().crash().unwrap();
    assert!(eventually(WAIT, || tree_of("Observed", id).is_some_and(
        |t| {
            let desk = &t.children[1];
            desk.members[0].restarts == 1
                && desk
                    .supervisor
                    .as_ref()
                    .is_some_and(|s| s.process != old_desk && s.state == SupervisorState::Up)
        }
    )));

    // A top-level supervisor that gives up stays in the directory, saying why.
    let fragile = ObservedFragile::start().unwrap();
    let fragile_id = fragile.supervisor().process_id();
    fragile.only().unwrap().crash().unwrap();
    assert!(eventually(WAIT, || {
        tree_of("ObservedFragile", fragile_id).is_some_and(|t| {
            matches!(&t.state, SupervisorState::GaveUp { reason } if reason.contains("restarts"))
                && t.children[0].members[0].process.is_none()
        })
    }));

    // One killed from outside is `gone`; one shut down, `stopped`.
    let killed = ObservedFragile::start().unwrap();
    let killed_id = killed.supervisor().process_id();
    // Killed once the directory watches it (its report came first), so that the end arrives as
    // the monitor's notice rather than being found at the report.
    assert!(eventually(WAIT, || tree_of("ObservedFragile", killed_id).is_some()));
    lunatic::sleep(std::time::Duration::from_millis(300));
    swarm::runtime::host::kill(killed_id);
    assert!(eventually(WAIT, || tree_of("ObservedFragile", killed_id)
        .is_some_and(|t| t.state == SupervisorState::Gone)));
    sup.supervisor().shutdown().unwrap();
    assert_eq!(
        tree_of("Observed", id).map(|t| t.state),
        Some(SupervisorState::Stopped)
    );
}

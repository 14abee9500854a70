#!/usr/bin/env python3
"""Fault tests of a swarm cluster against real processes: nats-servers and Lunatic nodes.

Each test starts its own 3-server NATS JetStream cluster and 3 swarm nodes (the example
`cluster_node`, see tests/support/cluster.py) in a fresh namespace, puts write load on `ledger`
agents through the NATS front door `<ns>.ledger.<key>.<handler>`, injects one kind of fault,
and checks every key at the end:

  - every acknowledged append `(value, len)` is in the final state at its position,
    `entries[len - 1] == value` (a lost acknowledged write fails this, and so do two owners
    writing at once: they would hand out the same len twice);
  - no two acknowledged appends got the same len; values in the state are unique and were
    all sent for that key; no value whose append was refused outright (`applied: false`,
    `moved`, `overloaded`, `no_owner`, `start_failed`, no responders) is in the state.

A client treats any error or timeout as "not acknowledged" and retries with a new value (a value
is never sent twice). Each key has one writer, one request at a time.

Tests (before them, the checker is run on histories with known faults, which it must catch):
  jetstream  the NATS cluster alone, no node: an R3 KV bucket written, a stale compare-and-set
          refused, the stream leader SIGKILLed (election time reported), writes under the new
          leader, the old one restarted and caught up. Runs even when no node is built.
  kill    SIGKILL a node that owns keys, under load, and start a new process for it at once
          (as a supervisor would); 10 times. Unavailability per moved key = kill -> first
          acknowledged write of that key. Reported as p50/p99; the goal (issue 12) is
          p99 <= TTL + 1 s.
  stop    SIGSTOP a node for 2 x TTL (TTL 3000 ms), then SIGCONT: it must fence itself
          (`fenced` line) and acknowledge no write between its pause and its fencing; its
          refused stale writes (`stale-write-refused` lines) are reported.
  drain   drain a node under load (NATS request to `_SWARM.<ns>.control.<name>.drain`): it
          answers, exits after a `drained` line, and its keys are served elsewhere. Handover
          = drain request -> first acknowledged write of each of its keys elsewhere (goal < 1 s).
  nats    restart one nats-server mid-traffic, then SIGKILL the JetStream leader of the state
          bucket's stream (`KV_SWARM_STATE_<ns>`) and start it again.
  storm   1,000 concurrent first appends to one fresh key through the 3 servers: all
          acknowledged, by one node, with lens 1..1000 once each.
  placement  node0 holds at most 2 agents and is the only front door: first requests for 8
          new keys are acknowledged, node0 starts the first 2 itself and places the others on
          the nodes with room.
  handles  appends through `teller` agents that call ledgers through handles, from every node
          in turn (most calls cross nodes); the node holding most ledgers SIGKILLed under that
          load: the same handles reach the ledgers on their new owners; then a handle stops,
          checks and kills a ledger on another node.
  stayup  ledgers kept up (`ServeOptions::stay_up`): their node SIGKILLed with no request
          following; each is activated on a survivor by itself (read from the DIR bucket);
          then a survivor drained: its ledgers active on the last node, again by themselves.
          The times from the kill and from the drain request are reported.

usage: cluster_faults.py [--quick] [--bench] [--wasm PATH] [--seed N] [TEST ...]

Prints one line per test with its figures, then `test result: ok. N passed; 0 failed` (or
FAILED) for scripts/test; exits 1 on any failure. `--quick` shortens the load phases (CI);
`--bench` runs `kill` with 20 kills at TTL 3000 and at TTL 10000 and `drain`, for
BENCHMARKS.md. Every wait is bounded; each test has a hard time limit.
"""

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402  (next to this file)

KIND = "ledger"
REQUEST_TIMEOUT = 2.0
PACE = 0.03  # between a key's acknowledged append and its next one
ERROR_PAUSE = 0.1  # after an error or timeout, before the retry
READ_TIMEOUT = 30.0
# Errors after which the append cannot have been applied: its value must never show up.
REFUSALS = {"moved", "overloaded", "no_owner", "start_failed", "no_responders"}


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def seconds(values):
    if not values:
        return "n/a"
    return (f"p50 {percentile(values, 0.5):.2f} s, p99 {percentile(values, 0.99):.2f} s, "
            f"max {max(values):.2f} s over {len(values)}")


class TestFailure(Exception):
    pass


# --- the client side: what was sent, what was acknowledged ------------------------------------

class Ledger:
    """Every append sent, per key, and what came back."""

    def __init__(self):
        self.values = itertools.count(1)
        self.sent = {}  # value -> key
        self.acks = defaultdict(list)  # key -> [(value, len, node, time)]
        self.sent_at = {}  # value -> when its request was sent (monotonic), once acknowledged
        self.refused = {}  # value -> error kind, for appends that cannot have been applied
        self.errors = Counter()  # error kind -> count
        self.error_log = []  # (time of the answer, key, kind, time the request was sent)
        self.bad_replies = []
        self.examples = {}  # error kind -> one reply of that kind

    def new_value(self, key):
        value = next(self.values)
        self.sent[value] = key
        return value

    def ack(self, key, value, length, node, at, sent=None):
        self.acks[key].append((value, length, node, at))
        if sent is not None:
            self.sent_at[value] = sent

    def error(self, key, value, kind, applied, at, sent):
        self.errors[kind] += 1
        self.error_log.append((at, key, kind, sent))
        if kind in REFUSALS or applied is False:
            self.refused[value] = kind

    def owner(self, key):
        """The node that acknowledged the key's latest append."""
        return self.acks[key][-1][2] if self.acks[key] else None

    def first_ack_after(self, key, t, not_node=None):
        """(time, node) of the key's first acknowledgement after `t` (by a node other than
        `not_node`), or None. A key's acknowledgements are in time order: one writer per key."""
        acks = self.acks[key]
        for value, length, node, at in itertools.islice(acks, self._after(acks, t), None):
            if node != not_node:
                return at, node
        return None

    @staticmethod
    def _after(acks, t):
        """The index of the first acknowledgement after `t` (binary search: the tests poll this
        while thousands of acknowledgements pile up, on a machine the nodes need)."""
        lo, hi = 0, len(acks)
        while lo < hi:
            mid = (lo + hi) // 2
            if acks[mid][3] <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def total_acks(self):
        return sum(len(a) for a in self.acks.values())


class Clients:
    """One nats-py connection per server, so that requests enter the cluster everywhere."""

    def __init__(self, urls, namespace, ledger):
        self.urls = urls
        self.namespace = namespace
        self.ledger = ledger
        self.conns = []
        self.connection_errors = Counter()

    async def connect(self):
        import nats

        for i in range(len(self.urls)):
            order = self.urls[i:] + self.urls[:i]
            self.conns.append(await nats.connect(
                servers=order, dont_randomize=True, connect_timeout=2, allow_reconnect=True,
                max_reconnect_attempts=-1, reconnect_time_wait=0.2, name=f"faults-client-{i}",
                error_cb=self._connection_error))
        return self

    async def _connection_error(self, e):
        # nats-py prints each one by default; a server restart is what the `nats` test does, and
        # the requests it breaks are counted as errors already.
        self.connection_errors[type(e).__name__] += 1

    async def close(self):
        for nc in self.conns:
            try:
                await nc.close()
            except Exception:
                pass

    def subject(self, key, handler):
        return f"{self.namespace}.{KIND}.{key}.{handler}"

    async def request(self, conn, key, handler, body, timeout, subject=None):
        """The reply as (ok value, None) or (None, (error kind, applied))."""
        import nats.errors

        try:
            msg = await self.conns[conn].request(subject or self.subject(key, handler),
                                                 json.dumps(body).encode(), timeout=timeout)
        except nats.errors.NoRespondersError:
            return None, ("no_responders", False)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return None, ("client_timeout", None)
        except nats.errors.Error as e:  # connection trouble while a server restarts
            return None, (f"client_{type(e).__name__}", None)
        try:
            reply = json.loads(msg.data)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and "ok" in reply:
            return reply["ok"], None
        if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
            err = reply["error"]
            kind = str(err.get("kind", "unknown"))
            # One example of each kind of error, as evidence in the report.
            self.ledger.examples.setdefault(kind, msg.data[:300].decode(errors="replace"))
            return None, (kind, err.get("applied"))
        self.ledger.bad_replies.append((key, handler, msg.data[:200]))
        return None, ("bad_reply", None)

    async def append(self, conn, key, timeout=REQUEST_TIMEOUT):
        """One append of a new value; True when acknowledged."""
        value = self.ledger.new_value(key)
        sent = time.monotonic()
        ok, err = await self.request(conn, key, "append", {"value": value}, timeout)
        at = time.monotonic()
        if err is None:
            if (isinstance(ok, dict) and isinstance(ok.get("len"), int)
                    and isinstance(ok.get("node"), str)):
                self.ledger.ack(key, value, ok["len"], ok["node"], at, sent)
                return True
            self.ledger.bad_replies.append((key, "append", repr(ok)[:200]))
            err = ("bad_reply", None)
        self.ledger.error(key, value, err[0], err[1], at, sent)
        return False

    async def entries(self, key, deadline):
        """The key's final entries; retried until `deadline` (monotonic)."""
        last = None
        for attempt in itertools.count():
            ok, err = await self.request(attempt % len(self.conns), key, "entries", {},
                                         REQUEST_TIMEOUT)
            if err is None:
                if isinstance(ok, list) and all(isinstance(v, int) for v in ok):
                    return ok
                err = ("bad_reply", repr(ok)[:200])
            last = err
            if time.monotonic() > deadline:
                raise TestFailure(f"could not read the entries of {KIND}/{key}: last error {last}")
            await asyncio.sleep(ERROR_PAUSE)


class TellerClients(Clients):
    """Appends through the `teller` agents of the nodes, which call the ledger through a handle
    (`Ledger::get_or_start(key).append(value)`) wherever it lives: each append of a key goes
    through the next node's teller in turn, so most are calls from one node to another."""

    HANDLE_TIMEOUT = 8.0  # a handle retries until its own timeout (5 s) while its agent moves

    def __init__(self, swarm):
        super().__init__(swarm.nats.urls, swarm.namespace, swarm.ledger)
        self.conns = swarm.clients.conns
        self.names = [n.name for n in swarm.nodes]
        self.turn = Counter()
        self.remote = 0  # acknowledged by another node than the teller's

    async def append(self, conn, key, timeout=HANDLE_TIMEOUT, via=None):
        """One append through `via`'s teller, or else through the next node's in turn."""
        if via is None:
            via = self.names[self.turn[key] % len(self.names)]
            self.turn[key] += 1
        value = self.ledger.new_value(key)
        sent = time.monotonic()
        subject = f"{self.namespace}.via.{via}.teller.{key}.append"
        ok, err = await self.request(conn, key, "append", {"ledger": key, "value": value},
                                     timeout, subject=subject)
        at = time.monotonic()
        if err is None:
            if isinstance(ok, dict) and isinstance(ok.get("Ok"), dict):
                done = ok["Ok"]
                if isinstance(done.get("len"), int) and isinstance(done.get("node"), str):
                    self.ledger.ack(key, value, done["len"], done["node"], at, sent)
                    self.remote += done["node"] != via
                    return True
            if isinstance(ok, dict) and isinstance(ok.get("Err"), dict):
                failed = ok["Err"]
                kind = f"handle_{failed.get('kind')}"
                self.ledger.examples.setdefault(kind, json.dumps(failed)[:300])
                err = (kind, failed.get("applied"))
            else:
                self.ledger.bad_replies.append((key, "teller.append", repr(ok)[:200]))
                err = ("bad_reply", None)
        self.ledger.error(key, value, err[0], err[1], at, sent)
        return False

    async def control(self, via, key, op):
        subject = f"{self.namespace}.via.{via}.teller.{key}.control"
        return await self.request(0, key, "control", {"ledger": key, "op": op}, 8.0,
                                  subject=subject)


class Writers:
    """One writer per key, each appending one value at a time until stopped."""

    def __init__(self, clients, keys):
        self.clients = clients
        self.keys = keys
        self.stopping = asyncio.Event()
        self.tasks = []

    def start(self):
        for i, key in enumerate(self.keys):
            self.tasks.append(asyncio.create_task(self._write(i % len(self.clients.conns), key)))

    async def _write(self, conn, key):
        while not self.stopping.is_set():
            acked = await self.clients.append(conn, key)
            await asyncio.sleep(PACE if acked else ERROR_PAUSE)

    async def stop(self):
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    async def wait_all_acked(self, timeout):
        deadline = time.monotonic() + timeout
        ledger = self.clients.ledger
        while not all(ledger.acks[k] for k in self.keys):
            if time.monotonic() > deadline:
                missing = [k for k in self.keys if not ledger.acks[k]]
                raise TestFailure(f"no append acknowledged within {timeout:.0f}s for keys "
                                  f"{missing[:5]}{'...' if len(missing) > 5 else ''}; errors "
                                  f"seen: {dict(ledger.errors)}")
            await asyncio.sleep(0.05)


# --- the checker -----------------------------------------------------------------------------

async def check(clients, keys):
    """Reads every key's final state and checks it against the acknowledgements; returns the
    figures and the list of problems found."""
    deadline = time.monotonic() + READ_TIMEOUT
    finals = {}
    for key in keys:
        finals[key] = await clients.entries(key, deadline)
    return judge(clients.ledger, finals)


def judge(ledger, finals):
    """The checker proper: `finals` maps each key to its final entries."""
    problems = []
    figures = Counter()
    for key, entries in finals.items():
        acks = ledger.acks[key]
        figures["acked"] += len(acks)
        lost = [(v, n) for v, n, _, _ in acks if n < 1 or n > len(entries) or entries[n - 1] != v]
        figures["lost"] += len(lost)
        by_len = defaultdict(set)
        for v, n, _, _ in acks:
            by_len[n].add(v)
        conflicting = {n: sorted(vs) for n, vs in by_len.items() if len(vs) > 1}
        figures["conflicting"] += len(conflicting)
        duplicates = [v for v, c in Counter(entries).items() if c > 1]
        strangers = [v for v in entries if ledger.sent.get(v) != key]
        refused = [(v, ledger.refused[v]) for v in entries if v in ledger.refused]
        figures["duplicates"] += len(duplicates)
        figures["strangers"] += len(strangers)
        figures["refused_applied"] += len(refused)
        figures["entries"] += len(entries)
        where = f"{KIND}/{key}"
        if lost:
            problems.append(f"{where}: {len(lost)} acknowledged appends not at their position, "
                            f"e.g. (value, len) {lost[:3]}; {len(entries)} entries")
        if conflicting:
            problems.append(f"{where}: one len acknowledged for different values (two owners "
                            f"writing?): {dict(list(conflicting.items())[:3])}")
        if duplicates:
            problems.append(f"{where}: values twice in the state: {duplicates[:5]}")
        if strangers:
            problems.append(f"{where}: values never sent for this key in the state: "
                            f"{strangers[:5]}")
        if refused:
            problems.append(f"{where}: appends refused outright are in the state: {refused[:5]}")
    if ledger.bad_replies:
        problems.append(f"{len(ledger.bad_replies)} replies not in the documented JSON form, "
                        f"e.g. {ledger.bad_replies[:2]}")
    return figures, problems


def checker_self_test():
    """The checker against histories with one known fault each, so that a run whose checker
    could not fail is not taken for a pass. Returns the problems (empty when it works)."""

    def history(entries, acks, refused=()):
        ledger = Ledger()
        for value in range(1, 10):
            ledger.sent[value] = "k"
        ledger.sent[99] = "other"
        for value, length in acks:
            ledger.ack("k", value, length, "node0", 0.0)
        for value in refused:
            ledger.error("k", value, "moved", False, 0.0, 0.0)
        return judge(ledger, {"k": entries})[0]

    cases = {
        "a correct history": (history([1, 2, 3], [(1, 1), (3, 3)]), set()),
        "a lost acknowledged append": (history([1, 3], [(1, 1), (2, 2)]), {"lost"}),
        # The second owner's append overwrote the first one's: both faults show.
        "two owners handing out one len": (history([1, 3], [(1, 1), (2, 2), (3, 2)]),
                                           {"conflicting", "lost"}),
        "a value twice in the state": (history([1, 2, 1], [(1, 1)]), {"duplicates"}),
        "a value of another key": (history([1, 99], [(1, 1)]), {"strangers"}),
        "a refused append applied": (history([1, 2], [(1, 1)], refused=[2]),
                                     {"refused_applied"}),
    }
    problems = []
    faults = ("lost", "conflicting", "duplicates", "strangers", "refused_applied")
    for name, (figures, expected) in cases.items():
        found = {f for f in faults if figures[f]}
        if found != expected:
            problems.append(f"checker self-test, {name}: found {sorted(found) or 'nothing'}")
    return problems


# --- one cluster per test --------------------------------------------------------------------

class Swarm:
    """A fresh NATS cluster and `n` nodes in a fresh namespace, in a temporary directory."""

    def __init__(self, wasm, test, ttl_ms, n=3, replicas=3, node_env=None):
        self.wasm = wasm
        self.ttl_ms = ttl_ms
        self.namespace = f"{test}{random.randrange(16**6):06x}"
        self.dir = tempfile.mkdtemp(prefix=f"swarm-faults-{test}-")
        self.nats = cluster.NatsCluster(3, jetstream=True, base_dir=os.path.join(self.dir, "nats"))
        self.nodes = []
        for i in range(n):
            name = f"node{i}"
            # Node i lists server i first, so that (if it takes the first URL) the nodes sit on
            # different servers and each client connection's requests enter a different node.
            urls = self.nats.urls[i % 3:] + self.nats.urls[:i % 3]
            env = cluster.node_env(urls, self.namespace, name, ttl_ms, replicas)
            env.update((node_env or {}).get(name, {}))
            self.nodes.append(cluster.Node(name, wasm, env, cwd=self.dir,
                                           log_path=os.path.join(self.dir, "logs", f"{name}.log")))
        self.down = set()  # nodes this test killed or drained
        self.ledger = Ledger()
        self.clients = Clients(self.nats.urls, self.namespace, self.ledger)

    async def start(self):
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            await node.wait_ready_async()
        await self.clients.connect()

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise TestFailure(f"an acknowledgement names node {name!r}, which this test did not "
                          f"start ({[n.name for n in self.nodes]})")

    def expect_down(self, node):
        self.down.add(node.name)

    def unexpected_exits(self):
        """Nodes that ended although the test did not kill or drain them."""
        return [f"node {n.name} exited with {n.proc.returncode} by itself; {n.describe()}"
                for n in self.nodes
                if n.name not in self.down and n.proc is not None and n.proc.poll() is not None]

    def respawn(self, node):
        """Starts a new process for `node` (its `ready` line is the caller's to wait for)."""
        self.down.discard(node.name)
        node.spawn()

    def keys_of(self, name, keys):
        return [k for k in keys if self.ledger.owner(k) == name]

    def node_lines(self, pattern):
        return sum(node.count(pattern) for node in self.nodes)

    def node_summary(self):
        return (f"node lines: fenced {self.node_lines(r'^swarm-cluster-node fenced ')}, "
                f"stale-write-refused {self.node_lines(r'^swarm-cluster-node stale-write-refused ')}, "
                f"rejoined {self.node_lines(r'^swarm-cluster-node rejoined ')}")

    async def close(self, keep):
        await self.clients.close()
        for node in self.nodes:
            if node.running():
                try:
                    node.sigcont()
                except RuntimeError:
                    pass
                node.stop(timeout=5)
        await asyncio.to_thread(self.nats.close)
        if keep:
            print(f"  (logs kept in {self.dir})")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def errors_text(counter):
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


def verdict(figures):
    return (f"{figures['acked']} appends acked, {figures['lost']} lost, "
            f"{figures['conflicting']} conflicting lens")


# --- the tests -------------------------------------------------------------------------------

async def wait_acked_elsewhere(ledger, keys, since, not_node, bound, after=0.0):
    """Waits (at most `bound` s from `since`) until each key has an append acknowledged by
    another node than `not_node`, sent `after` s past `since` or later: the seconds from `since`
    to each, and the keys still waiting."""
    times, waiting = [], set(keys)
    while waiting and time.monotonic() - since < bound:
        for key in list(waiting):
            found = ledger.first_ack_after(key, since + after, not_node=not_node)
            if found:
                waiting.discard(key)
                times.append(found[0] - since)
        await asyncio.sleep(0.02)
    return times, waiting


async def append_first(swarm, keys, through=None):
    """One acknowledged append to each key (its activation), retried a little; each key enters
    through connection `through`, or through the servers in turn. The keys never acknowledged."""
    missing = []
    for i, key in enumerate(keys):
        for _ in range(20):
            conn = i % len(swarm.clients.conns) if through is None else through
            if await swarm.clients.append(conn, key, timeout=5):
                break
            await asyncio.sleep(0.1)
        else:
            missing.append(key)
    return missing


async def test_kill(swarm, opts):
    keys = [f"k{i:02d}" for i in range(opts.keys)]
    writers = Writers(swarm.clients, keys)
    writers.start()
    problems = []
    unavailability, ready = [], []
    try:
        await writers.wait_all_acked(30)
        for kill_no in range(opts.kills):
            owned = {n.name: swarm.keys_of(n.name, keys) for n in swarm.nodes if n.running()}
            candidates = [name for name, ks in owned.items() if ks]
            if not candidates:
                raise TestFailure(f"kill {kill_no + 1}: no running node owns a key; owners "
                                  f"{ {k: swarm.ledger.owner(k) for k in keys} }")
            victim = swarm.node(opts.rng.choice(candidates))
            moved = owned[victim.name]
            killed_at = time.monotonic()
            swarm.expect_down(victim)
            victim.kill()
            # Requests sent from here on cannot reach the killed process.
            kill_done = time.monotonic()
            # Its replacement starts at once, as a supervisor would start it: a new incarnation,
            # which must not get the old one's keys back before they failed over.
            swarm.respawn(victim)
            bound = 3 * swarm.ttl_ms / 1000 + 10
            waiting = set(moved)
            while waiting and time.monotonic() - killed_at < bound:
                for key in list(waiting):
                    found = swarm.ledger.first_ack_after(key, killed_at)
                    if found:
                        at, node = found
                        waiting.discard(key)
                        unavailability.append(at - killed_at)
                await asyncio.sleep(0.02)
            # By the killed node's name, for a request sent after the kill: only its replacement
            # may answer that, and only once the old incarnation's lease has run out, at the
            # earliest TTL - (renewal interval, TTL / 3) after the kill; half the TTL is sure.
            # (By the send time: a reply the killed node sent just before the kill may be read
            # late on a busy machine. Not by the replacement's ready line: it serves ledgers a
            # moment before it prints it.)
            too_soon = kill_done + swarm.ttl_ms / 1000 / 2
            for key in moved:
                for value, _, node, at in swarm.ledger.acks[key]:
                    if (node == victim.name and swarm.ledger.sent_at.get(value, 0) > kill_done
                            and at < too_soon):
                        problems.append(f"kill {kill_no + 1}: {KIND}/{key} acknowledged by "
                                        f"{node} {at - killed_at:.2f}s after it was killed, "
                                        "before its lease could have run out")
            if waiting:
                problems.append(f"kill {kill_no + 1}: keys of {victim.name} still unavailable "
                                f"{bound:.0f}s after the kill: {sorted(waiting)}")
            await victim.wait_ready_async()
            ready.append(victim.ready_after)
            await asyncio.sleep(opts.settle)
    finally:
        await writers.stop()
    await asyncio.sleep(1.0)
    figures, found = await check(swarm.clients, keys)
    problems += found
    ttl = swarm.ttl_ms / 1000
    line = (f"kill: {opts.kills} SIGKILLs at TTL {swarm.ttl_ms} ms, {len(unavailability)} keys "
            f"moved; unavailability {seconds(unavailability)} (goal p99 <= {ttl + 1:.0f} s); "
            f"replacement node ready after {seconds(ready)}; {verdict(figures)}; client "
            f"errors: {errors_text(swarm.ledger.errors)}; {swarm.node_summary()}")
    return line, problems, {"unavailability": unavailability}


async def test_stop(swarm, opts):
    keys = [f"k{i:02d}" for i in range(opts.keys)]
    writers = Writers(swarm.clients, keys)
    writers.start()
    problems = []
    ttl = swarm.ttl_ms / 1000
    try:
        await writers.wait_all_acked(30)
        await asyncio.sleep(opts.settle)
        owned = {n.name: swarm.keys_of(n.name, keys) for n in swarm.nodes}
        victim = swarm.node(max(owned, key=lambda name: len(owned[name])))
        moved = owned[victim.name]
        if not moved:
            raise TestFailure(f"no node owns a key: {owned}")
        index, err_index = len(victim.lines), len(victim.err_lines)
        stopped_at = time.monotonic()
        victim.sigstop()
        await asyncio.sleep(2 * ttl)
        continued_at = time.monotonic()
        victim.sigcont()
        fenced = await victim.wait_line_async(r"^swarm-cluster-node fenced .*", 2 * ttl + 10,
                                              index)
        rejoined = await victim.wait_line_async(r"^swarm-cluster-node rejoined ", 2 * ttl + 10,
                                                index)
        await asyncio.sleep(max(opts.settle, 2.0))
    finally:
        await writers.stop()
    await asyncio.sleep(1.0)
    figures, found = await check(swarm.clients, keys)
    problems += found
    refused = victim.count(r"^swarm-cluster-node stale-write-refused ", index)
    # The runtime's own diagnostic for the same event, on stderr (counted apart: the test's
    # protocol is the stdout line).
    refused_stderr = victim.count(r"stale-write-refused", err_index, stderr=True)
    # Takeover: the pause -> the key's first acknowledged append by anyone (the paused node
    # itself only counts once it came back as a new incarnation, checked below).
    takeover, elsewhere = [], 0
    for key in moved:
        first = swarm.ledger.first_ack_after(key, stopped_at + 0.2)
        if first:
            takeover.append(first[0] - stopped_at)
            elsewhere += first[1] != victim.name
    if len(takeover) < len(moved):
        problems.append(f"{len(moved) - len(takeover)} of the paused node's {len(moved)} keys "
                        "were never written again")
    fenced_at = fenced[0] if fenced else None
    if not fenced:
        problems.append(f"{victim.name} did not print a `fenced` line within {2 * ttl + 10:.0f}s "
                        f"after SIGCONT; {victim.describe()}")
    # Between its pause and its fencing, the paused node must not acknowledge any write sent
    # while it was paused: its lease deadline passed while it was stopped. (By the send time: a
    # write it took just before the stop may be answered after SIGCONT.)
    window_end = fenced_at if fenced_at else time.monotonic()
    stale_acks = [(k, v, n) for k in keys for v, n, node, at in swarm.ledger.acks[k]
                  if node == victim.name and swarm.ledger.sent_at.get(v, 0) > stopped_at
                  and at < window_end]
    if stale_acks:
        problems.append(f"{victim.name} acknowledged {len(stale_acks)} appends after its lease "
                        f"deadline, before fencing: {stale_acks[:5]}")
    reason = fenced[1].group(0).partition("reason=")[2] if fenced else "none"
    line = (f"stop: {victim.name} SIGSTOPped {2 * ttl:.0f} s at TTL {swarm.ttl_ms} ms, owning "
            f"{len(moved)} keys; takeover ({elsewhere} by other nodes) {seconds(takeover)}; its "
            f"stale writes refused: {refused} (stderr lines saying so: {refused_stderr}); "
            f"fenced ({reason}) "
            f"{f'{fenced_at - continued_at:.2f} s after SIGCONT' if fenced else ''}; rejoined: "
            f"{f'{rejoined[0] - continued_at:.2f} s after SIGCONT' if rejoined else 'no'}; "
            f"acks after its deadline: {len(stale_acks)}; {verdict(figures)}; client "
            f"errors: {errors_text(swarm.ledger.errors)}")
    return line, problems, {"refused": refused}


async def test_drain(swarm, opts):
    keys = [f"k{i:02d}" for i in range(opts.keys)]
    writers = Writers(swarm.clients, keys)
    writers.start()
    problems = []
    try:
        await writers.wait_all_acked(30)
        await asyncio.sleep(opts.settle)
        owned = {n.name: swarm.keys_of(n.name, keys) for n in swarm.nodes}
        victim = swarm.node(max(owned, key=lambda name: len(owned[name])))
        moved = owned[victim.name]
        if not moved:
            raise TestFailure(f"no node owns a key: {owned}")
        errors_before = len(swarm.ledger.error_log)
        drain_sent = time.monotonic()
        try:
            swarm.expect_down(victim)
            reply, replied, exited = await victim.drain_async(nc=swarm.clients.conns[0])
        except Exception as e:
            raise TestFailure(f"drain of {victim.name}: {e}")
        drained = victim.find(r"^swarm-cluster-node drained .*ms=(\d+)")
        handover, waiting = await wait_acked_elsewhere(swarm.ledger, moved, drain_sent,
                                                       victim.name, 10)
        if waiting:
            problems.append(f"keys of the drained node not served elsewhere within 10s: "
                            f"{sorted(waiting)}")
        done = time.monotonic()
        await asyncio.sleep(opts.settle)
    finally:
        await writers.stop()
    failed = [(kind, sent - drain_sent) for at, key, kind, sent in
              swarm.ledger.error_log[errors_before:] if key in moved and at <= done]
    errors = Counter(kind for kind, _ in failed)
    # When the failed requests were sent, relative to the drain request: evidence of which
    # moment of the drain loses them.
    when = ", ".join(f"{kind} {offset * 1000:+.0f} ms" for kind, offset in failed[:8])
    await asyncio.sleep(1.0)
    figures, found = await check(swarm.clients, keys)
    problems += found
    line = (f"drain: {victim.name} drained under load owning {len(moved)} keys; reply in "
            f"{replied * 1000:.0f} ms ({reply[:80].decode(errors='replace')!r}), exit after "
            f"{exited * 1000:.0f} ms, node says ms={drained[1].group(1) if drained else '?'}; "
            f"handover {seconds(handover)} (goal < 1 s); client errors on its keys during the "
            f"handover: {errors_text(errors)}{f' (sent at {when})' if when else ''}; "
            f"{verdict(figures)}")
    return line, problems, {"handover": handover}


async def test_nats(swarm, opts):
    keys = [f"k{i:02d}" for i in range(opts.keys)]
    writers = Writers(swarm.clients, keys)
    writers.start()
    problems = []
    stream = f"KV_SWARM_STATE_{swarm.namespace}"
    resumed = {}
    try:
        await writers.wait_all_acked(30)
        await asyncio.sleep(opts.settle)

        async def resumed_after(what, t):
            """Seconds from `t` until every key has an acknowledged append after it."""
            while time.monotonic() - t < 3 * swarm.ttl_ms / 1000 + 20:
                firsts = [swarm.ledger.first_ack_after(k, t) for k in keys]
                if all(firsts):
                    resumed[what] = max(at for at, _ in firsts) - t
                    return
                await asyncio.sleep(0.05)
            problems.append(f"after {what}: keys without an acknowledged append for "
                            f"{3 * swarm.ttl_ms / 1000 + 20:.0f}s")

        victim = opts.rng.randrange(3)
        t = time.monotonic()
        await asyncio.to_thread(swarm.nats.stop, victim)
        swarm.nats.start(victim, wait=False)  # spawned here: it dies with this program
        await asyncio.to_thread(swarm.nats.wait_rejoined, victim)
        restart_s = time.monotonic() - t
        await resumed_after("the server restart", t)
        await asyncio.sleep(opts.settle)

        try:
            leader = await swarm.nats.leader_of_stream_async(stream)
        except Exception as e:
            names = await streams(swarm)
            raise TestFailure(f"no leader for {stream} ({e}); the streams are {names}")
        t = time.monotonic()
        swarm.nats.kill(leader)
        await asyncio.sleep(2.0)
        swarm.nats.start(leader, wait=False)
        await asyncio.to_thread(swarm.nats.wait_rejoined, leader)
        leader_s = time.monotonic() - t
        await resumed_after("the leader kill", t)
        await asyncio.sleep(opts.settle)
    finally:
        await writers.stop()
    await asyncio.sleep(1.0)
    figures, found = await check(swarm.clients, keys)
    problems += found
    line = (f"nats: restarted {swarm.nats.servers[victim].name} ({restart_s:.1f} s to rejoin), "
            f"every key written again {resumed.get('the server restart', float('nan')):.2f} s "
            f"after the stop; killed {stream}'s leader {swarm.nats.servers[leader].name}, back "
            f"after {leader_s:.1f} s, every key written again "
            f"{resumed.get('the leader kill', float('nan')):.2f} s after the kill (TTL "
            f"{swarm.ttl_ms} ms); {verdict(figures)}; client errors: "
            f"{errors_text(swarm.ledger.errors)}; {swarm.node_summary()}")
    return line, problems, {}


async def streams(swarm):
    try:
        reply = await cluster.nats_request(swarm.nats.urls, "$JS.API.STREAM.NAMES", b"{}")
        return json.loads(reply).get("streams")
    except Exception as e:
        return f"(could not list them: {e})"


async def test_storm(swarm, opts):
    key = f"storm{random.randrange(16**6):06x}"
    ledger = swarm.ledger
    clients = swarm.clients
    deadline = time.monotonic() + 60
    started = time.monotonic()
    latencies = []

    async def first_request(i):
        while time.monotonic() < deadline:
            t = time.monotonic()
            if await clients.append(i % 3, key, timeout=20):
                latencies.append(time.monotonic() - t)
                return True
            await asyncio.sleep(opts.rng.uniform(0.05, 0.2))
        return False

    results = await asyncio.gather(*(first_request(i) for i in range(opts.storm)))
    took = time.monotonic() - started
    problems = []
    figures, found = await check(clients, [key])
    problems += found
    acks = ledger.acks[key]
    nodes = Counter(node for _, _, node, _ in acks)
    lens = sorted(n for _, n, _, _ in acks)
    if not all(results):
        problems.append(f"{results.count(False)} of {opts.storm} requests never acknowledged "
                        f"within 60 s; errors {errors_text(ledger.errors)}")
    if len(nodes) > 1:
        problems.append(f"acknowledged by {len(nodes)} nodes (two activations?): {dict(nodes)}")
    extra = figures["entries"] - len(acks)
    # Each acknowledged once, at its own len. Not necessarily 1..storm: an append whose answer
    # was lost (a client timeout) may be in the state, and its retry then comes after it.
    if len(acks) != opts.storm or len(set(lens)) != len(lens):
        problems.append(f"lens are not {opts.storm} distinct ones: {len(set(lens))} distinct, "
                        f"from {lens[:1]} to {lens[-1:]}; {extra} appends that were answered "
                        f"with an error are in the state; errors: {errors_text(ledger.errors)}, "
                        f"e.g. {ledger.examples}")
    line = (f"storm: {opts.storm} concurrent first appends to {KIND}/{key} over 3 servers: "
            f"{len(acks)} acked in {took:.1f} s by {dict(nodes)}, lens {lens[0] if lens else '-'}"
            f"..{lens[-1] if lens else '-'} ({len(set(lens))} distinct; {extra} unacknowledged "
            f"appends in the state), latency "
            f"{seconds(latencies)}; {verdict(figures)}; client errors: "
            f"{errors_text(ledger.errors)}")
    return line, problems, {}


async def test_placement(swarm, opts):
    """node0 holds at most 2 agents (SWARM_MAX_AGENTS=2) and is the only front door (the other
    nodes serve their node subjects only): the first requests for 8 new keys all reach node0,
    which starts the first two itself and places the others on the other nodes once it is full.
    (With every node a front door, nats-server hands each request to a random member of the
    queue group, on any server, so which node gets a request is chance.)"""
    keys = [f"p{i}" for i in range(8)]
    problems = [f"{key} was never acknowledged: {errors_text(swarm.ledger.errors)}"
                for key in await append_first(swarm, keys)]
    owners = {key: {node for _, _, node, _ in swarm.ledger.acks[key]} for key in keys}
    per_node = Counter(node for nodes in owners.values() for node in nodes)
    if any(len(nodes) != 1 for nodes in owners.values()):
        problems.append(f"a key acknowledged by several nodes: {owners}")
    if [key for key in keys if owners[key] == {"node0"}] != keys[:2]:
        problems.append(f"node0, which got every first request, did not start exactly the first "
                        f"two keys itself (its limit is 2): {owners}")
    if set(per_node) - {"node0"} != {"node1", "node2"}:
        problems.append(f"the keys node0 had no room for all went to one node, not to the least "
                        f"loaded one each time: {owners}")
    figures, found = await check(swarm.clients, keys)
    problems += found
    line = (f"placement: 8 new keys through node0, the only front door (max 2 agents): held by {dict(per_node)}; "
            f"{verdict(figures)}; client errors: {errors_text(swarm.ledger.errors)}")
    return line, problems, {}


async def test_handles(swarm, opts):
    """Handles across nodes: the ledgers are placed through the front door, then every append
    goes through a teller agent on one node after the other, which calls the ledger through the
    handle it keeps (`Ledger::get_or_start`), wherever the ledger lives. Then the node holding
    most ledgers is SIGKILLed (not restarted) under that load: the tellers' handles must follow
    their ledgers to the new owners, losing nothing. Last, a teller stops and kills a ledger on
    another node through its handle (`shutdown`, `kill`, `is_alive`)."""
    keys = [f"h{i:02d}" for i in range(opts.keys)]
    problems = [f"{key} was never acknowledged: {errors_text(swarm.ledger.errors)}"
                for key in await append_first(swarm, keys)]
    tellers = TellerClients(swarm)
    writers = Writers(tellers, keys)
    writers.start()
    unavailability, moved = [], []
    try:
        await writers.wait_all_acked(30)
        before = swarm.ledger.total_acks()
        while swarm.ledger.total_acks() < before + 3 * len(keys):
            await asyncio.sleep(0.05)
        owned = {n.name: swarm.keys_of(n.name, keys) for n in swarm.nodes}
        victim = swarm.node(max(owned, key=lambda name: len(owned[name])))
        moved = owned[victim.name]
        killed_at = time.monotonic()
        swarm.expect_down(victim)
        victim.kill()
        bound = 3 * swarm.ttl_ms / 1000 + 10
        unavailability, waiting = await wait_acked_elsewhere(swarm.ledger, moved, killed_at,
                                                             victim.name, bound, after=0.2)
        if waiting:
            problems.append(f"keys of {victim.name} not reached through handles "
                            f"{bound:.0f}s after the kill: {sorted(waiting)}")
        await asyncio.sleep(opts.settle)
    finally:
        await writers.stop()
    if tellers.remote == 0:
        problems.append("no append was served by another node than its teller's: the handles "
                        "never crossed nodes")
    # Control through a handle, from one surviving node to a ledger on the other.
    alive_nodes = [n.name for n in swarm.nodes if n.name != victim.name]
    control = "no key on a surviving node"
    for key in keys:
        owner = swarm.ledger.owner(key)
        if owner in alive_nodes:
            via = next(name for name in alive_nodes if name != owner)
            steps = [await tellers.control(via, key, op)
                     for op in ("alive", "shutdown", "alive")]
            logged = len(swarm.ledger.error_log)
            # Through a surviving node's teller: the next in turn may be the killed node.
            appended = await tellers.append(0, key, via=via)
            append_errors = [kind for _, _, kind, _ in swarm.ledger.error_log[logged:]]
            steps.append(await tellers.control(via, key, "kill"))
            expected = [([True, None], None), ([True, None], None), ([False, None], None)]
            got = [(step[0].get("Ok") if isinstance(step[0], dict) else step[0], step[1])
                   for step in steps]
            if got[:3] != expected or not appended or got[3] != ([True, None], None):
                problems.append(f"control of {KIND}/{key} on {owner} from {via}'s teller: "
                                f"alive, shutdown, alive, append, kill gave {got} "
                                f"(append acknowledged: {appended}, errors {append_errors})")
            control = f"{key} on {owner} from {via}: alive, shutdown, alive, kill as expected"
            break
    figures, found = await check(swarm.clients, keys)
    problems += found
    line = (f"handles: {len(keys)} ledgers called through tellers' handles on every node, "
            f"{tellers.remote} acks from another node than the caller's; {victim.name} SIGKILLed "
            f"with {len(moved)} ledgers, reached again through the same handles after "
            f"{seconds(unavailability)}; control: {control}; {verdict(figures)}; client errors: "
            f"{errors_text(swarm.ledger.errors)}")
    return line, problems, {"unavailability": unavailability}


async def wait_activated_elsewhere(kv, keys, away_from, since, bound):
    """Polls the DIR bucket until each key's directory entry names another node than
    `away_from`: {key: seconds from `since`}, and how many landed on each node."""
    import nats.js.errors

    back, where = {}, Counter()
    while len(back) < len(keys) and time.monotonic() - since < bound:
        for key in keys:
            if key in back:
                continue
            try:
                entry = json.loads((await kv.get(f"{KIND}/{key}")).value)
            except (nats.js.errors.KeyNotFoundError, ValueError):
                continue
            node = str(entry.get("node", "")).rsplit("-", 1)[0]
            if node and node != away_from:
                back[key] = time.monotonic() - since
                where[node] += 1
        await asyncio.sleep(0.05)
    return back, where


async def test_stayup(swarm, opts):
    """Agents kept up (SWARM_STAY_UP=1, `ServeOptions::stay_up`): one append to each of 12
    ledgers, then the node holding most of them is SIGKILLed and nothing more is sent. Each of
    its ledgers must be activated on a surviving node by itself: its directory entry (read from
    the DIR bucket with nats-py) names a survivor, and a `kept-up` line says which. Then the
    survivor holding most ledgers is drained: its ledgers must be active on the last node, again
    with no request. Last, every acknowledged append is checked."""
    keys = [f"u{i:02d}" for i in range(opts.keys)]
    problems = [f"{key} was never acknowledged: {errors_text(swarm.ledger.errors)}"
                for key in await append_first(swarm, keys)]
    owned = {n.name: swarm.keys_of(n.name, keys) for n in swarm.nodes}
    victim = swarm.node(max(owned, key=lambda name: len(owned[name])))
    moved = owned[victim.name]
    if not moved:
        raise TestFailure(f"no node owns a key: {owned}")
    kv = await swarm.clients.conns[1].jetstream().key_value(f"SWARM_DIR_{swarm.namespace}")
    lines_before = {n.name: len(n.lines) for n in swarm.nodes}
    killed_at = time.monotonic()
    swarm.expect_down(victim)
    victim.kill()
    bound = 3 * swarm.ttl_ms / 1000 + 10
    back, where = await wait_activated_elsewhere(kv, moved, victim.name, killed_at, bound)
    if len(back) < len(moved):
        problems.append(f"ledgers of {victim.name} not activated elsewhere {bound:.0f}s after "
                        f"the kill, with no request: {sorted(set(moved) - set(back))}")
    kept_up = sum(n.count(r"^swarm-cluster-node kept-up ", lines_before[n.name])
                  for n in swarm.nodes if n is not victim)
    if kept_up < len(back):
        problems.append(f"{len(back)} ledgers moved but the survivors printed {kept_up} "
                        "kept-up lines")

    # A drain: the drained node's ledgers go to the last node at once, with no request.
    survivors = [n for n in swarm.nodes if n is not victim]
    entries = {}
    for key in keys:
        try:
            entries[key] = json.loads((await kv.get(f"{KIND}/{key}")).value)
        except Exception:
            pass
    held = {n.name: [k for k, e in entries.items()
                     if str(e.get("node", "")).rsplit("-", 1)[0] == n.name] for n in survivors}
    drained = swarm.node(max(held, key=lambda name: len(held[name])))
    drain_sent = time.monotonic()
    swarm.expect_down(drained)
    # Watched while the drain runs (`drain_async` returns once the node has exited).
    drain = asyncio.create_task(drained.drain_async(nc=swarm.clients.conns[0]))
    handed, _ = await wait_activated_elsewhere(kv, held[drained.name], drained.name, drain_sent,
                                               10)
    try:
        _, replied, _ = await drain
    except Exception as e:
        raise TestFailure(f"drain of {drained.name}: {e}")
    if len(handed) < len(held[drained.name]):
        problems.append(f"ledgers of the drained {drained.name} not active elsewhere 10 s after "
                        f"the drain request: {sorted(set(held[drained.name]) - set(handed))}")
    figures, found = await check(swarm.clients, keys)
    problems += found
    ttl = swarm.ttl_ms / 1000
    line = (f"stayup: {victim.name} SIGKILLed with {len(moved)} kept-up ledgers; active again "
            f"without a request on {dict(where)} after {seconds(list(back.values()))} "
            f"(lease TTL {ttl:.0f} s); {drained.name} drained with {len(held[drained.name])}: "
            f"active on the last node after {seconds(list(handed.values()))} from the drain "
            f"request (the drain's reply after {replied:.2f} s); {verdict(figures)}")
    return line, problems, {"takeover": list(back.values()), "handover": list(handed.values())}


async def test_jetstream(opts):
    """The NATS cluster alone (no node): what the other tests stand on. An R3 KV bucket is
    created and written, a stale compare-and-set is refused, the stream leader is SIGKILLed,
    writes go on under the new leader, and the restarted server catches up."""
    import nats
    from nats.js.errors import KeyWrongLastSequenceError

    problems = []
    base = tempfile.mkdtemp(prefix="swarm-faults-jetstream-")
    nats_cluster = nc = None
    try:
        began = time.monotonic()
        nats_cluster = cluster.NatsCluster(3, jetstream=True, base_dir=os.path.join(base, "nats"))
        up = time.monotonic() - began
        nc = await nats.connect(servers=nats_cluster.urls, connect_timeout=2,
                                max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                error_cb=cluster._quiet)
        js = nc.jetstream(timeout=5)
        bucket, keys = "SWARM_STATE_jstest", [f"ledger.k{i:02d}" for i in range(50)]
        stream = f"KV_{bucket}"
        kv = await js.create_key_value(bucket=bucket, replicas=3, history=1)
        revisions = {key: await kv.create(key, b"1") for key in keys}
        fresh = await kv.update(keys[0], b"2", last=revisions[keys[0]])
        try:
            await kv.update(keys[0], b"stale", last=revisions[keys[0]])
            problems.append(f"a compare-and-set at the old revision {revisions[keys[0]]} was "
                            f"accepted after revision {fresh}")
        except KeyWrongLastSequenceError:
            pass
        writes = len(keys) + 1

        leader = await nats_cluster.leader_of_stream_async(stream)
        killed_at = time.monotonic()
        nats_cluster.kill(leader)
        new_leader = None
        while new_leader is None and time.monotonic() - killed_at < 30:
            try:
                found = await nats_cluster.leader_of_stream_async(stream, timeout=1.0)
                new_leader = found if found != leader else None
            except Exception:  # no leader yet: the request times out or names none
                pass
        election = time.monotonic() - killed_at
        if new_leader is None:
            raise TestFailure(f"{stream} had no new leader 30 s after its leader was killed")
        for key in keys:
            entry = await kv.get(key)
            await kv.update(key, b"3", last=entry.revision)
        writes += len(keys)

        restarted_at = time.monotonic()
        nats_cluster.start(leader, wait=False)  # spawned here: it dies with this program
        await asyncio.to_thread(nats_cluster.wait_rejoined, leader)
        rejoin = time.monotonic() - restarted_at
        info = await nats_cluster.stream_info(stream)
        state = info.get("state", {})
        if state.get("last_seq") != writes or state.get("messages") != len(keys):
            problems.append(f"{stream} holds {state.get('messages')} messages up to sequence "
                            f"{state.get('last_seq')}, not {len(keys)} up to {writes}")
        values = {key: (await kv.get(key)).value for key in keys}
        wrong = {k: v for k, v in values.items() if v != b"3"}
        if wrong:
            problems.append(f"keys without their last write after the leader kill: {wrong}")
        names = [s.name for s in nats_cluster.servers]
        line = (f"jetstream: 3 servers up in {up:.1f} s; R3 bucket written ({writes} writes, a "
                f"stale compare-and-set refused); leader {names[leader]} SIGKILLed, "
                f"{names[new_leader]} led after {election:.1f} s and took {len(keys)} "
                f"compare-and-sets; {names[leader]} restarted and caught up in {rejoin:.1f} s; "
                f"{len(wrong)} writes lost")
    finally:
        if nc is not None:
            await nc.close()
        if nats_cluster is not None:
            await asyncio.to_thread(nats_cluster.close)
        shutil.rmtree(base, ignore_errors=True)
    return line, problems


async def run_jetstream(opts):
    began = time.monotonic()
    line, problems = "jetstream: stopped", []
    try:
        line, problems = await asyncio.wait_for(test_jetstream(opts), 120)
    except asyncio.TimeoutError:
        problems.append("over its time limit of 120s")
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
    print(f"{line}; {time.monotonic() - began:.0f} s" + ("" if problems else "; ok"), flush=True)
    for p in problems:
        print(f"  FAILED jetstream: {p}", flush=True)
    return not problems


# Tests with nodes: (test, lease TTL in ms, time limit in s).
TESTS = {
    "kill": (test_kill, 3000, 240),
    "stop": (test_stop, 3000, 90),
    "drain": (test_drain, 10000, 90),
    "nats": (test_nats, 10000, 150),
    "storm": (test_storm, 10000, 120),
    "placement": (test_placement, 10000, 60),
    "handles": (test_handles, 3000, 120),
    "stayup": (test_stayup, 3000, 90),
}
# Environment per node for the tests that need it.
NODE_ENV = {
    "placement": {"node0": {"SWARM_MAX_AGENTS": "2"},
                  "node1": {"SWARM_FRONT_DOOR": "0"}, "node2": {"SWARM_FRONT_DOOR": "0"}},
    "stayup": {f"node{i}": {"SWARM_STAY_UP": "1"} for i in range(3)},
}


async def run_test(name, wasm, opts, ttl_ms=None, limit=None):
    fn, default_ttl, default_limit = TESTS[name]
    limit = limit or default_limit
    swarm = None
    problems, line, extra = [], None, {}
    began = time.monotonic()
    try:
        swarm = Swarm(wasm, name, ttl_ms or default_ttl, node_env=NODE_ENV.get(name))
        await asyncio.wait_for(swarm.start(), 90)
        line, found, extra = await asyncio.wait_for(fn(swarm, opts), limit)
        problems += found
        problems += swarm.unexpected_exits()
    except asyncio.TimeoutError:
        problems.append(f"over its time limit of {limit:.0f}s")
    except Exception as e:  # a failed test; the next one still runs
        problems.append(f"{type(e).__name__}: {e}")
    if line is None:
        line = f"{name}: stopped" + (f" ({swarm.node_summary()})" if swarm else "")
        if swarm is not None:
            problems += swarm.unexpected_exits()
    line += f"; {time.monotonic() - began:.0f} s"
    if swarm is not None:
        await swarm.close(keep=bool(problems) and opts.keep_failed)
    print(line + ("" if problems else "; ok"), flush=True)
    if swarm is not None and swarm.ledger.examples:
        print(f"  {name}: one reply of each error kind: "
              f"{' '.join(swarm.ledger.examples.values())}", flush=True)
    for p in problems:
        print(f"  FAILED {name}: {p}", flush=True)
    return not problems, extra


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", nargs="*", metavar="TEST",
                        help=f"some of jetstream, {', '.join(TESTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter load phases, for CI")
    parser.add_argument("--bench", action="store_true",
                        help="kill x20 at TTL 3000 and 10000 and drain, for BENCHMARKS.md")
    parser.add_argument("--wasm", help="the cluster node (default: the built cluster_node example)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SWARM_FAULTS_SEED", "12")))
    parser.add_argument("--keep-failed", action="store_true",
                        help="keep the logs and stores of failed tests")
    opts = parser.parse_args()
    opts.rng = random.Random(opts.seed)
    opts.keys = 12 if opts.quick else 24
    opts.kills = 20 if opts.bench else 10
    opts.settle = 0.5 if opts.quick else 1.5
    opts.storm = 1000
    names = opts.tests or ["jetstream", *TESTS]
    unknown = [n for n in names if n != "jetstream" and n not in TESTS]
    if unknown:
        parser.error(f"no test named {', '.join(unknown)}; the tests are jetstream, "
                     f"{', '.join(TESTS)}")
    passed = failed = 0

    def count(ok):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)

    broken = checker_self_test()
    print("checker: histories with a lost append, two owners, a duplicate, a stranger and a "
          "refused append applied are each caught" + ("" if broken else "; ok"))
    for p in broken:
        print(f"  FAILED {p}")
    count(not broken)
    if "jetstream" in names and not opts.bench:
        count(await run_jetstream(opts))
    runs = [("kill", 3000), ("kill", 10000), ("drain", None)] if opts.bench else \
        [(name, None) for name in names if name != "jetstream"]

    # Absolute: the nodes run in their own working directories.
    wasm = os.path.abspath(opts.wasm) if opts.wasm else cluster.find_node_wasm()
    if runs and (wasm is None or not os.path.isfile(wasm)):
        print(f"cluster faults: "
              f"{cluster.NODE_EXAMPLE_MISSING if wasm is None else wasm + ' does not exist'}")
        for name, _ in runs:
            print(f"  FAILED {name}: no cluster node to run")
            count(False)
        runs = []
    elif runs:
        print(f"cluster faults: node {wasm}, seed {opts.seed}"
              f"{', quick' if opts.quick else ''}{', bench' if opts.bench else ''}", flush=True)

    results = {}
    for name, ttl in runs:
        limit = 20 * (ttl / 1000 * 3 + 15) if opts.bench and name == "kill" else None
        ok, extra = await run_test(name, wasm, opts, ttl_ms=ttl, limit=limit)
        results[(name, ttl)] = extra
        count(ok)
    if opts.bench and results:
        for ttl in (3000, 10000):
            values = results[("kill", ttl)].get("unavailability", [])
            print(f"bench: unavailability after SIGKILL at TTL {ttl} ms: {seconds(values)}")
        print(f"bench: drain handover: "
              f"{seconds(results[('drain', None)].get('handover', []))}")
    print(f"test result: {'ok' if not failed else 'FAILED'}. {passed} passed; {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

#!/usr/bin/env python3
"""The NATS services API (ADR-32) of swarm nodes, checked with a stock client in another language.

Starts two Lunatic nodes (tests/examples/discovery_node, built for wasm32-wasip1) as OS processes
on one namespace; each serves the agent kinds `counter` and `account` with two workers. Then,
with nats-py:
  - sends `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`, each also as `.swarm-<ns>` and
    `.swarm-<ns>.<id>`, collects every reply and validates each against the io.nats.micro.v1
    JSON schemas vendored in tests/support/schemas/micro/v1 (jsonschema, with `date-time`
    checked);
  - lists the nodes: both answer, with distinct ids, and one id addresses one node;
  - checks INFO's endpoints (one per kind and handler, subject, queue group, metadata);
  - makes calls through the front door, good and bad, and checks that the error replies carry
    `Nats-Service-Error` and `Nats-Service-Error-Code` (the good ones no headers) and that
    STATS counted them: `num_requests`, `num_errors`, `last_error`, processing times, `data`;
  - asks each node's `observe` subject (named in its metadata) for its live agents and trees:
    its own id and kinds, the agents started by the calls, `{"agents": n}` honoured, a body that
    is not JSON answered as the default;
  - reads the JSON Schemas every endpoint publishes (`#[agent(schema)]`: `arguments_schema`,
    `reply_schema`), checks they are JSON Schemas (2020-12), then sends real requests, good and
    bad, and checks that the arguments schema accepts exactly those the node accepts (the node
    answers `bad_arguments` to the others) and that every real reply, `ok` (a `Result`'s `Ok`
    and `Err`, a fire-and-forget `null`) or `error`, is valid against the reply schema, while
    replies of the wrong shape are not.
Uses the server in SWARM_NATS_URL (scripts/test's harness) or starts its own nats-server.
Prints one line per check, ends with a `test result:` line for scripts/test, exits 1 on any
failure. Bounded: each node must be serving within 60 s, each NATS wait is at most a few
seconds, and the nodes are killed on the way out whatever happens.

usage: discovery_check.py RUNNER WASM
"""

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jsonschema
import nats

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "schemas", "micro", "v1")
NODE_START_TIMEOUT = 60.0
# A request on $SRV waits this long for the replies it expects, the most a loaded machine needs
# (STATS itself waits up to 0.5 s for the counts of the node's workers) ...
GATHER_LIMIT = 10.0
# ... and then this much longer, for any reply beyond them (which the checks must see).
GATHER_LINGER = 1.0
KINDS = {"counter", "account"}
# Endpoint metadata keys of a kind with `#[agent(schema)]` (swarm/src/schema.rs).
ARGUMENTS_SCHEMA = "arguments_schema"
REPLY_SCHEMA = "reply_schema"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nats_server(work):
    """A nats-server of our own on a free loopback port, when no harness runs."""
    port = free_port()
    binary = shutil.which("nats-server") or os.path.join(
        os.path.dirname(sys.executable), "nats-server"
    )
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "nats-server.log"), "w"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("nats-server did not accept connections within 10 s")


def start_node(runner, wasm, url, namespace, log_path):
    """A node as an OS process; returns it with its (service name, id) once it serves."""
    env = dict(os.environ, SWARM_NATS_URL=url, SWARM_DISCOVERY_NS=namespace)
    env.setdefault("RUST_LIB_BACKTRACE", "0")
    proc = subprocess.Popen(
        [runner, wasm],
        stdout=subprocess.PIPE,
        stderr=open(log_path, "w"),
        text=True,
        env=env,
        start_new_session=True,
    )
    # The first line is read by a thread, so that a node that prints nothing cannot block us.
    first = queue.Queue()
    threading.Thread(target=lambda: first.put(proc.stdout.readline()), daemon=True).start()
    try:
        parts = first.get(timeout=NODE_START_TIMEOUT).split()
        if len(parts) == 3 and parts[0] == "serving":
            return proc, parts[1], parts[2]
    except queue.Empty:
        pass
    stop(proc)
    with open(log_path) as log:
        raise RuntimeError(f"a node did not start serving: {log.read()[-3000:]}")


def nats_server(work):
    """(the server started, or None, and its URL): the harness's server when SWARM_NATS_URL
    names one, else one of our own in `work`."""
    url = os.environ.get("SWARM_NATS_URL")
    if url:
        return None, url
    return start_nats_server(work)


def start_nodes(runner, wasm, url, namespace, work, nodes, count=2):
    """Starts `count` nodes of `namespace`, appending each to `nodes` as it starts (so that a
    failure stops the ones already running)."""
    for n in range(count):
        nodes.append(start_node(runner, wasm, url, namespace, os.path.join(work, f"node{n}.log")))
        print(f"node {n}: {nodes[-1][1]} id {nodes[-1][2]}")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def finish(what, checks, nodes, server, work):
    """Stops the nodes and the server, shows the nodes' logs if a check failed, removes `work`,
    prints the summary lines scripts/test reads, and exits 1 on any failure."""
    for proc, _, _ in nodes:
        stop(proc)
    if server:
        stop(server)
    if checks.failures:
        for n in range(len(nodes)):
            with open(os.path.join(work, f"node{n}.log")) as log:
                print(f"--- node {n} log (end):\n{log.read()[-2000:]}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{what} check: {checks.passed} checks passed, {len(checks.failures)} failed")
    print(f"test result: {'ok' if not checks.failures else 'FAILED'}. "
          f"{checks.passed} passed; {len(checks.failures)} failed")
    sys.exit(1 if checks.failures else 0)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"ok: {name}")
        else:
            self.failures.append(f"{name}: {detail}")
            print(f"FAILED: {name}: {detail}")
        return condition


async def gather(nc, subject, service, expect):
    """Every reply to one request on `subject`: it waits for `expect` replies of `service` (at
    most GATHER_LIMIT), then GATHER_LINGER longer for any other."""
    inbox = nc.new_inbox()
    replies = []
    sub = await nc.subscribe(inbox, cb=None)
    await nc.publish(subject, b"", reply=inbox)
    deadline = time.monotonic() + GATHER_LIMIT
    lingering = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = await sub.next_msg(timeout=left)
        except nats.errors.TimeoutError:
            break
        replies.append(json.loads(msg.data))
        if not lingering and sum(r.get("name") == service for r in replies) >= expect:
            lingering = True
            deadline = time.monotonic() + GATHER_LINGER
    await sub.unsubscribe()
    return replies


async def gather_until(nc, subject, service, expect, done):
    """`gather` again until `done(replies)` (at most GATHER_LIMIT): counts that a node's workers
    report late show in a later STATS."""
    deadline = time.monotonic() + GATHER_LIMIT
    while True:
        replies = await gather(nc, subject, service, expect)
        if done(replies) or time.monotonic() > deadline:
            return replies
        await asyncio.sleep(0.2)


def load_schemas():
    validators = {}
    for verb, file in [("PING", "ping_response"), ("INFO", "info_response"),
                       ("STATS", "stats_response")]:
        with open(os.path.join(SCHEMAS, f"{file}.json")) as f:
            schema = json.load(f)
        jsonschema.Draft7Validator.check_schema(schema)
        validators[verb] = jsonschema.Draft7Validator(
            schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
    return validators


def without_schemas(metadata):
    return {k: v for k, v in metadata.items() if k not in (ARGUMENTS_SCHEMA, REPLY_SCHEMA)}


def published_schemas(info, checks):
    """{(kind, handler): (arguments validator, reply validator)} from INFO's endpoint metadata,
    after checking that every endpoint publishes both and that each is a JSON Schema."""
    schemas, problems = {}, []
    for endpoint in info["endpoints"]:
        metadata = endpoint["metadata"]
        try:
            pair = []
            for key in (ARGUMENTS_SCHEMA, REPLY_SCHEMA):
                schema = json.loads(metadata[key])
                jsonschema.Draft202012Validator.check_schema(schema)
                pair.append(jsonschema.Draft202012Validator(schema))
            schemas[(metadata["kind"], metadata["handler"])] = tuple(pair)
        except (KeyError, ValueError, jsonschema.SchemaError) as err:
            problems.append(f"{endpoint['name']}: {type(err).__name__}: {err}")
    checks.check(
        f"INFO: all {len(info['endpoints'])} endpoints publish JSON Schemas (2020-12) of their "
        "arguments and reply",
        not problems and len(schemas) == len(info["endpoints"]),
        f"{problems}",
    )
    return schemas


# Real requests: (kind, key, handler, arguments, whether the node takes the arguments). The
# published arguments schema must say the same as the node for each.
SCHEMA_CALLS = [
    ("counter", "s1", "add", {"n": 2}, True),
    ("counter", "s1", "add", {"n": "two"}, False),
    ("counter", "s1", "add", {"n": -1}, False),
    ("counter", "s1", "add", {"n": 1.5}, False),
    ("counter", "s1", "add", {}, False),
    ("counter", "s1", "add", {"n": 1, "m": 2}, False),
    ("counter", "s1", "total", {}, True),
    ("counter", "s1", "total", {"n": 1}, False),
    ("counter", "s1", "name", {}, True),
    ("counter", "s1", "bump", {}, True),
    ("counter", "s1", "bump_by", {"step": 255}, True),
    ("counter", "s1", "bump_by", {"step": 256}, False),
    ("counter", "s1", "crash", {"why": "schema check"}, True),
    ("counter", "s1", "crash", {"why": None}, False),
    ("account", "7", "deposit", {"amount": -5}, True),
    ("account", "7", "deposit", {"amount": "5"}, False),
    ("account", "13", "deposit", {"amount": 5}, True),
    ("account", "x", "deposit", {"amount": 5}, True),
    ("account", "7", "id", {}, True),
]

# Replies the node never sends: each must be invalid against its handler's reply schema, or
# the schemas would pass anything.
FORGED_REPLIES = [
    ("counter", "add", {"ok": 2}),
    ("counter", "add", {"ok": {"Ok": -1}}),
    ("counter", "add", {"ok": {"Err": {"Overflow": {"total": 1}}}}),
    ("counter", "bump", {"ok": 3}),
    ("counter", "name", {"ok": 7}),
    ("account", "deposit", {"ok": 1, "error": {"kind": "x", "message": "y"}}),
    ("account", "deposit", {"error": {"kind": "bad_arguments"}}),
    ("account", "deposit", {"result": 1}),
]


async def check_schemas(nc, namespace, info, checks):
    schemas = published_schemas(info, checks)
    if not schemas:
        return
    mismatched, unexpected, replies = [], [], []
    for kind, key, handler, arguments, takes in SCHEMA_CALLS:
        reply, _ = await request(nc, f"{namespace}.{kind}.{key}.{handler}", arguments)
        replies.append((kind, handler, reply))
        by_schema = schemas[(kind, handler)][0].is_valid(arguments)
        by_node = reply.get("error", {}).get("kind") != "bad_arguments"
        if by_schema != by_node:
            mismatched.append(f"{kind}.{handler} {arguments}: the schema says {by_schema}, "
                              f"the node {reply}")
        if by_node != takes:
            unexpected.append(f"{kind}.{handler} {arguments}: {reply}")
    checks.check(
        f"the arguments schemas accept exactly those of the {len(SCHEMA_CALLS)} real requests "
        "that the nodes accept",
        not mismatched,
        f"{mismatched}",
    )
    checks.check("the nodes took and refused the requests meant to be", not unexpected,
                 f"{unexpected}")

    # A `Result` handler's `Err` is a reply too: each node's counter `s2` overflows on its second
    # add of u64::MAX, and with two nodes three adds reach one of them twice.
    for _ in range(3):
        reply, _ = await request(nc, f"{namespace}.counter.s2.add", {"n": 2**64 - 1})
        replies.append(("counter", "add", reply))
    invalid = []
    for kind, handler, reply in replies:
        errors = [e.message for e in schemas[(kind, handler)][1].iter_errors(reply)]
        if errors:
            invalid.append(f"{kind}.{handler} {reply}: {errors}")
    checks.check(f"all {len(replies)} real replies are valid against their reply schemas",
                 not invalid, f"{invalid}")
    error_kinds = {r["error"]["kind"] for _, _, r in replies if "error" in r}
    results = [r["ok"] for _, h, r in replies if h == "add" and isinstance(r.get("ok"), dict)]
    checks.check(
        "the replies validated include a Result's Ok and Err, a fire-and-forget null, and the "
        "errors bad_arguments, call_failed, start_failed and invalid_key",
        any("Ok" in ok for ok in results) and any("Err" in ok for ok in results)
        and any(r == {"ok": None} for _, _, r in replies)
        and {"bad_arguments", "call_failed", "start_failed", "invalid_key"} <= error_kinds,
        f"results {results}, error kinds {error_kinds}",
    )
    accepted = [f"{kind}.{handler} {reply}" for kind, handler, reply in FORGED_REPLIES
                if schemas[(kind, handler)][1].is_valid(reply)]
    checks.check(f"the reply schemas refuse all {len(FORGED_REPLIES)} replies of the wrong shape",
                 not accepted, f"accepted: {accepted}")


async def request(nc, subject, payload):
    msg = await nc.request(subject, json.dumps(payload).encode(), timeout=10)
    return json.loads(msg.data), msg.headers or {}


async def check_observe(nc, namespace, name, ids, by_form, checks):
    """The `observe` subject each instance names in its metadata (swarm/src/nats/discovery.rs):
    the node's live agents and supervision trees, for the dashboard."""
    subjects = {r["id"]: r["metadata"].get("observe") for r in by_form[("PING", f".{name}")]}
    checks.check(
        "PING metadata names each node's observe subject, _SWARM.<ns>.observe.<id>",
        subjects == {i: f"_SWARM.{namespace}.observe.{i}" for i in ids},
        f"{subjects}",
    )
    answers = {}
    for node_id in ids:
        msg = await nc.request(f"_SWARM.{namespace}.observe.{node_id}", b"", timeout=10)
        answers[node_id] = json.loads(msg.data)
    listed = sorted((a["kind"], a["key"]) for answer in answers.values() for a in answer["agents"])
    checks.check(
        "observe: each node answers for itself, with its kinds, its live agents (the three "
        "counters among them) and no supervisors (this node starts none)",
        all(
            answer["type"] == "io.swarm.observe.v1" and answer["id"] == node_id
            and answer["name"] == name and set(answer["kinds"]) == KINDS
            and answer["agents_live"] == len(answer["agents"])
            and all(isinstance(a["process"], int) for a in answer["agents"])
            and answer["supervisors"] == []
            for node_id, answer in answers.items()
        ) and {("counter", f"c{i}") for i in range(3)} <= set(listed),
        f"{answers}",
    )
    busiest = max(ids, key=lambda i: answers[i]["agents_live"])
    subject = f"_SWARM.{namespace}.observe.{busiest}"
    one = json.loads((await nc.request(subject, b'{"agents": 1}', timeout=10)).data)
    garbage = json.loads((await nc.request(subject, b"\xff not json", timeout=10)).data)
    checks.check(
        "observe: {\"agents\": 1} lists one agent and still counts them all; a body that is "
        "not JSON gets the default answer, not an error",
        len(one["agents"]) == 1 and one["agents_live"] == answers[busiest]["agents_live"] >= 2
        and len(garbage["agents"]) == answers[busiest]["agents_live"],
        f"{one} {garbage}",
    )


async def run(url, nodes, namespace, checks):
    name = nodes[0][1]
    ids = [node_id for _, _, node_id in nodes]
    validators = load_schemas()
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        # Every form of every verb; every reply of any service validated against its schema.
        by_form = {}
        for verb in ["PING", "INFO", "STATS"]:
            for form in ["", f".{name}", f".{name}.{ids[0]}"]:
                expect = 1 if form.endswith(ids[0]) else 2
                replies = await gather(nc, f"$SRV.{verb}{form}", name, expect)
                invalid = []
                for reply in replies:
                    errors = [e.message for e in validators[verb].iter_errors(reply)]
                    if errors:
                        invalid.append((reply.get("name"), errors))
                checks.check(
                    f"$SRV.{verb}{form}: {len(replies)} replies valid against the "
                    f"io.nats.micro.v1 {verb.lower()} schema",
                    replies and not invalid,
                    f"{invalid or 'no reply'}",
                )
                by_form[(verb, form)] = [r for r in replies if r.get("name") == name]

        # Listing: both nodes answer every form naming the service, one id addresses one node.
        for verb in ["PING", "INFO", "STATS"]:
            listed = sorted(r["id"] for r in by_form[(verb, "")])
            named = sorted(r["id"] for r in by_form[(verb, f".{name}")])
            one = [r["id"] for r in by_form[(verb, f".{name}.{ids[0]}")]]
            checks.check(
                f"$SRV.{verb} lists both nodes of {name} with distinct ids",
                listed == sorted(ids) and named == sorted(ids) and len(set(ids)) == 2,
                f"listed {listed}, by name {named}, expected {sorted(ids)}",
            )
            checks.check(
                f"$SRV.{verb}.{name}.<id> reaches that node only",
                one == [ids[0]],
                f"{one}",
            )

        # INFO: one endpoint per kind and handler, on the front door's subjects.
        info = by_form[("INFO", f".{name}.{ids[0]}")][0]
        endpoints = {e["name"]: e for e in info["endpoints"]}
        add = endpoints.get("counter-add", {})
        checks.check(
            "INFO: counter-add on <ns>.counter.*.add in queue group <ns>.counter",
            add.get("subject") == f"{namespace}.counter.*.add"
            and add.get("queue_group") == f"{namespace}.counter"
            and without_schemas(add.get("metadata", {}))
            == {"kind": "counter", "handler": "add", "request": "true"},
            f"{add}",
        )
        bump = endpoints.get("counter-bump", {}).get("metadata", {})
        checks.check(
            "INFO: a fire-and-forget handler is marked request=false",
            bump.get("request") == "false",
            f"{bump}",
        )
        kinds = {e["metadata"]["kind"] for e in info["endpoints"]}
        checks.check(
            "INFO: both kinds' handlers, and the kinds and node in the metadata",
            kinds == KINDS
            and "account-deposit" in endpoints
            and set(info["metadata"]["kinds"].split(",")) == KINDS
            and info["metadata"]["node"] == ids[0],
            f"kinds {kinds}, metadata {info['metadata']}",
        )

        # STATS before any call: all zero.
        before = by_form[("STATS", f".{name}")]
        checks.check(
            "STATS before any call: every endpoint at zero",
            len(before) == 2 and all(e["num_requests"] == 0 and e["last_error"] == "" for r in before
                for e in r["endpoints"]),
            f"{before}",
        )

        # Calls: good ones and bad ones, through the queue group (either node answers).
        good = [await request(nc, f"{namespace}.counter.c{i}.add", {"n": 2}) for i in range(3)]
        checks.check(
            "good calls answer {\"ok\": ..} with no service-error headers",
            all("ok" in body and "Nats-Service-Error" not in headers for body, headers in good),
            f"{good}",
        )
        bad, bad_headers = await request(nc, f"{namespace}.counter.c0.add", {"n": "two"})
        checks.check(
            "a bad call's error reply carries Nats-Service-Error and Nats-Service-Error-Code 400",
            bad.get("error", {}).get("kind") == "bad_arguments"
            and bad_headers.get("Nats-Service-Error-Code") == "400"
            and bad_headers.get("Nats-Service-Error") == bad["error"]["message"],
            f"{bad} {bad_headers}",
        )
        key, key_headers = await request(nc, f"{namespace}.account.not-a-number.deposit",
                                         {"amount": 5})
        checks.check(
            "an invalid key's error reply carries Nats-Service-Error-Code 400",
            key.get("error", {}).get("kind") == "invalid_key"
            and key_headers.get("Nats-Service-Error-Code") == "400",
            f"{key} {key_headers}",
        )
        closed, closed_headers = await request(nc, f"{namespace}.account.13.deposit",
                                               {"amount": 5})
        checks.check(
            "a start that fails answers start_failed with Nats-Service-Error-Code 500",
            closed.get("error", {}).get("kind") == "start_failed"
            and closed_headers.get("Nats-Service-Error-Code") == "500",
            f"{closed} {closed_headers}",
        )

        # STATS after: the counts of both nodes add up to the calls made.
        def counted(replies):
            requests = {}
            for reply in replies:
                for e in reply["endpoints"]:
                    requests[e["name"]] = requests.get(e["name"], 0) + e["num_requests"]
            return requests.get("counter-add") == 4 and requests.get("account-deposit") == 2

        after = await gather_until(nc, f"$SRV.STATS.{name}", name, 2, counted)
        for reply in after:
            errors = [e.message for e in validators["STATS"].iter_errors(reply)]
            checks.check(f"STATS of {reply['id']} after the calls is schema-valid",
                         not errors, f"{errors}")

        def total(endpoint, field):
            return sum(e[field] for r in after for e in r["endpoints"] if e["name"] == endpoint)

        checks.check(
            "STATS counted counter-add: 4 requests, 1 error",
            len(after) == 2
            and total("counter-add", "num_requests") == 4
            and total("counter-add", "num_errors") == 1,
            f"requests {total('counter-add', 'num_requests')}, "
            f"errors {total('counter-add', 'num_errors')}",
        )
        checks.check(
            "STATS counted account-deposit: 2 requests, 2 errors",
            total("account-deposit", "num_requests") == 2
            and total("account-deposit", "num_errors") == 2,
            f"requests {total('account-deposit', 'num_requests')}, "
            f"errors {total('account-deposit', 'num_errors')}",
        )
        last_errors = [e["last_error"] for r in after for e in r["endpoints"]
                       if e["name"] == "counter-add" and e["num_errors"]]
        checks.check(
            "STATS last_error of counter-add is the bad call's, as <code>:<description>",
            last_errors == [f"400:{bad['error']['message']}"],
            f"{last_errors}",
        )
        timed = [e for r in after for e in r["endpoints"] if e["num_requests"]]
        checks.check(
            "STATS processing times: positive, average = total / requests (ns)",
            timed and all(
                e["processing_time"] > 0
                and e["average_processing_time"] == e["processing_time"] // e["num_requests"]
                for e in timed
            ),
            f"{[(e['name'], e['processing_time'], e['average_processing_time']) for e in timed]}",
        )
        live = [e["data"].get("agents_live") for r in after for e in r["endpoints"]]
        per_node = {r["id"]: r["endpoints"][0]["data"]["agents_live"] for r in after}
        checks.check(
            "STATS data: agents_live on every endpoint; the three counters started are live",
            all(isinstance(n, int) for n in live) and sum(per_node.values()) >= 3,
            f"{per_node}",
        )

        await check_observe(nc, namespace, name, ids, by_form, checks)

        # Last: these calls would change the counts checked above.
        await check_schemas(nc, namespace, info, checks)
    finally:
        await nc.close()


def main():
    runner, wasm = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="swarm-discovery-")
    namespace = f"disc.{os.getpid()}x{int(time.time())}"
    checks = Checks()
    server = None
    nodes = []
    try:
        server, url = nats_server(work)
        start_nodes(runner, wasm, url, namespace, work, nodes)
        asyncio.run(asyncio.wait_for(run(url, nodes, namespace, checks), timeout=120))
    except Exception as err:  # a crash of the check itself is a failure, reported as one
        checks.failures.append(f"the check did not complete: {type(err).__name__}: {err}")
        print(f"FAILED: {checks.failures[-1]}")
    finally:
        finish("discovery", checks, nodes, server, work)


if __name__ == "__main__":
    main()

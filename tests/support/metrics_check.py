#!/usr/bin/env python3
"""A node's operations endpoints, scraped for real: Prometheus metrics, liveness, readiness, and
its structured logs.

Starts one Lunatic node (tests/examples/discovery_node, built for wasm32-wasip1) as an OS process
with SWARM_METRICS_ADDR=127.0.0.1:0 (metrics on a free port) and SWARM_LOG_FORMAT=json; the node
serves `counter` and `account` through the NATS front door and supervises the counter `watched`.
Then:
  - scrapes GET /metrics and parses it with prometheus_client's own parser (the text format 0.0.4
    as Prometheus reads it), checking the families' names, types and labels;
  - makes calls through NATS (nats-py) and scrapes again: calls per handler and outcome, the
    latency histogram's count, live agents per kind and the store's saves moved by exactly what
    was done;
  - crashes the supervised counter through the front door: the call counts as `panicked`, the
    supervisor's child counts a crash and a restart, readiness stays 200;
  - GET /livez and /readyz (store, NATS, supervisors); a second supervisor that gives up on its
    child's second crash makes /readyz 503 naming it, and counts a give-up; what bad HTTP gets
    (400, 404, 405, 431), after which the node still answers;
  - spans: a call with a W3C traceparent exports the agent's span to a stand-in OTLP/HTTP
    collector (trace, parent, attributes, an error status for a panic); calls without none;
  - the node's stderr: JSON lines that parse, one `agent.crashed` event for the crash with its
    panic message, supervisor events, and no Rust panic report or backtrace.
Uses the server in SWARM_NATS_URL (scripts/test's harness) or starts its own nats-server. Prints
one line per check and a `test result:` line; exits 1 on any failure. Bounded: the node must serve
within 60 s, each HTTP or NATS wait is a few seconds, the whole run at most 120 s.

usage: metrics_check.py RUNNER WASM
"""

import asyncio
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import nats
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from discovery_check import Checks, nats_server, stop  # noqa: E402

NODE_START_TIMEOUT = 60.0
FLUSH_LIMIT = 15.0  # agents send their counts at least once a second; a busy machine is late


class Collector:
    """A stand-in OpenTelemetry collector: an OTLP/HTTP endpoint that keeps every span posted to
    /v1/traces (JSON) and answers 200."""

    def __init__(self):
        import http.server

        spans = self.spans = []
        self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.paths.append((self.path, self.headers.get("Content-Type")))
                for resource in json.loads(body).get("resourceSpans", []):
                    service = {a["key"]: a["value"].get("stringValue")
                               for a in resource["resource"]["attributes"]}
                    for scope in resource["scopeSpans"]:
                        for span in scope["spans"]:
                            spans.append(dict(span, service=service.get("service.name")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        collector = self
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_node(runner, wasm, url, namespace, log_path, otlp_addr):
    env = dict(os.environ, SWARM_NATS_URL=url, SWARM_DISCOVERY_NS=namespace,
               SWARM_METRICS_ADDR="127.0.0.1:0", SWARM_LOG_FORMAT="json",
               SWARM_OTLP_ADDR=otlp_addr)
    env.pop("SWARM_BACKTRACE", None)
    env.pop("SWARM_LOG", None)
    env.pop("RUST_LOG", None)
    env.setdefault("RUST_LIB_BACKTRACE", "0")
    proc = subprocess.Popen([runner, wasm], stdout=subprocess.PIPE, stderr=open(log_path, "w"),
                            text=True, env=env, start_new_session=True)
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    addr = None
    deadline = time.monotonic() + NODE_START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            parts = lines.get(timeout=max(0.1, deadline - time.monotonic())).split()
            if len(parts) == 2 and parts[0] == "metrics":
                addr = parts[1]
            elif len(parts) == 3 and parts[0] == "serving" and addr:
                return proc, addr, parts[1]
    except queue.Empty:
        pass
    stop(proc)
    with open(log_path) as log:
        raise RuntimeError(f"the node did not start serving: {log.read()[-3000:]}")


def get(addr, path):
    """(status, content type, body) of GET http://addr/path."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def raw(addr, data):
    """The status line the node answers to raw bytes `data`."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def scrape(addr):
    """{family name: (type, [samples])} of one scrape, parsed by prometheus_client."""
    status, ctype, body = get(addr, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:500]}")
    families = {}
    for family in text_string_to_metric_families(body):
        families[family.name] = (family.type, family.samples, ctype)
    return families


async def scrape_until(addr, ready):
    """Scrapes until `ready(families)` holds (the counts of what was done have all arrived), at
    most FLUSH_LIMIT s; then returns the last scrape, for the exact checks that follow."""
    deadline = time.monotonic() + FLUSH_LIMIT
    while True:
        families = scrape(addr)
        if ready(families) or time.monotonic() > deadline:
            return families
        await asyncio.sleep(0.2)


def value(families, family, sample, **labels):
    """The value of `sample` with exactly these labels (0 when absent)."""
    if family not in families:
        return 0
    for s in families[family][1]:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


async def call(nc, subject, args):
    msg = await nc.request(subject, json.dumps(args).encode(), timeout=5)
    return json.loads(msg.data)


async def run(url, addr, namespace, service, checks, log_path, collector):
    before = scrape(addr)
    ctype = next(iter(before.values()))[2]
    checks.check("GET /metrics answers the text format 0.0.4",
                 ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype)
    # prometheus_client names a counter family without its `_total`.
    expected = {
        "swarm_calls": "counter",
        "swarm_call_duration_seconds": "histogram",
        "swarm_agents_live": "gauge",
        "swarm_agent_starts": "counter",
        "swarm_supervisor_child_starts": "counter",
        "swarm_supervisor_child_restarts": "counter",
        "swarm_supervisor_child_crashes": "counter",
        "swarm_supervisor_give_ups": "counter",
        "swarm_store_operations": "counter",
        "swarm_store_operation_duration_seconds": "histogram",
        "swarm_nats_connected": "gauge",
        "swarm_nats_reconnects": "counter",
        "swarm_nats_subscriptions": "gauge",
        "swarm_nats_pending_requests": "gauge",
        "swarm_nats_messages": "counter",
        "swarm_nats_bytes": "counter",
    }
    got = {name: kind for name, (kind, _, _) in before.items()}
    wrong = {n: (t, got.get(n)) for n, t in expected.items() if got.get(n) != t}
    checks.check("every family is there with its type (parsed by prometheus_client)",
                 not wrong, f"wrong or missing: {wrong}; got {got}")
    checks.check("every family is named swarm_*", all(n.startswith("swarm_") for n in got), got)
    checks.check("the supervisor's child started once, counted at start",
                 value(before, "swarm_supervisor_child_starts",
                       "swarm_supervisor_child_starts_total",
                       supervisor="Watched", child="watched") == 1,
                 before.get("swarm_supervisor_child_starts"))
    checks.check("the NATS connection is up", value(before, "swarm_nats_connected",
                                                     "swarm_nats_connected") == 1)

    nc = await nats.connect(url)
    try:
        for n in range(5):
            answer = await call(nc, f"{namespace}.counter.c1.add", {"n": 2})
            if answer != {"ok": {"Ok": 2 * (n + 1)}}:
                raise RuntimeError(f"add answered {answer}")
        totals = 0  # successful calls of `total`, wherever they went
        for _ in range(3):
            totals += "ok" in await call(nc, f"{namespace}.counter.c1.total", {})
        totals += "ok" in await call(nc, f"{namespace}.counter.c2.total", {})
        crash = await call(nc, f"{namespace}.counter.watched.crash", {"why": "metrics check"})
        checks.check("the crash call fails as call_failed",
                     crash.get("error", {}).get("kind") == "call_failed", crash)
        # The supervisor restarts it; the restarted agent answers.
        restarted = None
        for _ in range(50):
            answer = await call(nc, f"{namespace}.counter.watched.total", {})
            if "ok" in answer:
                totals += 1
                restarted = answer
                break
            await asyncio.sleep(0.1)
        checks.check("the supervised counter answers again after its crash", restarted, crash)
        def counted(now):
            def grown(sample, by, **labels):
                family = sample.removesuffix("_total").removesuffix("_count")
                return value(now, family, sample, **labels) - value(before, family, sample,
                                                                  **labels) >= by
            return (grown("swarm_calls_total", 5, kind="counter", handler="add", outcome="ok")
                    and grown("swarm_calls_total", totals, kind="counter", handler="total",
                              outcome="ok")
                    and grown("swarm_calls_total", 1, kind="counter", handler="crash",
                              outcome="panicked")
                    and grown("swarm_call_duration_seconds_count", 5, kind="counter",
                              handler="add"))
        after = await scrape_until(addr, counted)
        if after.get("swarm_calls") is None:
            raise RuntimeError("no swarm_calls family after the calls")
        # The same numbers in the NATS services API's STATS (every endpoint's `data`).
        stats = json.loads((await nc.request(f"$SRV.STATS.{service}", b"", timeout=5)).data)
        figures = stats["endpoints"][0]["data"].get("metrics", {}).get("counter", {})
        add = figures.get("add", {})
        checks.check("$SRV.STATS carries the same numbers: counter.add calls and latency count",
                     add.get("calls", {}).get("ok") == value(
                         after, "swarm_calls", "swarm_calls_total", kind="counter",
                         handler="add", outcome="ok")
                     and add.get("latency_count") == value(
                         after, "swarm_call_duration_seconds",
                         "swarm_call_duration_seconds_count", kind="counter", handler="add")
                     and figures.get("crash", {}).get("calls", {}).get("panicked") == 1,
                     stats["endpoints"][0]["data"])
    finally:
        await nc.close()

    def moved(family, sample, **labels):
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    checks.check(f"calls counted per handler and outcome: add ok +5, total ok +{totals}",
                 moved("swarm_calls", "swarm_calls_total", kind="counter", handler="add",
                       outcome="ok") == 5
                 and moved("swarm_calls", "swarm_calls_total", kind="counter", handler="total",
                           outcome="ok") == totals,
                 [s for s in after["swarm_calls"][1]])
    checks.check("the crash counted as outcome panicked",
                 moved("swarm_calls", "swarm_calls_total", kind="counter", handler="crash",
                       outcome="panicked") == 1, after["swarm_calls"][1])
    checks.check("the latency histogram counted the 5 adds, and its +Inf bucket equals its count",
                 moved("swarm_call_duration_seconds", "swarm_call_duration_seconds_count",
                       kind="counter", handler="add") == 5
                 and value(after, "swarm_call_duration_seconds",
                           "swarm_call_duration_seconds_bucket", kind="counter", handler="add",
                           le="+Inf")
                 == value(after, "swarm_call_duration_seconds",
                          "swarm_call_duration_seconds_count", kind="counter", handler="add")
                 and value(after, "swarm_call_duration_seconds", "swarm_call_duration_seconds_sum",
                           kind="counter", handler="add") > 0)
    # Every request through the front door is a message in and a reply out (plus the node's own
    # traffic): at least the calls made above (5 adds, the totals, the crash).
    made = 5 + totals + 1
    checks.check(f"NATS messages in and out moved by at least the {made} calls made",
                 moved("swarm_nats_messages", "swarm_nats_messages_total", direction="in") >= made
                 and moved("swarm_nats_messages", "swarm_nats_messages_total",
                           direction="out") >= made
                 and moved("swarm_nats_bytes", "swarm_nats_bytes_total", direction="in") > 0,
                 after.get("swarm_nats_messages"))
    checks.check("live agents per kind: c1, c2, watched and fragile",
                 value(after, "swarm_agents_live", "swarm_agents_live", kind="counter") == 4,
                 after.get("swarm_agents_live"))
    checks.check("store saves counted for the memory backend (5 adds + the crash's restart)",
                 moved("swarm_store_operations", "swarm_store_operations_total",
                       backend="memory", operation="save", result="ok") >= 5
                 and moved("swarm_store_operations", "swarm_store_operations_total",
                           backend="memory", operation="load", result="ok") >= 3,
                 after.get("swarm_store_operations"))
    checks.check("the supervisor counted one crash and one restart of `watched`",
                 moved("swarm_supervisor_child_crashes", "swarm_supervisor_child_crashes_total",
                       supervisor="Watched", child="watched") == 1
                 and moved("swarm_supervisor_child_restarts",
                           "swarm_supervisor_child_restarts_total",
                           supervisor="Watched", child="watched") == 1,
                 after.get("swarm_supervisor_child_crashes"))

    status, _, body = get(addr, "/livez")
    checks.check("GET /livez: 200", status == 200, (status, body))
    status, _, body = get(addr, "/readyz")
    checks.check("GET /readyz: 200, store, NATS and supervisors checked",
                 status == 200 and "store: ok" in body and "nats: connected" in body
                 and "supervisors: 2 up" in body, (status, body))
    # Spans: a call with a W3C traceparent gets the agent's span, exported over OTLP/HTTP; calls
    # without one get none.
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    nc = await nats.connect(url)
    try:
        traced = await nc.request(f"{namespace}.counter.t1.add", b'{"n": 1}', timeout=5,
                                  headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        await nc.request(f"{namespace}.counter.t1.add", b'{"n": 1}', timeout=5)
        await nc.request(f"{namespace}.counter.t1.crash", b'{"why": "traced"}', timeout=5,
                         headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    finally:
        await nc.close()
    for _ in range(40):
        if len(collector.spans) >= 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    mine = [s for s in collector.spans if s.get("traceId") == trace_id]
    add = [s for s in mine if s.get("name") == "counter.add"]
    crash = [s for s in mine if s.get("name") == "counter.crash"]
    attrs = {a["key"]: a["value"].get("stringValue") for a in (add[0]["attributes"] if add else [])}
    checks.check("a traced call's span reaches the OTLP collector: the caller's trace and parent, "
                 "the agent's own span id, kind, key, handler, times, status ok",
                 json.loads(traced.data) == {"ok": {"Ok": 1}}
                 and len(add) == 1 and add[0]["parentSpanId"] == parent
                 and len(add[0]["spanId"]) == 16 and add[0]["spanId"] != parent
                 and add[0]["kind"] == 2 and add[0]["service"] == "discovery-node"
                 and attrs == {"swarm.kind": "counter", "swarm.key": "t1", "swarm.handler": "add"}
                 and int(add[0]["startTimeUnixNano"]) <= int(add[0]["endTimeUnixNano"])
                 and add[0]["status"]["code"] == 1
                 and collector.paths[0] == ("/v1/traces", "application/json"),
                 (collector.spans, collector.paths))
    checks.check("a traced call that panics: its span has an error status saying so",
                 len(crash) == 1 and crash[0]["status"] == {"code": 2, "message": "panicked"},
                 crash)
    checks.check("calls without a traceparent export no span", len(collector.spans) == 2,
                 collector.spans)

    # A supervisor that gives up makes the node unready, and says which.
    nc = await nats.connect(url)
    try:
        for crash in range(2):
            await call(nc, f"{namespace}.counter.fragile.crash", {"why": "give up"})
            if crash == 0:
                # The second crash only once the supervisor restarted the first: sent earlier,
                # the front door would start an unsupervised `fragile` of its own.
                await scrape_until(addr, lambda now: value(
                    now, "swarm_supervisor_child_restarts",
                    "swarm_supervisor_child_restarts_total", supervisor="Fragile") >= 1)
    finally:
        await nc.close()
    status, body = None, ""
    for _ in range(30):
        status, _, body = get(addr, "/readyz")
        if status == 503:
            break
        await asyncio.sleep(0.1)
    checks.check("a supervisor that gave up: GET /readyz is 503 and names it",
                 status == 503 and "supervisor Fragile: gave up" in body
                 and "store: ok" in body, (status, body))
    late = await scrape_until(addr, lambda now: value(
        now, "swarm_supervisor_give_ups", "swarm_supervisor_give_ups_total",
        supervisor="Fragile") >= 1)
    checks.check("its give-up is counted",
                 value(late, "swarm_supervisor_give_ups", "swarm_supervisor_give_ups_total",
                       supervisor="Fragile") == 1
                 and value(late, "swarm_supervisor_give_ups", "swarm_supervisor_give_ups_total",
                           supervisor="Watched") == 0,
                 late.get("swarm_supervisor_give_ups"))
    status, _, body = get(addr, "/livez")
    checks.check("GET /livez stays 200 (the node runs; it is not ready)", status == 200,
                 (status, body))
    checks.check("GET /nothing: 404", get(addr, "/nothing")[0] == 404)
    checks.check("POST /metrics: 405",
                 raw(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").split()[1] == "405")
    checks.check("garbage: 400", raw(addr, b"\x00\xffnot http\r\n\r\n").split()[1] == "400")
    checks.check("a request past 8 KiB: 431",
                 raw(addr, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000).split()[1] == "431")
    checks.check("after all that the node still answers /metrics", "swarm_calls" in scrape(addr))

    with open(log_path) as log:
        lines = [line.rstrip("\n") for line in log]
    events = []
    for line in lines:
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                checks.check("every JSON log line parses", False, line)
    crashed = [e for e in events if e.get("event") == "agent.crashed"]
    crashed = [e for e in crashed if e.get("key") == "watched"]
    checks.check("the crash is one agent.crashed event with its panic message, kind and key",
                 len(crashed) == 1 and "asked to crash: metrics check" in crashed[0].get("msg", "")
                 and crashed[0].get("kind") == "counter" and crashed[0].get("key") == "watched"
                 and crashed[0].get("level") == "warn", crashed)
    names = {e.get("event") for e in events}
    checks.check("supervisor events: child started, crashed, restarted, a give-up",
                 {"supervisor.child_started", "supervisor.child_crashed",
                  "supervisor.child_restarted", "supervisor.gave_up"} <= names, names)
    checks.check("no Rust panic report or backtrace on stderr",
                 not any("panicked at" in l or "stack backtrace" in l or "RUST_BACKTRACE" in l
                         for l in lines), [l for l in lines if "panick" in l][:5])
    checks.check("no line of Lunatic's own for the expected crash (the runner's RUST_LOG)",
                 not any("lunatic_process" in l for l in lines),
                 [l for l in lines if "lunatic" in l][:5])


def main():
    runner, wasm = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="swarm-metrics-")
    namespace = f"metrics.{os.getpid()}x{int(time.time())}"
    checks = Checks()
    server = None
    node = None
    log_path = os.path.join(work, "node0.log")
    try:
        server, url = nats_server(work)
        collector = Collector()
        node, addr, service = start_node(runner, wasm, url, namespace, log_path, collector.addr)
        print(f"node serves metrics on http://{addr}/metrics")
        asyncio.run(asyncio.wait_for(
            run(url, addr, namespace, service, checks, log_path, collector), timeout=120))
    except Exception as err:  # a crash of the check itself is a failure, reported as one
        checks.failures.append(f"the check did not complete: {type(err).__name__}: {err}")
        print(f"FAILED: {checks.failures[-1]}")
    finally:
        if node:
            stop(node)
        if server:
            stop(server)
        if checks.failures and os.path.exists(log_path):
            with open(log_path) as log:
                print(f"--- node log (end):\n{log.read()[-3000:]}")
        shutil.rmtree(work, ignore_errors=True)
        print(f"metrics check: {checks.passed} checks passed, {len(checks.failures)} failed")
        print(f"test result: {'ok' if not checks.failures else 'FAILED'}. "
              f"{checks.passed} passed; {len(checks.failures)} failed")
        sys.exit(1 if checks.failures else 0)


if __name__ == "__main__":
    main()

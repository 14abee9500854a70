#!/usr/bin/env python3
"""The `swarm` command line (cli/), run as a user runs it, against real nodes.

Starts a nats-server on a free port and two Lunatic nodes (tests/examples/discovery_node, built
for wasm32-wasip1) as OS processes on one namespace; each serves the agent kinds `counter` and
`account`, whose handlers publish JSON Schemas of their arguments and replies
(`#[agent(schema)]`). A nats-py peer plays a third service in another namespace whose endpoint
publishes a hand-written arguments schema, with a front door of its own. Then runs the built
`swarm` binary and checks what it prints and how it exits:
  - nodes, kinds, handlers are listed (tables when piped, JSON with --json);
  - a call's answer, arguments from the command line and from stdin;
  - an agent's error (start_failed, call_failed) exits 1 with the error kind and message on stderr;
  - an unknown kind or handler, arguments that are not JSON, not an object or not matching the
    schema (a real agent's, refused before sending: stats never count them), a bad key and the
    node's own bad_arguments exit 2 with one line saying what to do;
  - no server exits 3; no stderr line is ever more than one line, never a panic or backtrace;
  - stats counts the calls; `watch --count 2 --json` prints two lines with calls/s > 0 while
    calls are made;
  - colour only on a terminal (a pty), and not with NO_COLOR.
Uses the server in SWARM_NATS_URL (scripts/test's harness) or starts its own. Prints one line per
check, ends with a `test result:` line for scripts/test, exits 1 on any failure. Bounded: each
node must be serving within 60 s, each command run is killed after 30 s, the nodes and the server
are killed on the way out whatever happens.

usage: cli_check.py SWARM_BINARY RUNNER WASM
"""

import asyncio
import json
import os
import pty
import subprocess
import sys
import tempfile
import time

import nats

from discovery_check import Checks, finish, free_port, nats_server, start_nodes

COMMAND_TIMEOUT = 30
# The schema the peer publishes for `greeter.hello`, as endpoint metadata (a string).
ARGUMENTS_SCHEMA_KEY = "arguments_schema"  # cli/src/catalog.rs: ARGUMENTS_SCHEMA_KEY
HELLO_SCHEMA = {
    "type": "object",
    "properties": {"who": {"type": "string", "minLength": 1}},
    "required": ["who"],
    "additionalProperties": False,
}


class Swarm:
    """Runs the `swarm` binary on one server and namespace."""

    def __init__(self, binary, url, namespace):
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("NO_COLOR", "NATS_CREDS", "CLICOLOR_FORCE")}
        self.env.update(NATS_URL=url, SWARM_NAMESPACE=namespace, RUST_LIB_BACKTRACE="0")

    def run(self, *args, stdin=None, env=None):
        done = subprocess.run(
            [self.binary, *args], input=stdin, capture_output=True, text=True,
            env=dict(self.env, **(env or {})), timeout=COMMAND_TIMEOUT,
        )
        return done.returncode, done.stdout, done.stderr

    def run_on_terminal(self, *args, env=None):
        """stdout on a pseudo-terminal, as a person sees it."""
        leader, follower = pty.openpty()
        proc = subprocess.Popen([self.binary, *args], stdout=follower, stderr=subprocess.DEVNULL,
                                env=dict(self.env, **(env or {})))
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        proc.wait(timeout=COMMAND_TIMEOUT)
        return proc.returncode, out.decode(errors="replace")


def one_clean_line(stderr):
    """One line, and not a panic of ours (a handler's panic may be the message)."""
    lines = stderr.strip().splitlines()
    return (len(lines) == 1 and lines[0].startswith("swarm: ")
            and "thread '" not in stderr and "backtrace" not in stderr.lower())


def parses(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


async def serve_schema_peer(nc, namespace):
    """A service `swarm-<namespace>` with kind `greeter`, handler `hello`, whose endpoint carries
    the arguments schema; its front door answers `{"ok": "hello <who>"}`."""
    name = "swarm-" + namespace.replace(".", "_")
    info = {
        "type": "io.nats.micro.v1.info_response", "name": name, "id": "schemapeer",
        "version": "0.1.0", "metadata": {"node": "schemapeer", "kinds": "greeter"},
        "description": "a peer publishing an arguments schema",
        "endpoints": [{
            "name": "greeter-hello", "subject": f"{namespace}.greeter.*.hello",
            "queue_group": f"{namespace}.greeter",
            "metadata": {"kind": "greeter", "handler": "hello", "request": "true",
                         ARGUMENTS_SCHEMA_KEY: json.dumps(HELLO_SCHEMA)},
        }],
    }

    async def on_info(msg):
        await msg.respond(json.dumps(info).encode())

    async def on_call(msg):
        args = json.loads(msg.data or b"{}")
        await msg.respond(json.dumps({"ok": f"hello {args.get('who')}"}).encode())

    await nc.subscribe(f"$SRV.INFO.{name}", cb=on_info)
    await nc.subscribe(f"{namespace}.greeter.*.hello", cb=on_call)
    await nc.flush()


def check_listing(swarm, ids, checks):
    code, out, err = swarm.run("nodes")
    checks.check("`swarm nodes` lists both nodes (a table when piped, no colour)",
                 code == 0 and all(i in out for i in ids) and out.startswith("NODE")
                 and "\x1b" not in out, f"rc {code}\n{out}{err}")
    code, out, err = swarm.run("--json", "nodes")
    nodes = parses(out)
    checks.check("`swarm --json nodes` parses: ids, version, kinds",
                 code == 0 and isinstance(nodes, list)
                 and sorted(n["id"] for n in nodes) == sorted(ids)
                 and all(set(n["kinds"]) == {"counter", "account"} and n["version"] for n in nodes),
                 f"rc {code}\n{out}{err}")
    code, out, err = swarm.run("kinds")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    checks.check("`swarm kinds` lists counter and account, each on 2 nodes",
                 code == 0 and rows.get("counter", [None, None])[1] == "2"
                 and rows.get("account", [None, None])[1] == "2", f"rc {code}\n{out}{err}")
    code, out, err = swarm.run("--json", "handlers", "counter")
    handlers = {h["handler"]: h for h in parses(out) or []}
    checks.check("`swarm --json handlers counter`: add answers, bump is fire-and-forget",
                 code == 0 and handlers.get("add", {}).get("answers") is True
                 and handlers.get("bump", {}).get("answers") is False
                 and len(handlers["add"]["nodes"]) == 2, f"rc {code}\n{out}{err}")
    add = handlers.get("add", {})
    checks.check("`swarm --json handlers counter` shows the schemas the agent publishes",
                 (add.get("arguments_schema") or {}).get("required") == ["n"]
                 and (add.get("reply_schema") or {}).get("title") == "counter.add reply",
                 f"{add}")
    code, out, err = swarm.run("handlers")
    checks.check("`swarm handlers` lists every kind's handlers",
                 code == 0 and "deposit" in out and "total_at_start" in out, f"{out}{err}")
    code, out, err = swarm.run("handlers", "countr")
    checks.check("`swarm handlers countr` exits 2 naming the kinds there are",
                 code == 2 and one_clean_line(err) and "kinds: account, counter" in err,
                 f"rc {code} {err!r}")


def check_calls(swarm, namespace, checks):
    code, out, err = swarm.run("call", "counter", "k1", "add", '{"n": 2}')
    checks.check("`swarm call counter k1 add '{\"n\": 2}'` prints the answer, exit 0",
                 code == 0 and parses(out) == {"Ok": 2}, f"rc {code} {out!r} {err!r}")
    # Each node has its own `k2` (serve_agents without a cluster), either may answer: fresh keys
    # give answers that do not depend on which.
    code, out, err = swarm.run("call", "counter", "k2", "add", "-", stdin='{"n": 3}')
    checks.check("arguments from stdin with `-`",
                 code == 0 and parses(out) == {"Ok": 3}, f"rc {code} {out!r} {err!r}")
    code, out, err = swarm.run("--json", "call", "counter", "k3", "total")
    checks.check("`--json call` prints the whole answer {\"ok\": ..}; no arguments is {}",
                 code == 0 and parses(out) == {"ok": 0}, f"rc {code} {out!r} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "bump")
    checks.check("a fire-and-forget handler prints null once delivered",
                 code == 0 and parses(out) is None and out.strip() == "null",
                 f"rc {code} {out!r} {err!r}")

    # The agent answers an error: exit 1, the error kind and message on stderr.
    code, out, err = swarm.run("call", "account", "13", "deposit", '{"amount": 5}')
    checks.check("an agent that fails to start: exit 1, start_failed and its reason on stderr",
                 code == 1 and one_clean_line(err) and "start_failed" in err
                 and "account 13 is closed" in err and out == "", f"rc {code} {out!r} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "crash", '{"why": "on purpose"}')
    checks.check("a handler that panics: exit 1, call_failed, not applied",
                 code == 1 and one_clean_line(err) and "call_failed" in err
                 and "on purpose" in err and "not applied" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("--json", "call", "account", "13", "deposit", '{"amount": 5}')
    checks.check("`--json call` of an error prints the error object too, exit 1",
                 code == 1 and (parses(out) or {}).get("error", {}).get("kind") == "start_failed",
                 f"rc {code} {out!r}")

    # Bad input: exit 2, one line that says what to do.
    code, out, err = swarm.run("call", "countr", "k1", "add", '{"n": 1}')
    checks.check("an unknown kind: exit 2, the kinds there are",
                 code == 2 and err.strip() == f"swarm: no kind `countr` in namespace "
                 f"`{namespace}`; kinds: account, counter (see `swarm kinds`)",
                 f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "ad", '{"n": 1}')
    checks.check("an unknown handler: exit 2, the handlers there are",
                 code == 2 and one_clean_line(err) and "has no handler `ad`" in err
                 and "add, bump" in err and "swarm handlers counter" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "add", "{n: 1}")
    checks.check("arguments that are not JSON: exit 2",
                 code == 2 and one_clean_line(err) and "not JSON" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "add", "[1]")
    checks.check("arguments that are not an object: exit 2",
                 code == 2 and one_clean_line(err) and "an array, not a JSON object" in err,
                 f"rc {code} {err!r}")
    # counter.add publishes its schema: these are refused before sending (check_stats counts
    # the calls that reached the nodes).
    code, out, err = swarm.run("call", "counter", "k1", "add", '{"n": "two"}')
    checks.check("arguments that violate a real agent's schema: exit 2, where and why, not sent",
                 code == 2 and one_clean_line(err) and "schema of `counter.add`" in err
                 and "/n" in err and "bad_arguments" not in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "add", '{"n": 1, "by": "me"}')
    checks.check("an argument the handler does not have is refused by its schema: exit 2",
                 code == 2 and one_clean_line(err) and "schema of `counter.add`" in err
                 and "by" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "k1", "add", "{}")
    checks.check("a missing argument is refused by the schema: exit 2, naming it",
                 code == 2 and one_clean_line(err) and "schema of `counter.add`" in err
                 and '"n"' in err, f"rc {code} {err!r}")
    # JSON Schema counts 1.0 as an integer; serde does not take it for a u64: the schema lets it
    # through and the node's own check answers.
    code, out, err = swarm.run("call", "counter", "k1", "add", '{"n": 1.0}')
    checks.check("what passes the schema is still checked by the node: bad_arguments, exit 2",
                 code == 2 and one_clean_line(err) and "bad_arguments" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("call", "counter", "a.b", "add", '{"n": 1}')
    checks.check("a key that is not one: exit 2, which character",
                 code == 2 and one_clean_line(err) and "'.' at byte 1" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("-n", "nobody.here", "call", "counter", "k1", "add")
    checks.check("a namespace nobody serves: exit 2, says to check -n",
                 code == 2 and one_clean_line(err) and "-n / SWARM_NAMESPACE" in err,
                 f"rc {code} {err!r}")


def check_schema(swarm, schema_ns, checks):
    code, out, err = swarm.run("-n", schema_ns, "call", "greeter", "g1", "hello", '{"who": 7}')
    checks.check("arguments that do not match the published schema: exit 2, where and why",
                 code == 2 and one_clean_line(err) and "schema of `greeter.hello`" in err
                 and "/who" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("-n", schema_ns, "call", "greeter", "g1", "hello", "{}")
    checks.check("a required argument missing from the schema's: exit 2",
                 code == 2 and one_clean_line(err) and "\"who\"" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("-n", schema_ns, "call", "greeter", "g1", "hello", '{"who": "ada"}')
    checks.check("arguments matching the schema are sent and answered",
                 code == 0 and parses(out) == "hello ada", f"rc {code} {out!r} {err!r}")
    code, out, err = swarm.run("-n", schema_ns, "--json", "handlers", "greeter")
    rows = parses(out) or [{}]
    checks.check("`handlers --json` shows the published schema",
                 code == 0 and rows[0].get("arguments_schema") == HELLO_SCHEMA, f"{out}{err}")


def check_stats(swarm, checks):
    # 2 good adds and the node's bad_arguments; the 3 refused by the schema never reached a node.
    # A node counts what its workers reported within 0.5 s of the request: asked again (a few
    # times at most) until a worker a loaded machine held back has reported.
    for _ in range(5):
        code, out, err = swarm.run("--json", "stats")
        stats = parses(out) or {}
        adds = [e for n in stats.get("nodes", []) for e in n["endpoints"]
                if (e["kind"], e["handler"]) == ("counter", "add")]
        counted = (code == 0 and len(stats.get("nodes", [])) == 2
                   and sum(e["requests"] for e in adds) == 3
                   and sum(e["errors"] for e in adds) == 1)
        if counted or code != 0:
            break
        time.sleep(0.5)
    checks.check("`swarm --json stats`: both nodes; counter.add counted 3 requests, 1 error",
                 counted and all(isinstance(n["agents_live"], int) for n in stats["nodes"]),
                 f"rc {code} {out[:2000]}{err}")
    code, out, err = swarm.run("stats")
    checks.check("`swarm stats` prints the per-handler table and the nodes' figures",
                 code == 0 and "AVG TIME" in out and "agents_live" in out and "crash" in out,
                 f"rc {code}\n{out}{err}")


async def check_watch(swarm, url, namespace, checks):
    proc = subprocess.Popen([swarm.binary, "--json", "watch", "--count", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=swarm.env)
    nc = await nats.connect(url, connect_timeout=5)
    calls = 0
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            await nc.request(f"{namespace}.counter.w{calls % 3}.add", b'{"n": 1}', timeout=10)
            calls += 1
            await asyncio.sleep(0.02)
    finally:
        await nc.close()
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    lines = [parses(line) for line in out.splitlines()]
    checks.check(f"`watch --count 2 --json` ({calls} calls meanwhile): 2 JSON lines, calls/s > 0",
                 proc.returncode == 0 and len(lines) == 2
                 and all(line and line["calls_per_s"] > 0 and line["nodes"] == 2
                         and line["kinds"]["counter"]["calls_per_s"] > 0 for line in lines),
                 f"rc {proc.returncode} {out!r} {err!r}")


def check_terminal(swarm, checks):
    code, out = swarm.run_on_terminal("nodes")
    checks.check("on a terminal the table has colour", code == 0 and "\x1b[" in out, repr(out))
    code, out = swarm.run_on_terminal("nodes", env={"NO_COLOR": "1"})
    checks.check("NO_COLOR turns colour off on a terminal",
                 code == 0 and "\x1b[" not in out and "NODE" in out, repr(out))
    code, out = swarm.run_on_terminal("--json", "nodes")
    checks.check("--json on a terminal: JSON, no colour",
                 code == 0 and "\x1b[" not in out and parses(out) is not None, repr(out))


def check_without_server(swarm, checks):
    code, out, err = swarm.run("--server", f"nats://127.0.0.1:{free_port()}", "nodes")
    checks.check("no server: exit 3, one line saying where it looked",
                 code == 3 and one_clean_line(err) and "cannot connect" in err, f"rc {code} {err!r}")
    code, out, err = swarm.run("--server", f"nats://127.0.0.1:{free_port()}", "call", "counter",
                               "k1", "add", "[1]")
    checks.check("bad input is found before connecting: exit 2, not 3",
                 code == 2 and one_clean_line(err), f"rc {code} {err!r}")
    code, out, err = swarm.run("--help")
    checks.check("--help documents the exit codes",
                 code == 0 and "Exit codes:" in out and "3  cannot connect" in out, out[-600:])


async def run(swarm, url, ids, namespace, schema_ns, checks):
    nc = await nats.connect(url, connect_timeout=5)
    try:
        await serve_schema_peer(nc, schema_ns)
        # The binary runs as a subprocess; the peer answers from this loop meanwhile.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, check_listing, swarm, ids, checks)
        await loop.run_in_executor(None, check_calls, swarm, namespace, checks)
        await loop.run_in_executor(None, check_schema, swarm, schema_ns, checks)
        await loop.run_in_executor(None, check_stats, swarm, checks)
    finally:
        await nc.close()
    await check_watch(swarm, url, namespace, checks)
    check_terminal(swarm, checks)
    check_without_server(swarm, checks)


def main():
    binary, runner, wasm = (os.path.abspath(arg) for arg in sys.argv[1:4])
    work = tempfile.mkdtemp(prefix="swarm-cli-")
    namespace = f"cli.{os.getpid()}x{int(time.time())}"
    schema_ns = f"{namespace}s"
    checks = Checks()
    server = None
    nodes = []
    try:
        server, url = nats_server(work)
        start_nodes(runner, wasm, url, namespace, work, nodes)
        swarm = Swarm(binary, url, namespace)
        ids = [node_id for _, _, node_id in nodes]
        asyncio.run(asyncio.wait_for(run(swarm, url, ids, namespace, schema_ns, checks),
                                     timeout=300))
    except Exception as err:  # a crash of the check itself is a failure, reported as one
        checks.failures.append(f"the check did not complete: {type(err).__name__}: {err}")
        print(f"FAILED: {checks.failures[-1]}")
    finally:
        finish("cli", checks, nodes, server, work)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A local swarm cluster as real OS processes: nats-servers with JetStream, and swarm nodes.

As a library (tests/support/cluster_faults.py uses it):

  NatsCluster(n=3, jetstream=True, base_dir=None)
      n nats-servers on loopback, routed into one cluster, each with its own `server_name`,
      JetStream store directory and random free ports (client, route, HTTP monitor). The
      constructor returns once every server is healthy and JetStream has a meta leader (at most
      20 s). `.urls`, `.kill(i)` (SIGKILL), `.stop(i)` (SIGTERM), `.start(i)` (same ports and
      store directory, so the server rejoins; waits until it is healthy again), `.restart(i)`,
      `.leader_of_stream(stream)` (asks `$JS.API.STREAM.INFO.<stream>` and maps the leader's
      server name to its index), `.close()`.
  Node(name, wasm, env)
      a swarm node: `scripts/lunatic-runner <wasm>` as an OS process in its own process group,
      with `env` (see `node_env`) on top of this process's environment. A reader thread collects
      its stdout lines with their monotonic arrival time in `.lines`. `.start()` waits for the
      `swarm-cluster-node ready` line; `.kill()`, `.sigstop()`, `.sigcont()`, `.drain()` (NATS
      request to `_SWARM.<ns>.control.<name>.drain`, then waits for the process to exit),
      `.count(pattern)`, `.wait_line(pattern)`.

Every process started here is stopped when this program exits (atexit, SIGTERM/SIGINT/SIGHUP),
gets SIGKILL from the kernel if this program dies without cleaning up (PR_SET_PDEATHSIG), and
everything stops when the process that started this program goes away. Every wait is bounded.

As a CLI (scripts/cluster is a thin wrapper):

  cluster.py up [--nodes 3] [--ttl-ms 10000] [--namespace swarm] [--replicas 3]
      builds the node (`cargo build -p swarm-examples --example cluster_node --target
      wasm32-wasip1 --release`), then starts a detached supervisor that runs a 3-server cluster
      and the nodes, keeping its state in .cluster/ (state.json, logs/, nats/); prints the URLs
      and how to call an agent.
  cluster.py status      what runs, from .cluster/state.json, checked against the processes.
  cluster.py down        stops the supervisor, which stops the nodes and the servers.

Everything listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "scripts", "lunatic-runner")
STATE_DIR = os.path.join(REPO, ".cluster")
CLUSTER_READY_TIMEOUT = 20.0
SERVER_STOP_TIMEOUT = 10.0
NODE_READY_TIMEOUT = 60.0
NODE_STOP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 15.0
REQUEST_TIMEOUT = 5.0
# How often a server pings its clients, and how many unanswered pings close the connection. The
# default (2 min x 2) would keep a SIGSTOPped node's queue subscriptions alive at the server for
# minutes, and requests the server hands to them are lost; a local test cluster wants seconds.
SERVER_PING_INTERVAL = "2s"
SERVER_PING_MAX = 3


def nats_server_binary():
    pinned = os.path.join(REPO, ".tools", "venv", "bin", "nats-server")
    found = pinned if os.access(pinned, os.X_OK) else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server is not installed; run scripts/setup first")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- process bookkeeping: everything started here goes when this program goes ------------------

_children = []  # Popen objects started by this module and not yet reaped
_children_lock = threading.Lock()
_cleanup_installed = False
_libc = None


def _die_with_parent():
    """Runs in the child before exec: SIGKILL when the thread that started it exits. Only used
    for children started from the main thread (whose exit is the program's exit)."""
    PR_SET_PDEATHSIG = 1
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _spawn(argv, **kwargs):
    global _libc
    install_cleanup()
    if threading.current_thread() is threading.main_thread() and sys.platform == "linux":
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        kwargs["preexec_fn"] = _die_with_parent
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    with _children_lock:
        _children.append(proc)
    return proc


def _forget(proc):
    with _children_lock:
        if proc in _children:
            _children.remove(proc)


def _end(proc, sig, timeout):
    """Sends `sig` to the process group of `proc` (ours: start_new_session), SIGKILL if it has
    not exited after `timeout`; returns its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    _forget(proc)
    return proc.returncode


def cleanup_all():
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        # A stopped process cannot act on SIGTERM until it is continued.
        try:
            os.killpg(proc.pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass
        _end(proc, signal.SIGTERM, 3.0)


def _on_signal(signum, _frame):
    cleanup_all()
    os._exit(128 + signum)


def _watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    cleanup_all()
    os._exit(1)


def install_cleanup(watch_parent=True):
    """Stops every child on exit, on SIGTERM/SIGINT/SIGHUP and (unless `watch_parent` is off,
    for the detached supervisor) when the process that started this program is gone."""
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)
    if watch_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def run_async(make_coro, timeout):
    """Runs `make_coro()` on a private event loop in a helper thread, so that it works from plain
    code and from inside a running event loop alike; returns its result or raises its error."""
    result, error = [], []

    def thread():
        try:
            result.append(asyncio.run(asyncio.wait_for(make_coro(), timeout)))
        except BaseException as e:  # re-raised in the caller's thread
            error.append(e)

    t = threading.Thread(target=thread, daemon=True)
    t.start()
    t.join(timeout + 5)
    if error:
        raise error[0]
    if not result:
        raise TimeoutError(f"no answer within {timeout}s")
    return result[0]


async def _quiet(_error):
    """nats-py prints every connection error unless given a callback; callers see the errors
    that matter as failed requests."""


async def nats_request(urls, subject, payload, timeout=REQUEST_TIMEOUT):
    """One request on a fresh nats-py connection; returns the reply's payload."""
    import nats

    nc = await nats.connect(servers=list(urls), connect_timeout=2, max_reconnect_attempts=2,
                            allow_reconnect=True, error_cb=_quiet)
    try:
        msg = await nc.request(subject, payload, timeout=timeout)
        return msg.data
    finally:
        await nc.close()


# --- nats-servers ----------------------------------------------------------------------------


def _http_json(port, path, timeout=1.0):
    """GET on a server's monitoring port: (status, parsed body or None)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return None, None


class NatsServer:
    """One server of a NatsCluster; its ports and store directory stay the same across restarts."""

    def __init__(self, index, name, root, cluster_name, route_ports, jetstream):
        self.index = index
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.monitor_port = free_port()
        self.route_port = route_ports[index]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = os.path.join(self.dir, "server.log")
        self.proc = None
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for i, p in enumerate(route_ports)
                           if i != index)
        conf = [
            f"server_name: {name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.monitor_port}",
            f'ping_interval: "{SERVER_PING_INTERVAL}"',
            f"ping_max: {SERVER_PING_MAX}",
            "cluster {",
            f"  name: {cluster_name}",
            f"  listen: 127.0.0.1:{self.route_port}",
            f"  routes: [{routes}]",
            "}",
        ]
        if jetstream:
            conf += ["jetstream {", f'  store_dir: "{os.path.join(self.dir, "js")}"', "}"]
        self.conf = os.path.join(self.dir, "server.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    def spawn(self):
        if self.running():
            raise RuntimeError(f"nats-server {self.name} is already running")
        with open(self.log, "ab") as log:
            self.proc = _spawn([nats_server_binary(), "-c", self.conf],
                               stdout=log, stderr=subprocess.STDOUT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal_and_wait(self, sig):
        if self.proc is not None:
            _end(self.proc, sig, SERVER_STOP_TIMEOUT)
        self.proc = None

    def healthy(self, jetstream):
        if not self.running():
            return False
        status, _ = _http_json(self.monitor_port, "/healthz")
        if status != 200:
            return False
        if jetstream:
            _, jsz = _http_json(self.monitor_port, "/jsz")
            if not jsz or not (jsz.get("meta_cluster") or {}).get("leader"):
                return False
        return True

    def routes(self):
        _, routez = _http_json(self.monitor_port, "/routez")
        return (routez or {}).get("num_routes", 0)

    def log_tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class NatsCluster:
    def __init__(self, n=3, jetstream=True, base_dir=None, cluster_name="swarm-local"):
        if n < 1:
            raise ValueError(f"a cluster needs at least one server, not {n}")
        install_cleanup()
        self.jetstream = jetstream
        self._own_dir = base_dir is None
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="swarm-nats-cluster-")
        os.makedirs(self.base_dir, exist_ok=True)
        route_ports = [free_port() for _ in range(n)]
        self.servers = [NatsServer(i, f"n{i}", self.base_dir, cluster_name, route_ports, jetstream)
                        for i in range(n)]
        try:
            for s in self.servers:
                s.spawn()
            self.wait_healthy(range(n))
        except BaseException:
            self.close()
            raise

    @property
    def urls(self):
        return [s.url for s in self.servers]

    def wait_healthy(self, indexes, timeout=CLUSTER_READY_TIMEOUT):
        """Until each server in `indexes` is healthy, routed to every other running server and
        (with JetStream) sees a meta leader; raises with the servers' log tails otherwise."""
        indexes = list(indexes)
        deadline = time.monotonic() + timeout
        while True:
            running = sum(1 for s in self.servers if s.running())
            pending = [i for i in indexes
                       if not (self.servers[i].healthy(self.jetstream)
                               and self.servers[i].routes() >= running - 1)]
            if not pending:
                return
            dead = [i for i in pending if not self.servers[i].running()]
            if dead or time.monotonic() > deadline:
                why = "exited" if dead else f"not healthy within {timeout}s"
                tails = "\n".join(f"--- {self.servers[i].name} ({self.servers[i].log}):\n"
                                  f"{self.servers[i].log_tail()}" for i in (dead or pending))
                raise RuntimeError(f"nats-servers {[self.servers[i].name for i in (dead or pending)]} "
                                   f"{why}\n{tails}")
            time.sleep(0.1)

    def kill(self, i):
        self.servers[i].signal_and_wait(signal.SIGKILL)

    def stop(self, i):
        self.servers[i].signal_and_wait(signal.SIGTERM)

    def start(self, i, wait=True):
        """Starts server `i` again on its ports and store directory; with `wait`, returns once it
        rejoined: healthy, routed, and every stream's replicas caught up (see `wait_rejoined`)."""
        self.servers[i].spawn()
        if wait:
            self.wait_rejoined(i)

    def wait_rejoined(self, i, timeout=CLUSTER_READY_TIMEOUT):
        # /healthz can answer 200 before the restarted server has started to catch up on a
        # stream (measured: a replica 43 messages behind, `current: false`, after /healthz said
        # ok), so the streams' own view is checked too.
        started = time.monotonic()
        self.wait_healthy([i], timeout)
        if not self.jetstream:
            return
        while True:
            left = timeout - (time.monotonic() - started)
            try:
                lagging = run_async(self.lagging_streams, max(left, 1.0))
            except Exception as e:  # no leader yet, or the request raced an election
                lagging = [f"({e})"]
            if not lagging:
                return
            if left <= 0:
                raise RuntimeError(f"nats-server {self.servers[i].name} rejoined, but streams "
                                   f"were not caught up within {timeout}s: {lagging}")
            time.sleep(0.2)

    async def lagging_streams(self):
        """The streams without a leader, or with a replica that is not current or missing."""
        import nats

        urls = [s.url for s in self.servers if s.running()]
        nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=2,
                                error_cb=_quiet)
        try:
            names, offset = [], 0
            while True:
                page = json.loads((await nc.request("$JS.API.STREAM.NAMES",
                                                    json.dumps({"offset": offset}).encode(),
                                                    timeout=REQUEST_TIMEOUT)).data)
                if "error" in page:
                    raise RuntimeError(f"stream names: {page['error']}")
                names += page.get("streams") or []
                offset = len(names)
                if offset >= page.get("total", 0) or not page.get("streams"):
                    break
            lagging = []
            for name in names:
                info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{name}", b"",
                                                    timeout=REQUEST_TIMEOUT)).data)
                cluster = info.get("cluster") or {}
                want = (info.get("config") or {}).get("num_replicas", 1) - 1
                replicas = cluster.get("replicas") or []
                if ("error" in info or not cluster.get("leader") or len(replicas) < want
                        or not all(r.get("current") for r in replicas)):
                    lagging.append(name)
            return lagging
        finally:
            await nc.close()

    def restart(self, i):
        self.stop(i)
        self.start(i)

    async def stream_info(self, stream, timeout=REQUEST_TIMEOUT):
        """`$JS.API.STREAM.INFO.<stream>` through the running servers; the parsed reply."""
        urls = [s.url for s in self.servers if s.running()]
        reply = json.loads(await nats_request(urls, f"$JS.API.STREAM.INFO.{stream}", b"",
                                              timeout=timeout))
        if "error" in reply:
            raise RuntimeError(f"stream info of {stream}: {reply['error']}")
        return reply

    async def leader_of_stream_async(self, stream, timeout=REQUEST_TIMEOUT):
        info = await self.stream_info(stream, timeout)
        leader = (info.get("cluster") or {}).get("leader")
        for s in self.servers:
            if s.name == leader:
                return s.index
        raise RuntimeError(f"stream {stream} has no leader among {[s.name for s in self.servers]} "
                           f"(cluster info: {info.get('cluster')})")

    def leader_of_stream(self, stream):
        """Index of the server that leads `stream` now."""
        return run_async(lambda: self.leader_of_stream_async(stream), REQUEST_TIMEOUT + 2)

    def close(self):
        for s in self.servers:
            s.signal_and_wait(signal.SIGTERM)
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


# --- swarm nodes -------------------------------------------------------------------------------

READY = re.compile(r"^swarm-cluster-node ready name=(\S+) id=(\S+) incarnation=(\d+)")


def node_env(servers, namespace, name, ttl_ms, replicas):
    """The variables a cluster node reads."""
    if replicas not in (1, 3):
        raise ValueError(f"replicas must be 1 or 3, not {replicas}")
    return {
        "SWARM_CLUSTER_SERVERS": ",".join(servers),
        "SWARM_NAMESPACE": namespace,
        "SWARM_NODE_NAME": name,
        "SWARM_LEASE_TTL_MS": str(ttl_ms),
        "SWARM_REPLICAS": str(replicas),
    }


def find_node_wasm(profiles=("release", "debug")):
    """The built `cluster_node` example: under $CARGO_TARGET_DIR, then this repository's
    target/; the newest of the profiles given. None when it was never built."""
    roots = [os.environ.get("CARGO_TARGET_DIR"), os.path.join(REPO, "target")]
    found = []
    for root in filter(None, roots):
        for profile in profiles:
            path = os.path.join(root, "wasm32-wasip1", profile, "examples", "cluster_node.wasm")
            if os.path.isfile(path):
                found.append(path)
    return max(found, key=os.path.getmtime) if found else None


NODE_EXAMPLE_MISSING = (
    "the swarm cluster node is not built: no target/wasm32-wasip1/*/examples/cluster_node.wasm. "
    "It is the example `cluster_node` of the package swarm-examples (examples/cluster_node.rs); "
    "build it with `cargo build -p swarm-examples --example cluster_node --target wasm32-wasip1 "
    "--release`" + ("" if os.path.exists(os.path.join(REPO, "examples", "cluster_node.rs"))
                    else " (examples/cluster_node.rs does not exist in this checkout yet)"))


class Node:
    def __init__(self, name, wasm, env, log_path=None, cwd=None):
        if not os.path.isfile(wasm):
            raise FileNotFoundError(f"node {name}: {wasm} does not exist; {NODE_EXAMPLE_MISSING}")
        self.name = name
        self.wasm = wasm
        self.env = dict(env)
        self.env.setdefault("SWARM_NODE_NAME", name)
        self.namespace = self.env.get("SWARM_NAMESPACE", "")
        self.servers = [u for u in self.env.get("SWARM_CLUSTER_SERVERS", "").split(",") if u]
        self.log_path = log_path
        self.cwd = cwd or REPO
        self.proc = None
        self.lines = []  # stdout: (monotonic time, line) over every process this node ran
        self.err_lines = []  # stderr, likewise (diagnostics; the protocol lines are on stdout)
        self.node_id = None
        self.incarnation = None
        self.starts = 0
        self._lock = threading.Lock()

    def spawn(self):
        """Starts the OS process and returns at once (see `start`)."""
        if self.running():
            raise RuntimeError(f"node {self.name} is already running (pid {self.proc.pid})")
        env = dict(os.environ)
        env.setdefault("RUST_LIB_BACKTRACE", "0")
        env["PATH"] = os.pathsep.join([os.path.expanduser("~/.cargo/bin"),
                                       os.path.join(REPO, ".tools", "venv", "bin"),
                                       env.get("PATH", "")])
        env.update(self.env)
        if self.log_path:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.proc = _spawn([RUNNER, self.wasm], cwd=self.cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.starts += 1
        self.spawned_at = time.monotonic()
        self.start_index = len(self.lines)
        for stream, lines, suffix in ((self.proc.stdout, self.lines, ""),
                                      (self.proc.stderr, self.err_lines, ".stderr")):
            log = self.log_path + suffix if self.log_path else None
            threading.Thread(target=self._read, args=(stream, lines, log), daemon=True).start()

    def _read(self, stream, lines, log_path):
        log = open(log_path, "a") if log_path else None
        try:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip("\n")
                with self._lock:
                    lines.append((time.monotonic(), line))
                if log:
                    log.write(line + "\n")
                    log.flush()
        finally:
            if log:
                log.close()

    def _ready_from(self, index):
        match = self.find(READY, index)
        if match:
            t, m = match
            self.node_id, self.incarnation = m.group(2), int(m.group(3))
            self.ready_after = t - self.spawned_at
        return match

    def start(self, timeout=NODE_READY_TIMEOUT):
        """Starts the node and waits for its `ready` line."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=NODE_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._ready_by(deadline, timeout):
            time.sleep(0.02)

    async def wait_ready_async(self, timeout=NODE_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._ready_by(deadline, timeout):
            await asyncio.sleep(0.02)

    def _ready_by(self, deadline, timeout):
        """Whether the node said `ready`; raises if it died or `deadline` passed first."""
        if self._ready_from(self.start_index):
            return True
        self._check_alive("before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"node {self.name} was not ready within {timeout}s; "
                               f"{self.describe()}")
        return False

    def _check_alive(self, when):
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"node {self.name} exited with {self.proc.returncode} {when}; "
                               f"{self.describe()}")

    def describe(self):
        out = "\n".join(line for _, line in self.lines[-10:])
        err = "\n".join(line for _, line in self.err_lines[-10:])[-1500:]
        return f"last stdout lines:\n{out or '(none)'}\nstderr tail:\n{err or '(none)'}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig):
        if not self.running():
            raise RuntimeError(f"node {self.name} is not running")
        os.killpg(self.proc.pid, sig)

    def kill(self):
        """SIGKILL; returns once the process is gone (its kill time is the caller's to take)."""
        if self.proc is not None:
            _end(self.proc, signal.SIGKILL, NODE_STOP_TIMEOUT)

    def sigstop(self):
        self._signal(signal.SIGSTOP)

    def sigcont(self):
        self._signal(signal.SIGCONT)

    def stop(self, timeout=NODE_STOP_TIMEOUT):
        """SIGTERM, SIGKILL after `timeout`; the exit status."""
        return None if self.proc is None else _end(self.proc, signal.SIGTERM, timeout)

    def drain_subject(self):
        return f"_SWARM.{self.namespace}.control.{self.name}.drain"

    async def drain_async(self, nc=None, timeout=DRAIN_TIMEOUT):
        """Asks the node to drain and waits for its reply and its exit (status 0 and a `drained`
        line expected); returns (reply payload, seconds to the reply, seconds to the exit)."""
        if not self.running():
            raise RuntimeError(f"node {self.name} is not running")
        index = len(self.lines)
        sent = time.monotonic()
        if nc is None:
            reply = await nats_request(self.servers, self.drain_subject(), b"{}", timeout=timeout)
        else:
            reply = (await nc.request(self.drain_subject(), b"{}", timeout=timeout)).data
        replied = time.monotonic()
        try:
            answer = json.loads(reply)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "error" in answer:
            raise RuntimeError(f"node {self.name} refused the drain: {answer['error']}")
        while self.proc.poll() is None:
            if time.monotonic() - sent > timeout:
                raise TimeoutError(f"node {self.name} answered the drain but did not exit within "
                                   f"{timeout}s; {self.describe()}")
            await asyncio.sleep(0.02)
        exited = time.monotonic()
        _forget(self.proc)
        # The reader thread may still be reading the last lines the process wrote.
        for _ in range(100):
            if self.find(r"^swarm-cluster-node drained ", index):
                break
            await asyncio.sleep(0.02)
        if self.proc.returncode != 0:
            raise RuntimeError(f"node {self.name} exited with {self.proc.returncode} after a "
                               f"drain; {self.describe()}")
        if not self.find(r"^swarm-cluster-node drained ", index):
            raise RuntimeError(f"node {self.name} exited without a `drained` line")
        return reply, replied - sent, exited - sent

    def drain(self, timeout=DRAIN_TIMEOUT):
        return run_async(lambda: self.drain_async(timeout=timeout), timeout * 2 + 2)

    def find(self, pattern, since=0):
        """The first (time, match) of `pattern` in the lines from index `since`, or None."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._lock:
            lines = self.lines[since:]
        for t, line in lines:
            m = rx.search(line)
            if m:
                return t, m
        return None

    def count(self, pattern, since=0, stderr=False):
        """Lines of stdout (or stderr) from index `since` that match `pattern`."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._lock:
            lines = (self.err_lines if stderr else self.lines)[since:]
        return sum(1 for _, line in lines if rx.search(line))

    def wait_line(self, pattern, timeout, since=0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(pattern, since)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    async def wait_line_async(self, pattern, timeout, since=0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(pattern, since)
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.02)


# --- the CLI: scripts/cluster up | status | down -------------------------------------------------

STATE_FILE = os.path.join(STATE_DIR, "state.json")


def _pid_is(pid, marker):
    """Whether `pid` is alive and its command line contains `marker` (so a recycled pid is never
    signalled)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return False


def _read_state():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_state(state):
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2)
    os.rename(tmp, STATE_FILE)


def _supervisor_running(state):
    return bool(state) and _pid_is(state.get("supervisor_pid", -1), "cluster.py")


def cmd_up(args):
    if args.nodes < 1:
        sys.exit(f"cluster: --nodes must be at least 1, not {args.nodes}")
    if args.ttl_ms < 1000:
        sys.exit(f"cluster: --ttl-ms must be at least 1000, not {args.ttl_ms}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.namespace):
        sys.exit(f"cluster: the namespace must be one NATS subject token of letters, digits, _ "
                 f"and -, not {args.namespace!r}")
    state = _read_state()
    if _supervisor_running(state):
        sys.exit(f"cluster: already running (supervisor pid {state['supervisor_pid']}); "
                 "`scripts/cluster down` first")
    if not os.path.exists(os.path.join(REPO, "examples", "cluster_node.rs")):
        sys.exit("cluster: examples/cluster_node.rs does not exist in this checkout yet: there is "
                 "no swarm cluster node to start")
    print("cluster: building the node (cargo build -p swarm-examples --example cluster_node "
          "--target wasm32-wasip1 --release)", file=sys.stderr)
    built = subprocess.run(["cargo", "build", "-p", "swarm-examples", "--example", "cluster_node",
                            "--target", "wasm32-wasip1", "--release"], cwd=REPO)
    if built.returncode != 0:
        sys.exit("cluster: the node did not build")
    wasm = find_node_wasm(profiles=("release",))
    if wasm is None:
        sys.exit(f"cluster: {NODE_EXAMPLE_MISSING}")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    os.makedirs(os.path.join(STATE_DIR, "logs"))
    with open(os.path.join(STATE_DIR, "supervisor.log"), "ab") as log:
        sup = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "supervise", "--nodes", str(args.nodes),
             "--ttl-ms", str(args.ttl_ms), "--namespace", args.namespace,
             "--replicas", str(args.replicas), "--wasm", wasm],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO)
    deadline = time.monotonic() + CLUSTER_READY_TIMEOUT + NODE_READY_TIMEOUT
    while True:
        state = _read_state()
        if state and state.get("status") == "ready":
            break
        if sup.poll() is not None or time.monotonic() > deadline:
            if sup.poll() is None:
                os.killpg(sup.pid, signal.SIGTERM)
            with open(os.path.join(STATE_DIR, "supervisor.log"), errors="replace") as f:
                tail = f.read()[-3000:]
            sys.exit(f"cluster: did not come up; .cluster/supervisor.log ends with:\n{tail}")
        time.sleep(0.1)
    print_usage(state)


def print_usage(state):
    ns, urls = state["namespace"], state["urls"]
    print(f"swarm cluster up (namespace {ns}, lease TTL {state['ttl_ms']} ms, "
          f"R{state['replicas']}); state and logs in .cluster/")
    for s in state["servers"]:
        print(f"  nats-server {s['name']}: {s['url']}  (monitor http://127.0.0.1:{s['monitor_port']})")
    for n in state["nodes"]:
        print(f"  node {n['name']}: pid {n['pid']}, id {n['id']}, incarnation {n['incarnation']}")
    print("call an agent (through any server; whichever node gets it, the key's owner serves it):")
    print(f"  nats req --server {urls[0]} {ns}.ledger.demo.append '{{\"value\": 1}}'")
    print(f"  nats req --server {urls[0]} {ns}.ledger.demo.entries '{{}}'")
    print("or with nats-py:")
    print("  .tools/venv/bin/python - <<'EOF'\n"
          "import asyncio, nats\n"
          "async def main():\n"
          f"    nc = await nats.connect({urls!r})\n"
          f"    reply = await nc.request('{ns}.ledger.demo.append', b'{{\"value\": 1}}', timeout=5)\n"
          "    print(reply.data.decode())\n"
          "    await nc.close()\n"
          "asyncio.run(main())\n"
          "EOF")
    print("stop it: scripts/cluster down")


def cmd_supervise(args):
    """The detached process that owns the cluster: starts it, records it, stops it on SIGTERM."""
    stop = threading.Event()
    install_cleanup(watch_parent=False)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = NatsCluster(3, jetstream=True, base_dir=os.path.join(STATE_DIR, "nats"))
    nodes = []
    for i in range(args.nodes):
        name = f"node{i}"
        # Each node lists the servers starting from a different one, so that a client that takes
        # the first URL spreads the nodes over the servers.
        servers = cluster.urls[i % 3:] + cluster.urls[:i % 3]
        env = node_env(servers, args.namespace, name, args.ttl_ms, args.replicas)
        nodes.append(Node(name, args.wasm, env,
                          log_path=os.path.join(STATE_DIR, "logs", f"{name}.log")))
    for node in nodes:
        node.spawn()
    for node in nodes:
        node.wait_ready()
    state = {
        "status": "ready",
        "supervisor_pid": os.getpid(),
        "namespace": args.namespace,
        "ttl_ms": args.ttl_ms,
        "replicas": args.replicas,
        "urls": cluster.urls,
        "servers": [{"name": s.name, "pid": s.proc.pid, "url": s.url,
                     "monitor_port": s.monitor_port} for s in cluster.servers],
        "nodes": [{"name": n.name, "pid": n.proc.pid, "id": n.node_id,
                   "incarnation": n.incarnation, "log": n.log_path} for n in nodes],
    }
    _write_state(state)
    print(f"supervisor: cluster ready, pid {os.getpid()}", flush=True)
    while not stop.wait(1.0):
        for n in nodes:
            if n.proc.poll() is not None and not getattr(n, "reported", False):
                n.reported = True
                print(f"supervisor: node {n.name} exited with {n.proc.returncode}", flush=True)
    print("supervisor: stopping", flush=True)
    for n in nodes:
        n.stop()
    cluster.close()
    state["status"] = "stopped"
    _write_state(state)


def cmd_status(_args):
    state = _read_state()
    if not state or state.get("status") != "ready" or not _supervisor_running(state):
        print("cluster: not running")
        sys.exit(1)
    print(f"swarm cluster (supervisor pid {state['supervisor_pid']}, namespace "
          f"{state['namespace']}, lease TTL {state['ttl_ms']} ms, R{state['replicas']})")
    all_up = True
    for s in state["servers"]:
        alive = _pid_is(s["pid"], "nats-server")
        status, _ = _http_json(s["monitor_port"], "/healthz") if alive else (None, None)
        up = alive and status == 200
        all_up &= up
        print(f"  nats-server {s['name']} {s['url']}: "
              f"{'healthy' if up else 'running, not healthy' if alive else 'gone'}")
    for n in state["nodes"]:
        alive = _pid_is(n["pid"], "lunatic")
        all_up &= alive
        last = ""
        try:
            with open(n["log"], errors="replace") as f:
                lines = f.read().splitlines()
            last = lines[-1] if lines else ""
        except OSError:
            pass
        print(f"  node {n['name']} (pid {n['pid']}): {'running' if alive else 'gone'}; "
              f"last line: {last}")
    sys.exit(0 if all_up else 1)


def cmd_down(_args):
    state = _read_state()
    if not _supervisor_running(state):
        print("cluster: not running")
        return
    pid = state["supervisor_pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + NODE_STOP_TIMEOUT + SERVER_STOP_TIMEOUT + 5
    while _pid_is(pid, "cluster.py") and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_is(pid, "cluster.py"):
        # The supervisor did not stop in time: end it and what it recorded, checked by name.
        for entry, marker in [(state, "cluster.py")] + \
                [(s, "nats-server") for s in state["servers"]] + \
                [(n, "lunatic") for n in state["nodes"]]:
            p = entry.get("supervisor_pid", entry.get("pid"))
            if _pid_is(p, marker):
                os.kill(p, signal.SIGKILL)
        print("cluster: the supervisor did not stop in time; killed it and its processes")
    print("cluster: stopped")


def main():
    parser = argparse.ArgumentParser(prog="scripts/cluster",
                                     description="A local swarm cluster on loopback.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,status,down}")
    for name in ("up", "supervise"):
        # `supervise` is the detached process `up` starts, not a command for people.
        p = sub.add_parser(name, **({"help": "start the cluster"} if name == "up" else {}))
        p.add_argument("--nodes", type=int, default=3)
        p.add_argument("--ttl-ms", type=int, default=10000)
        p.add_argument("--namespace", default="swarm")
        p.add_argument("--replicas", type=int, choices=(1, 3), default=3)
        if name == "supervise":
            p.add_argument("--wasm", required=True)
    sub.add_parser("status", help="what runs")
    sub.add_parser("down", help="stop everything")
    args = parser.parse_args()
    {"up": cmd_up, "supervise": cmd_supervise, "status": cmd_status, "down": cmd_down}[
        args.command](args)


if __name__ == "__main__":
    main()

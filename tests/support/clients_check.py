"""The client examples in other languages against a real node: starts a Lunatic node serving the
demo's agents (examples/agents_node.rs) on the harness's NATS server, in a namespace of its own,
then runs clients/python/chat_client.py (nats-py) and clients/js/chat_client.mjs (the official
@nats-io client on Node.js) against it. Each example checks its own answers and exits 0 only when
all were as expected (answers, a handler's own error as data, and the front door's refusals).

    python tests/support/clients_check.py <runner> <agents_node.wasm>

Uses SWARM_NATS_URL (scripts/test's harness) or starts its own nats-server. Prints the lines
scripts/test adds up ("test result: ...") and exits 1 on any failure.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import discovery_check  # noqa: E402  (next to this file: starting and stopping servers)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_START_TIMEOUT = 90
EXAMPLE_TIMEOUT = 60


def start_node(runner, wasm, url, namespace, log_path):
    env = dict(os.environ, SWARM_NATS_URL=url, SWARM_NAMESPACE=namespace)
    env.setdefault("RUST_LIB_BACKTRACE", "0")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([runner, wasm], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + NODE_START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log_path) as log:
            if "swarm-agents-node ready" in log.read():
                return proc
        time.sleep(0.1)
    discovery_check.stop(proc)
    with open(log_path) as log:
        raise RuntimeError(f"the node did not start serving: {log.read()[-3000:]}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    runner, wasm = (os.path.abspath(arg) for arg in sys.argv[1:3])
    work = tempfile.mkdtemp(prefix="swarm-clients-")
    server, url = discovery_check.nats_server(work)
    namespace = f"clients{random.randrange(16**6):06x}"
    node = None
    passed = failed = 0
    try:
        node = start_node(runner, wasm, url, namespace, os.path.join(work, "node.log"))
        examples = [
            ("Python (nats-py)", [sys.executable, "clients/python/chat_client.py", url, namespace]),
            ("JavaScript (@nats-io/transport-node)",
             ["node", "clients/js/chat_client.mjs", url, namespace]),
        ]
        for name, command in examples:
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            try:
                done = subprocess.run(command, cwd=ROOT, timeout=EXAMPLE_TIMEOUT)
                ok = done.returncode == 0
                why = f"exit code {done.returncode}"
            except (OSError, subprocess.TimeoutExpired) as err:
                ok, why = False, str(err)
            print(f"{'ok' if ok else 'FAILED'}: {name}" + ("" if ok else f" ({why})"), flush=True)
            passed, failed = passed + ok, failed + (not ok)
    except Exception as err:  # a node that does not start fails the check, with its log
        print(f"FAILED: {err}", flush=True)
        failed += 1
    finally:
        if node is not None:
            discovery_check.stop(node)
        if server is not None:
            discovery_check.stop(server)
        if failed:
            try:
                with open(os.path.join(work, "node.log")) as log:
                    print(f"-- the node's log:\n{log.read()[-3000:]}")
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    print(f"test result: {'ok' if not failed else 'FAILED'}. {passed} passed; {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fault test of the pipeline example (examples/pipeline.rs): orders -> inventory -> notifications
on one JetStream stream, with the node SIGKILLed mid-stream and started again.

- starts a nats-server with JetStream and the node (the `pipeline`
  example under Lunatic, as a real OS process, with a file store in a fresh directory);
- publishes ORDERS orders into the stream (JetStream publishes, `Nats-Msg-Id` = the order id,
  retried on a failure) at a steady rate; after KILL_AFTER of them, SIGKILLs the node while it is
  working through the stream, and starts it again at once on the same store while the orders go
  on (the stream keeps them);
- waits until every customer's notifications add up to ORDERS (bounded), then reads every agent
  through the node's front door and checks that nothing was lost and nothing applied twice:
  every order `placed` exactly once (runs == 1), every order in exactly one inventory list (once),
  each SKU's units the sum of its orders, every order in its customer's notifications once.

Prints the figures, ends with a `test result:` line for scripts/test, exits 1 on any failure.
Bounded: the whole run at most 120 s after the node's first start.

usage: pipeline_faults.py WASM
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402

ORDERS = 300
KILL_AFTER = 120
RATE = 150.0  # orders a second
SKUS = 7
CUSTOMERS = 11
# A bound, not a figure: a node restart (3-7 s), the ack wait (10 s) and 300 orders through three
# stages one message at a time, on a machine that may be several times slower than usual.
BUDGET = 120.0
NAMESPACE = "shop"
READY = re.compile(r"^(pipeline-node ready)()()")


class PipelineNode(cluster.Node):
    """A cluster.Node whose ready line is the pipeline's."""

    def _ready_from(self, index):
        match = self.find(READY, index)
        if match:
            self.ready_after = match[0] - self.spawned_at
        return match


class Server:
    """One nats-server with JetStream (no cluster), on free loopback ports, in `base`."""

    def __init__(self, base):
        self.port = cluster.free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = open(os.path.join(base, "nats-server.log"), "w")
        self.proc = cluster._spawn(
            [cluster.nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", os.path.join(base, "js")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("nats-server did not start; see its log")
                time.sleep(0.02)

    def close(self):
        cluster._end(self.proc, signal.SIGTERM, 10)
        self.log.close()


def order(i):
    return {"order": f"o{i}", "sku": f"sku-{i % SKUS}", "customer": f"c{i % CUSTOMERS}",
            "qty": 1 + i % 3}


async def publish_orders(nc, js, node, deadline):
    """Publishes every order, killing and restarting the node after KILL_AFTER, then waits for the
    node to be ready again; returns (seconds publishing took, seconds from the restart to ready,
    publishes retried, notifications made before the kill)."""
    retried = 0
    before = 0
    started = time.monotonic()
    for i in range(ORDERS):
        if i == KILL_AFTER:
            # How far the pipeline got: the kill lands with orders still on their way.
            before = await notified(nc)
            node.kill()
            # Started again at once; the orders go on meanwhile (the stream keeps them).
            node.spawn()
        body = json.dumps(order(i)).encode()
        while True:
            try:
                await js.publish(f"pipe.orders.o{i}.placed", body, headers={"Nats-Msg-Id": f"o{i}"},
                                 timeout=2)
                break
            except Exception:  # noqa: BLE001 - a timeout or a lost connection: publish again
                retried += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        # A steady rate: the kill lands while the node works through the stream.
        await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
    published = time.monotonic() - started
    await node.wait_ready_async(timeout=max(1.0, deadline - time.monotonic()))
    return published, node.ready_after, retried, before


async def ask(nc, kind, key, handler):
    reply = await nc.request(f"{NAMESPACE}.{kind}.{key}.{handler}", b"", timeout=5)
    answer = json.loads(reply.data)
    if "ok" not in answer:
        raise RuntimeError(f"{kind} {key}.{handler}: {answer}")
    return answer["ok"]


async def notified(nc):
    total = 0
    for c in range(CUSTOMERS):
        total += len(await ask(nc, "notifications", f"c{c}", "sent"))
    return total


async def run(wasm):
    import nats

    data = tempfile.mkdtemp(prefix="swarm-pipeline-")
    server = Server(data)
    # The node runs in the fresh directory: Lunatic grants the working directory, where the
    # file store lives.
    node = PipelineNode("pipeline", os.path.abspath(wasm), {
        "SWARM_NATS_URL": server.url,
        "SWARM_NAMESPACE": NAMESPACE,
        "SWARM_DATA_DIR": "store",
        # Longer than the node takes to start again (3-7 s): the messages the dead node had
        # taken and not acked are still held by the server when the new one asks, while newer
        # orders keep coming; they must not be applied before those (a key's messages in order).
        "SWARM_ACK_WAIT_MS": "10000",
    }, cwd=data)
    failures = []
    try:
        node.start()
        deadline = time.monotonic() + BUDGET
        nc = await nats.connect(servers=[server.url], connect_timeout=2, error_cb=cluster._quiet)
        js = nc.jetstream()
        began = time.monotonic()
        published, down, retried, before = await publish_orders(nc, js, node, deadline)
        total = 0
        while time.monotonic() < deadline:
            try:
                total = await notified(nc)
            except Exception:  # noqa: BLE001 - an agent still starting: look again
                total = -1
            if total >= ORDERS:
                break
            await asyncio.sleep(0.25)
        drained = time.monotonic() - began
        print(f"published {ORDERS} orders in {published:.1f}s ({retried} publishes retried); "
              f"node SIGKILLed after order {KILL_AFTER} ({before} of them notified by then), "
              f"started again at once, ready {down:.2f}s later; "
              f"{total} notifications after {drained:.1f}s")

        runs = {}
        for i in range(ORDERS):
            status, count = await ask(nc, "order", f"o{i}", "status")
            runs[f"o{i}"] = (status, count)
        not_placed = [o for o, (status, _) in runs.items() if status != "placed"]
        twice = {o: n for o, (_, n) in runs.items() if n > 1}
        reserved = []
        units_wrong = []
        for s in range(SKUS):
            orders, units = await ask(nc, "inventory", f"sku-{s}", "reserved")
            reserved += orders
            expected = sum(order(int(o[1:]))["qty"] for o in orders)
            if units != expected:
                units_wrong.append((f"sku-{s}", units, expected))
        sent = []
        for c in range(CUSTOMERS):
            sent += await ask(nc, "notifications", f"c{c}", "sent")
        every = {f"o{i}" for i in range(ORDERS)}

        def lost_and_twice(seen):
            return sorted(every - set(seen)), sorted({o for o in seen if seen.count(o) > 1})

        lost_res, twice_res = lost_and_twice(reserved)
        lost_sent, twice_sent = lost_and_twice(sent)
        print(f"orders: {ORDERS - len(not_placed)} placed, {len(twice)} placed twice; "
              f"inventory: {len(reserved)} reservations, {len(lost_res)} lost, "
              f"{len(twice_res)} twice, units wrong on {len(units_wrong)} SKUs; "
              f"notifications: {len(sent)}, {len(lost_sent)} lost, {len(twice_sent)} twice")
        for what, bad in (("orders not placed", not_placed), ("orders placed twice", twice),
                          ("reservations lost", lost_res), ("reserved twice", twice_res),
                          ("SKU units wrong", units_wrong), ("notifications lost", lost_sent),
                          ("notified twice", twice_sent)):
            if bad:
                failures.append(f"{what}: {list(bad)[:10]}")
        if node.starts != 2:
            failures.append(f"the node started {node.starts} times, not 2")
        await nc.close()
    finally:
        node.stop()
        server.close()
        shutil.rmtree(data, ignore_errors=True)
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    failures = asyncio.run(run(sys.argv[1]))
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"test result: {'ok' if not failures else 'FAILED'}. "
          f"{0 if failures else 1} passed; {1 if failures else 0} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

"""The demo's chat rooms called from Python through NATS, with nats-py: the same agents the Rust
native client calls (examples/agents), served by a Lunatic node (examples/agents_node.rs).

    python clients/python/chat_client.py [nats-url] [namespace]

The protocol is the front door's (see swarm/src/nats/agents.rs): a request on
`<namespace>.<kind>.<key>.<handler>` with the handler's arguments as a JSON object; the reply is
`{"ok": <answer>}` or `{"error": {"kind": ..., "message": ...}}`. A handler's own `Result` is
data inside "ok": `{"Ok": 1}` or `{"Err": {"NotAMember": "bob"}}`. Exits 0 when every call
answered as expected, 1 otherwise (the suite runs it against a real node).
"""

import asyncio
import json
import sys
import time

import nats
import nats.errors


class CallFailed(Exception):
    """The call produced no answer: the front door's error kind and message."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Room:
    """One chat room agent, by its key."""

    def __init__(self, nc, namespace, key, timeout=5.0):
        self.nc, self.prefix, self.timeout = nc, f"{namespace}.chat-room.{key}", timeout

    async def call(self, handler, **arguments):
        try:
            msg = await self.nc.request(f"{self.prefix}.{handler}", json.dumps(arguments).encode(),
                                        timeout=self.timeout)
        except nats.errors.NoRespondersError:
            raise CallFailed("no_responders", "no node serves chat-room in this namespace")
        except nats.errors.TimeoutError:
            raise CallFailed("timed_out", f"no answer within {self.timeout} s")
        reply = json.loads(msg.data)
        if "error" in reply:
            raise CallFailed(reply["error"]["kind"], reply["error"]["message"])
        return reply["ok"]

    async def send(self, handler, **arguments):
        """A fire-and-forget handler: published, nobody answers."""
        await self.nc.publish(f"{self.prefix}.{handler}", json.dumps(arguments).encode())


async def main(url, namespace):
    nc = await nats.connect(url)
    problems = []

    def expect(what, got, wanted):
        ok = got == wanted
        print(f"   {what:<32} -> {got!r}" + ("" if ok else f"   (expected {wanted!r})"))
        if not ok:
            problems.append(what)

    room = Room(nc, namespace, "python")
    await room.send("join", who="py")
    # The join is not awaited by anyone, and the node has several workers: a request sent next
    # may overtake it. Wait (bounded) until the room has the member.
    deadline = time.monotonic() + 10
    while "py" not in await room.call("members") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    before = len(await room.call("history"))
    expect("post by a member", await room.call("post", author="py", text="hello from Python"),
           {"Ok": before + 1})
    expect("post by a stranger", await room.call("post", author="bob", text="let me in"),
           {"Err": {"NotAMember": "bob"}})
    history = await room.call("history")
    expect("the last post", history[-1], {"author": "py", "text": "hello from Python"})

    for what, call, kind in [
        ("an invalid key", Room(nc, namespace, "no!").call("history"), "invalid_key"),
        ("a handler it does not have", room.call("rename", to="x"), "unknown_handler"),
        ("an argument it does not have", room.call("post", author="py", text="x", pinned=True),
         "bad_arguments"),
        ("a namespace nobody serves", Room(nc, namespace + "-none", "x").call("history"),
         "no_responders"),
    ]:
        try:
            got = await call
            expect(what, got, f"an error {kind}")
        except CallFailed as failed:
            expect(what, failed.kind, kind)

    await nc.close()
    if problems:
        print(f"chat_client.py: unexpected answers: {', '.join(problems)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    url = args[0] if args else "nats://127.0.0.1:4222"
    namespace = args[1] if len(args) > 1 else "demo"
    sys.exit(asyncio.run(main(url, namespace)))

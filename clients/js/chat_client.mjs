// The demo's chat rooms called from JavaScript through NATS, with the official client
// (@nats-io/transport-node): the same agents the Rust native client and the Python example call
// (examples/agents), served by a Lunatic node (examples/agents_node.rs).
//
//   node clients/js/chat_client.mjs [nats-url] [namespace]
//
// The protocol is the front door's (swarm/src/nats/agents.rs): a request on
// `<namespace>.<kind>.<key>.<handler>` with the handler's arguments as a JSON object; the reply
// is {"ok": <answer>} or {"error": {"kind": ..., "message": ...}}. A handler's own Result is data
// inside "ok": {"Ok": 1} or {"Err": {"NotAMember": "bob"}}. Exits 0 when every call answered as
// expected, 1 otherwise (the suite runs it against a real node).

import { connect } from "@nats-io/transport-node";
import { isDeepStrictEqual } from "node:util";

class CallFailed extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

/** One chat room agent, by its key. */
class Room {
  constructor(nc, namespace, key, timeout = 5000) {
    this.nc = nc;
    this.prefix = `${namespace}.chat-room.${key}`;
    this.timeout = timeout;
  }

  async call(handler, args = {}) {
    let msg;
    try {
      msg = await this.nc.request(`${this.prefix}.${handler}`, JSON.stringify(args), {
        timeout: this.timeout,
      });
    } catch (err) {
      // The client reports "no responders" and timeouts as errors of their own.
      const text = String(err?.message ?? err);
      if (/no responders/i.test(text) || err?.code === "503") {
        throw new CallFailed("no_responders", "no node serves chat-room in this namespace");
      }
      if (/timeout/i.test(text)) {
        throw new CallFailed("timed_out", `no answer within ${this.timeout} ms`);
      }
      throw err;
    }
    const reply = msg.json();
    if (reply.error) throw new CallFailed(reply.error.kind, reply.error.message);
    return reply.ok;
  }

  /** A fire-and-forget handler: published, nobody answers. */
  send(handler, args = {}) {
    this.nc.publish(`${this.prefix}.${handler}`, JSON.stringify(args));
  }
}

async function main(url, namespace) {
  const nc = await connect({ servers: url });
  const problems = [];
  const expect = (what, got, wanted) => {
    const ok = isDeepStrictEqual(got, wanted);
    console.log(`   ${what.padEnd(32)} -> ${JSON.stringify(got)}` +
      (ok ? "" : `   (expected ${JSON.stringify(wanted)})`));
    if (!ok) problems.push(what);
  };

  const room = new Room(nc, namespace, "javascript");
  room.send("join", { who: "js" });
  // Nobody awaits the join, and the node has several workers: a request sent next may overtake
  // it. Wait (bounded) until the room has the member.
  const deadline = Date.now() + 10_000;
  while (!(await room.call("members")).includes("js") && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const before = (await room.call("history")).length;
  expect("post by a member", await room.call("post", { author: "js", text: "hello from JS" }),
    { Ok: before + 1 });
  expect("post by a stranger", await room.call("post", { author: "bob", text: "let me in" }),
    { Err: { NotAMember: "bob" } });
  const history = await room.call("history");
  expect("the last post", history[history.length - 1], { author: "js", text: "hello from JS" });

  for (const [what, call, kind] of [
    ["an invalid key", () => new Room(nc, namespace, "no!").call("history"), "invalid_key"],
    ["a handler it does not have", () => room.call("rename", { to: "x" }), "unknown_handler"],
    ["an argument it does not have",
      () => room.call("post", { author: "js", text: "x", pinned: true }), "bad_arguments"],
    ["a namespace nobody serves",
      () => new Room(nc, `${namespace}-none`, "x").call("history"), "no_responders"],
  ]) {
    try {
      expect(what, await call(), `an error ${kind}`);
    } catch (err) {
      if (!(err instanceof CallFailed)) throw err;
      expect(what, err.kind, kind);
    }
  }

  await nc.close();
  if (problems.length) {
    console.error(`chat_client.mjs: unexpected answers: ${problems.join(", ")}`);
    return 1;
  }
  return 0;
}

const [url = "nats://127.0.0.1:4222", namespace = "demo"] = process.argv.slice(2);
process.exitCode = await main(url, namespace);

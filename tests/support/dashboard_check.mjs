// The dashboard in a real headless Chromium, against a real swarm: starts a nats-server with a
// WebSocket listener, a Lunatic node serving the demo's agents under their supervision tree
// (examples/agents_node.rs) and `swarm dashboard`, then drives the page with playwright-core:
// it loads and connects, shows the node, the kinds and handlers, the live agents and the tree;
// a call made from the page returns its answer; a crash made from the page shows up in the tree
// as a restart (the count moves, a new process); calls show up in the figures. It saves a
// screenshot and prints its path.
//
//   node tests/support/dashboard_check.mjs <swarm CLI> <runner> <agents_node.wasm> <artifacts dir>
//
// Chromium: /usr/bin/chromium (scripts/setup installs Debian's), or SWARM_CHROMIUM. nats-server
// from PATH (scripts/setup puts .tools/venv/bin first). Every wait is bounded; the whole check
// gives up after OVERALL_MS. Prints the line scripts/test adds up ("test result: ...") and exits 1
// on any failure.

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
// playwright-core is a package of the dashboard's (dashboard/package.json), not of this directory.
const { chromium } = createRequire(path.join(ROOT, "dashboard", "package.json"))("playwright-core");

const OVERALL_MS = 150_000;
const NODE_START_MS = 90_000;
const UI_WAIT_MS = 15_000;
const NAMESPACE = `dash${Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0")}`;

const [cli, runner, wasm, artifacts] = process.argv.slice(2).map((arg) => arg && path.resolve(arg));
if (!artifacts) {
  console.error("usage: node tests/support/dashboard_check.mjs <swarm CLI> <runner> <agents_node.wasm> <artifacts dir>");
  process.exit(2);
}
const chromiumPath = process.env.SWARM_CHROMIUM || "/usr/bin/chromium";

// Another NATS client that answers the page's $SRV requests first, with answers of every wrong
// shape (nats-py from the suite's venv, which scripts/setup makes): the page must leave them out.
const ROGUE = String.raw`
import asyncio, json, sys
import nats

async def main(url, service):
    nc = await nats.connect(url)
    ping = {"type": "io.nats.micro.v1.ping_response", "name": service, "id": 7, "version": "1"}
    info = {"type": "io.nats.micro.v1.info_response", "name": service, "id": "rogue",
            "version": "1", "endpoints": "none"}
    stats = {"type": "io.nats.micro.v1.stats_response", "name": service, "id": "rogue",
             "version": "1", "started": "now",
             "endpoints": [{"name": "chat-room-post", "num_requests": "many"}]}
    junk = [b"not json", b"[1, 2]", b"null", json.dumps({"id": "rogue"}).encode()]
    answers = {"PING": [ping], "INFO": [info], "STATS": [stats]}
    counted = {}

    async def answer(msg):
        verb = msg.subject.split(".")[1]
        for body in junk + [json.dumps(a).encode() for a in answers[verb]]:
            await nc.publish(msg.reply, body)
        counted[verb] = counted.get(verb, 0) + 1
        print(f"rogue answered {verb} {counted[verb]}", flush=True)

    for verb in answers:
        await nc.subscribe(f"$SRV.{verb}.{service}", cb=answer)
    await nc.flush()
    print("rogue ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
`;

const children = [];
const work = mkdtempSync(path.join(os.tmpdir(), "swarm-dashboard-"));
let passed = 0;
let failed = 0;

function stopAll() {
  for (const child of children.reverse()) {
    try {
      // Each child leads its own process group (the runner starts lunatic under a shell).
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  children.length = 0;
}
process.on("exit", () => {
  stopAll();
  rmSync(work, { recursive: true, force: true });
});
// Node ends on these without running "exit" handlers, and the children lead their own process
// groups (a terminal's Ctrl-C does not reach them): stop them here too.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => process.exit(130));
}
const overall = setTimeout(() => {
  console.log(`FAIL the check did not finish within ${OVERALL_MS / 1000} s`);
  console.log(`test result: FAILED. ${passed} passed; ${failed + 1} failed (dashboard in headless Chromium)`);
  process.exit(1);
}, OVERALL_MS);

function check(name, ok, detail = "") {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ""}`);
  }
  return ok;
}

/** Runs `step`; a timeout or an error is that check's failure, not the end of the run. */
async function checkStep(name, step) {
  try {
    const detail = await step();
    return check(name, true, detail);
  } catch (err) {
    return check(name, false, String(err?.message ?? err).split("\n").slice(0, 6).join(" | "));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `command`; resolves with the child once `ready` matches its output (within `ms`). */
function start(name, command, args, { env = {}, ready, ms }) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready within ${ms / 1000} s: ${output.slice(-2000)}`)), ms);
    const seen = (chunk) => {
      output += chunk;
      const match = output.match(ready);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match, output: () => output });
      }
    };
    child.stdout.on("data", seen);
    child.stderr.on("data", seen);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}): ${output.slice(-2000)}`));
    });
  });
}

async function main() {
  const natsPort = await freePort();
  const wsPort = await freePort();
  const config = path.join(work, "nats.conf");
  // The browser's way in: nats-server's WebSocket listener, plain (loopback only).
  writeFileSync(config, `listen: "127.0.0.1:${natsPort}"\nwebsocket {\n  listen: "127.0.0.1:${wsPort}"\n  no_tls: true\n}\n`);
  await start("nats-server", "nats-server", ["-c", config], { ready: /Server is ready/, ms: 15_000 });
  const node = await start("the node", runner, [wasm], {
    env: { SWARM_NATS_URL: `nats://127.0.0.1:${natsPort}`, SWARM_NAMESPACE: NAMESPACE, SWARM_METRICS_ADDR: "127.0.0.1:0", RUST_LIB_BACKTRACE: "0" },
    ready: /swarm-agents-node ready/,
    ms: NODE_START_MS,
  });
  const dashboard = await start("swarm dashboard", cli, ["-n", NAMESPACE, "dashboard", "--listen", "127.0.0.1:0", "--ws", `ws://127.0.0.1:${wsPort}`], {
    ready: /swarm dashboard: (http:\/\/[^ ]+\/)/,
    ms: 10_000,
  });
  const url = dashboard.match[1];
  console.log(`dashboard at ${url}, namespace ${NAMESPACE}`);

  // The HTTP side: four paths, nothing else.
  await checkStep("the dashboard serves its page, its settings, and 404/405 for anything else", async () => {
    const page = await fetch(url);
    const settings = await (await fetch(`${url}config.json`)).json();
    const missing = await fetch(`${url}nope`);
    const post = await fetch(url, { method: "POST", body: "x" });
    const ok = page.status === 200 && (await page.text()).includes("dashboard.js") && settings.namespace === NAMESPACE
      && settings.servers[0] === `ws://127.0.0.1:${wsPort}` && missing.status === 404 && post.status === 405;
    if (!ok) throw new Error(`page ${page.status}, settings ${JSON.stringify(settings)}, /nope ${missing.status}, POST ${post.status}`);
  });

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    timeout: 30_000,
    // The machine's network is closed: without these Chromium waits on refused connections.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const pageErrors = [];
    const foreign = [];
    const sockets = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.on("console", (msg) => msg.type() === "error" && pageErrors.push(msg.text()));
    page.on("request", (req) => !req.url().startsWith(url) && foreign.push(req.url()));
    page.on("websocket", (ws) => sockets.push(ws.url()));
    page.setDefaultTimeout(UI_WAIT_MS);

    await page.goto(url, { timeout: UI_WAIT_MS });
    await checkStep("the page loads and connects to NATS over WebSocket (no CDN: only its own origin)", async () => {
      await page.waitForFunction(() => document.getElementById("status").dataset.state === "connected");
      if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(", ")}`);
      if (!sockets.some((s) => s.startsWith(`ws://127.0.0.1:${wsPort}`))) throw new Error(`websockets: ${sockets.join(", ")}`);
    });

    await checkStep("it shows the node, the kind chat-room and its four handlers", async () => {
      await page.waitForFunction(() => document.querySelectorAll("#nodes tbody tr[data-node]").length === 1
        && ["join", "post", "history", "members"].every((h) => document.querySelector(`#kinds tr[data-kind="chat-room"][data-handler="${h}"]`)));
      return "";
    });

    await checkStep("it shows the live agents general, rust and help", async () => {
      await page.waitForFunction(() => ["general", "rust", "help"].every((k) => document.querySelector(`#agents tr[data-agent="chat-room/${k}"]`)));
      const live = await page.textContent("#total-agents");
      if (live !== "3") throw new Error(`live agents card shows ${live}`);
    });

    const tree = () => page.evaluate(() => {
      const rows = {};
      for (const tr of document.querySelectorAll("#trees tr[data-child]")) {
        const cells = tr.querySelectorAll("td");
        rows[`${tr.dataset.supervisor}/${tr.dataset.child}`] = {
          state: cells[2].textContent.trim(), process: cells[3].textContent.trim(), restarts: tr.querySelector(".restarts").textContent.trim(),
          crashes: tr.querySelector(".crashes").textContent.trim(),
        };
      }
      const sups = [...document.querySelectorAll("#trees .sup")].map((s) => `${s.dataset.supervisorName}:${s.dataset.state}`);
      const nested = !!document.querySelector('#trees .nested .sup[data-supervisor-name="HelpDesk"]');
      return { rows, sups, nested };
    });
    let before;
    await checkStep("it shows the supervision tree: Rooms (general, rust, desk) with HelpDesk (help) nested, all running, no restarts", async () => {
      await page.waitForFunction(() => document.querySelectorAll("#trees tr[data-child]").length === 4);
      before = await tree();
      const want = ["Rooms/general", "Rooms/rust", "Rooms/desk", "HelpDesk/help"];
      const ok = want.every((k) => before.rows[k]?.state === "running" && before.rows[k]?.restarts === "0")
        && before.nested && before.sups.join(",") === "Rooms:up,HelpDesk:up";
      if (!ok) throw new Error(JSON.stringify(before));
    });

    await checkStep("a rogue client answering $SRV with answers of every wrong shape is left out: still one node, its kinds, no script error", async () => {
      const python = path.join(ROOT, ".tools", "venv", "bin", "python");
      const rogue = await start("the rogue responder", python, ["-c", ROGUE, `nats://127.0.0.1:${natsPort}`, `swarm-${NAMESPACE}`], {
        ready: /rogue ready/,
        ms: 15_000,
      });
      // Until it answered two rounds of each of the page's verbs (INFO comes every 10 s).
      const deadline = Date.now() + UI_WAIT_MS;
      while (!/rogue answered INFO 1/.test(rogue.output()) || !/rogue answered STATS 2/.test(rogue.output())) {
        if (Date.now() > deadline) throw new Error(`the page's requests did not reach the rogue: ${rogue.output().slice(-500)}`);
        await page.waitForTimeout(200);
      }
      await page.waitForTimeout(1_500);
      const seen = await page.evaluate(() => ({
        nodes: document.querySelectorAll("#nodes tbody tr[data-node]").length,
        kinds: document.querySelectorAll('#kinds tr[data-kind="chat-room"]').length,
        tree: document.querySelectorAll("#trees tr[data-child]").length,
      }));
      if (seen.nodes !== 1 || seen.kinds !== 4 || seen.tree !== 4 || pageErrors.length) {
        throw new Error(`${JSON.stringify(seen)}; page errors: ${pageErrors.join(" | ")}`);
      }
    });

    // Calls from the page's form: the page sends them through its own NATS connection.
    const callFromPage = async (handler, args) => {
      await page.selectOption("#call-kind", "chat-room");
      await page.fill("#call-key", "general");
      await page.selectOption("#call-handler", handler);
      await page.fill("#call-args", args);
      await page.evaluate(() => {
        document.getElementById("call-answer").dataset.state = "none";
      });
      await page.click("#call-button");
      await page.waitForFunction(() => {
        const el = document.getElementById("call-answer");
        return el.dataset.state !== "none";
      });
      return { state: await page.getAttribute("#call-answer", "data-state"), text: await page.textContent("#call-answer") };
    };

    await checkStep("a call from the page returns its answer (join, then post: {\"ok\": {\"Ok\": 1}})", async () => {
      const joined = await callFromPage("join", '{"who": "ada"}');
      if (joined.state !== "ok" || !joined.text.includes('"ok": null')) throw new Error(`join: ${JSON.stringify(joined)}`);
      // join is fire-and-forget: the post may overtake it in the node's workers; try a few times.
      let posted;
      for (let attempt = 0; attempt < 20; attempt += 1) {
        posted = await callFromPage("post", '{"author": "ada", "text": "hello from Chromium"}');
        if (!posted.text.includes("NotAMember")) break;
        await page.waitForTimeout(100);
      }
      const answer = JSON.parse(posted.text.slice(0, posted.text.lastIndexOf("\n(")));
      if (posted.state !== "ok" || JSON.stringify(answer) !== '{"ok":{"Ok":1}}') throw new Error(`post: ${JSON.stringify(posted)}`);
    });

    await checkStep("a crash made from the page is answered as a failed call, and the tree shows the restart", async () => {
      const crashed = await callFromPage("post", '{"author": "ada", "text": "segfault"}');
      if (crashed.state !== "error" || !crashed.text.includes('"reason": "panicked"')) throw new Error(`post: ${JSON.stringify(crashed)}`);
      await page.waitForFunction(() => {
        const tr = document.querySelector('#trees tr[data-supervisor="Rooms"][data-child="general"]');
        return tr && tr.querySelector(".restarts").textContent.trim() === "1" && tr.querySelectorAll("td")[2].textContent.trim() === "running";
      });
      const after = await tree();
      const general = after.rows["Rooms/general"];
      const others = ["Rooms/rust", "Rooms/desk", "HelpDesk/help"].every((k) => after.rows[k].restarts === "0");
      if (general.crashes !== "1" || general.process === before.rows["Rooms/general"].process || !others) {
        throw new Error(`before ${JSON.stringify(before.rows)}, after ${JSON.stringify(after.rows)}`);
      }
      return "";
    });

    await checkStep("the restarted room kept its history (a call from the page after the crash)", async () => {
      const history = await callFromPage("history", "{}");
      if (history.state !== "ok" || !history.text.includes("hello from Chromium")) throw new Error(JSON.stringify(history));
    });

    await checkStep("the calls show up in the figures: post's request count, and a calls/s reading above 0 in the chart's data", async () => {
      await page.waitForFunction(() => {
        const requests = document.querySelector('#kinds tr[data-kind="chat-room"][data-handler="post"] .requests');
        return requests && Number(requests.textContent) >= 2;
      });
      // The rate is a difference of two STATS a second apart: drive a few calls and wait for it.
      for (let i = 0; i < 5; i += 1) await callFromPage("members", "{}");
      await page.waitForFunction(() => Number(document.getElementById("total-rate").textContent) > 0);
    });

    check("no script errors on the page", pageErrors.length === 0, pageErrors.join(" | "));

    mkdirSync(artifacts, { recursive: true });
    const shot = path.join(artifacts, "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
  if (failed) console.log(`node log (last lines):\n${node.output().slice(-3000)}`);
}

try {
  await main();
} catch (err) {
  check("the check ran to its end", false, String(err?.stack ?? err));
}
clearTimeout(overall);
stopAll();
console.log(`test result: ${failed ? "FAILED" : "ok"}. ${passed} passed; ${failed} failed (dashboard in headless Chromium)`);
process.exit(failed ? 1 : 0);

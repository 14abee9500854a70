// The dashboard page: polls the swarm once a second and redraws; the call form sends one request.

import { Swarm, KEY, rates, endpointOf, argumentsTemplate } from "./swarm.js";

const POLL_MS = 1000;
const HISTORY = 120; // points of the chart: two minutes at one a second
const INFO_EVERY_MS = 10000;

const $ = (id) => document.getElementById(id);
const esc = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
const fmtMs = (ms) => (ms == null || Number.isNaN(ms) ? "–" : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);

const state = {
  swarm: null,
  generation: 0, // bumped on every (re)connect: a poll of an older connection stops
  nodes: new Map(), // id -> {ping, info, stats: {at, stats}, prevStats, observe, observeError, seen}
  infoAt: 0,
  history: [], // {at, rate, latency}
  restarts: new Map(), // "node/sup path/child" -> restarts seen last drawn, to flash what moved
};

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = kind;
}

// ---- connecting -------------------------------------------------------------------------------

async function loadConfig() {
  // The `swarm dashboard` command serves its settings; the query string overrides them.
  let config = { servers: ["ws://127.0.0.1:8080"], namespace: "swarm" };
  try {
    const answer = await fetch("config.json", { cache: "no-store" });
    if (answer.ok) config = { ...config, ...(await answer.json()) };
  } catch {
    // Opened as a file, or served by something else: the defaults and the form.
  }
  const query = new URLSearchParams(location.search);
  if (query.get("server")) config.servers = [query.get("server")];
  if (query.get("namespace")) config.namespace = query.get("namespace");
  return config;
}

async function connect(server, namespace) {
  const generation = ++state.generation;
  if (state.swarm) state.swarm.close().catch(() => {});
  state.swarm = null;
  state.nodes.clear();
  state.history = [];
  state.infoAt = 0;
  setStatus(`connecting to ${server}`, "idle");
  try {
    const swarm = await Swarm.connect(server, namespace);
    if (generation !== state.generation) return swarm.close();
    state.swarm = swarm;
    setStatus(`connected · ${namespace}`, "connected");
    watchStatus(swarm, generation);
    poll(generation);
  } catch (err) {
    setStatus(`cannot connect to ${server}: ${err?.message ?? err}`, "error");
  }
}

async function watchStatus(swarm, generation) {
  for await (const s of swarm.nc.status()) {
    if (generation !== state.generation) return;
    if (s.type === "disconnect") setStatus("disconnected: reconnecting", "error");
    if (s.type === "reconnect") setStatus(`connected · ${swarm.namespace}`, "connected");
  }
}

// ---- polling ----------------------------------------------------------------------------------

async function poll(generation) {
  while (generation === state.generation && state.swarm) {
    const started = performance.now();
    try {
      await pollOnce(state.swarm);
      if (generation !== state.generation) return;
      render();
    } catch (err) {
      if (generation !== state.generation) return;
      if (state.swarm?.nc.isClosed()) {
        setStatus(`connection closed: ${err?.message ?? err}`, "closed");
        return;
      }
      console.warn("poll failed", err);
    }
    await new Promise((ok) => setTimeout(ok, Math.max(100, POLL_MS - (performance.now() - started))));
  }
}

async function pollOnce(swarm) {
  const now = Date.now();
  const pings = await swarm.ping();
  const ids = new Set(pings.map((p) => p.id));
  for (const id of [...state.nodes.keys()]) {
    // A node not heard from for 5 s is gone (stopped, or cut off).
    if (!ids.has(id) && now - state.nodes.get(id).seen > 5000) state.nodes.delete(id);
  }
  let newNode = false;
  for (const ping of pings) {
    const node = state.nodes.get(ping.id);
    if (node) {
      node.ping = ping;
      node.seen = now;
    } else {
      state.nodes.set(ping.id, { ping, seen: now, info: null, stats: null, prevStats: null, observe: null });
      newNode = true;
    }
  }
  const count = state.nodes.size;
  if (count === 0) return;
  const wantInfo = newNode || now - state.infoAt > INFO_EVERY_MS;
  const [infos, stats, observed] = await Promise.all([
    wantInfo ? swarm.info(count) : Promise.resolve(null),
    swarm.stats(count),
    Promise.all(
      [...state.nodes.values()].map((node) =>
        // The subject every swarm node answers on (its metadata says the same): built here rather
        // than taken from the answer, so that nothing else on the server steers the page's requests.
        swarm.observe(`_SWARM.${swarm.namespace}.observe.${node.ping.id}`).then(
          (answer) => ({ id: node.ping.id, answer }),
          (err) => ({ id: node.ping.id, error: String(err?.message ?? err) }),
        ),
      ),
    ),
  ]);
  if (infos) {
    state.infoAt = now;
    for (const info of infos) {
      const node = state.nodes.get(info.id);
      if (node) node.info = info;
    }
  }
  const at = Date.now();
  for (const s of stats) {
    const node = state.nodes.get(s.id);
    if (!node) continue;
    node.prevStats = node.stats;
    node.stats = { at, stats: s };
  }
  for (const o of observed) {
    const node = state.nodes.get(o.id);
    if (!node) continue;
    node.observe = o.answer ?? node.observe;
    node.observeError = o.error ?? null;
  }
}

// ---- the figures ------------------------------------------------------------------------------

/** Per `kind/handler`: {kind, handler, nodes, calls, errors, count, nanos, requests, numErrors, lastError}. */
function handlerFigures() {
  const out = new Map();
  for (const node of state.nodes.values()) {
    const endpoints = node.info?.endpoints ?? [];
    const byName = new Map(endpoints.map((e) => [e.name, endpointOf(e)]));
    const moved = node.stats ? rates(node.prevStats, node.stats) : new Map();
    for (const e of node.stats?.stats.endpoints ?? []) {
      const { kind, handler } = byName.get(e.name) ?? endpointOf(e);
      const key = `${kind}/${handler}`;
      const f = out.get(key) ?? { kind, handler, nodes: 0, calls: 0, errors: 0, count: 0, nanos: 0, requests: 0, numErrors: 0, lastError: "" };
      const r = moved.get(e.name);
      f.nodes += 1;
      f.requests += e.num_requests;
      f.numErrors += e.num_errors;
      if (e.last_error) f.lastError = e.last_error;
      if (r) {
        f.calls += r.calls;
        f.errors += r.errors;
        f.count += r.count;
        f.nanos += r.nanos;
      }
      out.set(key, f);
    }
    // Handlers that INFO lists but STATS has not shown yet.
    for (const [, { kind, handler }] of byName) {
      const key = `${kind}/${handler}`;
      if (!out.has(key)) out.set(key, { kind, handler, nodes: 1, calls: 0, errors: 0, count: 0, nanos: 0, requests: 0, numErrors: 0, lastError: "" });
    }
  }
  return out;
}

function render() {
  const figures = handlerFigures();
  let rate = 0, errors = 0, count = 0, nanos = 0;
  for (const f of figures.values()) {
    rate += f.calls;
    errors += f.errors;
    count += f.count;
    nanos += f.nanos;
  }
  const latency = count ? nanos / count / 1e6 : null;
  state.history.push({ at: Date.now(), rate, latency });
  if (state.history.length > HISTORY) state.history.shift();

  const kinds = new Set([...figures.values()].map((f) => f.kind));
  let live = 0;
  for (const node of state.nodes.values()) live += node.observe?.agents_live ?? 0;
  $("total-nodes").textContent = state.nodes.size;
  $("total-kinds").textContent = kinds.size;
  $("total-agents").textContent = live;
  $("total-rate").textContent = fmtRate(rate);
  $("total-latency").textContent = fmtMs(latency);
  $("total-errors").textContent = fmtRate(errors);

  renderKinds(figures);
  renderNodes();
  renderAgents();
  renderTrees();
  renderCallChoices(figures);
  drawChart();
}

function renderKinds(figures) {
  const rows = [...figures.values()].sort((a, b) => (a.kind + a.handler).localeCompare(b.kind + b.handler));
  $("kinds").tBodies[0].innerHTML = rows.length
    ? rows
        .map(
          (f) => `<tr data-kind="${esc(f.kind)}" data-handler="${esc(f.handler)}">
        <td class="nowrap">${esc(f.kind)}</td><td class="mono">${esc(f.handler)}</td><td>${f.nodes}</td>
        <td class="num rate">${fmtRate(f.calls)}</td><td class="num">${fmtMs(f.count ? f.nanos / f.count / 1e6 : null)}</td>
        <td class="num requests">${esc(f.requests)}</td><td class="num">${esc(f.numErrors)}</td><td class="mono">${esc(f.lastError)}</td></tr>`,
        )
        .join("")
    : `<tr><td colspan="8" class="empty">no kinds served</td></tr>`;
}

function renderNodes() {
  const now = Date.now();
  $("nodes").tBodies[0].innerHTML = [...state.nodes.values()]
    .map((node) => {
      const p = node.ping;
      const moved = node.stats ? rates(node.prevStats, node.stats) : new Map();
      let r = 0;
      for (const m of moved.values()) r += m.calls;
      return `<tr data-node="${esc(p.id)}"><td class="mono">${esc(p.id)}</td><td>${esc(p.name)}</td><td>${esc(p.version)}</td>
        <td>${esc(p.metadata?.kinds ?? "")}</td><td class="num">${esc(node.observe?.agents_live ?? "–")}</td><td class="num">${fmtRate(r)}</td>
        <td>${esc(node.stats?.stats.started ?? "")}</td><td>${Math.round((now - node.seen) / 1000)} s ago</td></tr>`;
    })
    .join("");
}

function renderAgents() {
  const rows = [];
  let total = 0, shown = 0;
  for (const node of state.nodes.values()) {
    const o = node.observe;
    if (!o?.agents) continue;
    total += o.agents_live ?? 0;
    shown += o.agents.length;
    for (const a of o.agents) rows.push({ ...a, node: node.ping.id });
  }
  rows.sort((a, b) => (a.kind + "/" + a.key).localeCompare(b.kind + "/" + b.key));
  $("agents-hint").textContent = shown < total ? `the first ${shown} of ${total}` : `${total}`;
  $("agents").tBodies[0].innerHTML = rows.length
    ? rows
        .map(
          (a) => `<tr data-agent="${esc(a.kind)}/${esc(a.key)}"><td>${esc(a.kind)}</td><td class="mono">${esc(a.key)}</td>
          <td class="mono">${esc(a.node)}</td><td class="num">${esc(a.process)}</td></tr>`,
        )
        .join("")
    : `<tr><td colspan="4" class="empty">no live agents with a key</td></tr>`;
}

function stateName(s) {
  return typeof s === "string" ? s : Object.keys(s ?? {})[0] ?? "unknown";
}

/** `OneForOne` (the strategy as the node sends it) as `one for one`. */
function words(name) {
  return String(name ?? "").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

function childKind(kind) {
  if (kind === "supervisor") return "supervisor";
  if (kind?.agent) return `${esc(kind.agent.kind)}${kind.agent.key ? ` <span class="mono">${esc(kind.agent.key)}</span>` : ""}`;
  if (kind?.pool) return `pool of ${esc(kind.pool.size)} ${esc(kind.pool.kind)}`;
  if (kind?.invalid) return `invalid: ${esc(kind.invalid.reason)}`;
  return esc(JSON.stringify(kind));
}

/** A supervisor's table; `seen` collects the restart counts drawn (the next drawing's "before"). */
function renderSupervisor(sup, path, nodeId, seen) {
  const st = stateName(sup.state);
  const reason = sup.state?.gave_up?.reason;
  const here = `${path}/${sup.name}`;
  const rows = sup.children
    .flatMap((child) =>
      child.members.map((m) => {
        const key = `${nodeId}${here}/${m.name}`;
        const before = state.restarts.get(key);
        const moved = before !== undefined && before !== m.restarts;
        seen.set(key, m.restarts);
        const running = m.process != null;
        const badge = running ? "running" : st === "up" ? "down" : "stopped";
        return `<tr data-child="${esc(m.name)}" data-supervisor="${esc(sup.name)}" class="${moved ? "changed" : ""}">
          <td class="mono">${esc(m.name)}</td><td>${childKind(child.kind)}</td>
          <td><span class="badge ${badge}">${badge}</span></td><td class="num">${running ? esc(m.process) : "–"}</td>
          <td class="num">${esc(m.starts)}</td><td class="num restarts${m.restarts ? " moved" : ""}">${esc(m.restarts)}</td>
          <td class="num crashes">${esc(m.crashes)}</td><td>${esc(stateName(child.restart).toLowerCase())}</td></tr>
          ${child.supervisor ? `<tr><td colspan="8"><div class="nested">${renderSupervisor(child.supervisor, here, nodeId, seen)}</div></td></tr>` : ""}`;
      }),
    )
    .join("");
  return `<div class="sup" data-supervisor-name="${esc(sup.name)}" data-state="${esc(st)}">
    <div class="sup-head"><span class="name">${esc(sup.name)}</span><span class="badge ${esc(st)}">${esc(st.replace("_", " "))}</span>
      <span class="hint">${esc(words(sup.strategy))} · at most ${esc(sup.max_restarts)} restarts in ${esc(sup.within_secs)} s · process ${esc(sup.process)}</span>
      ${reason ? `<span class="hint">${esc(reason)}</span>` : ""}</div>
    <table class="children"><thead><tr><th>child</th><th>what</th><th>state</th><th class="num">process</th><th class="num">starts</th>
      <th class="num">restarts</th><th class="num">crashes</th><th>restart</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function renderTrees() {
  const parts = [];
  // Only what is drawn now is kept: children of stopped supervisors and gone nodes are let go.
  const seen = new Map();
  for (const node of state.nodes.values()) {
    const o = node.observe;
    const sups = o?.supervisors ?? [];
    const err = node.observeError ?? o?.supervisors_error;
    if (!sups.length && !err) continue;
    parts.push(`<div class="tree" data-node="${esc(node.ping.id)}"><div class="node-name">node ${esc(node.ping.id)}</div>
      ${err ? `<p class="empty">${esc(err)}</p>` : ""}${sups.map((s) => renderSupervisor(s, "", node.ping.id, seen)).join("")}</div>`);
  }
  state.restarts = seen;
  $("trees").innerHTML = parts.length ? parts.join("") : `<p class="empty">no supervisors on ${state.nodes.size} node(s)</p>`;
}

// ---- the chart --------------------------------------------------------------------------------

function drawChart() {
  const canvas = $("chart");
  const width = canvas.clientWidth;
  const height = canvas.height;
  if (canvas.width !== width) canvas.width = width;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  const points = state.history;
  const maxRate = Math.max(1, ...points.map((p) => p.rate));
  const maxLatency = Math.max(1, ...points.map((p) => p.latency ?? 0));
  const x = (i) => 40 + ((width - 90) * i) / (HISTORY - 1);
  const line = (value, max, color) => {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    points.forEach((p, i) => {
      const v = value(p);
      if (v == null) {
        drawing = false;
        return;
      }
      const y = height - 18 - ((height - 30) * v) / max;
      drawing ? g.lineTo(x(i), y) : g.moveTo(x(i), y);
      drawing = true;
    });
    g.stroke();
  };
  g.fillStyle = "#6b7385";
  g.font = "11px system-ui";
  g.fillText(`${fmtRate(maxRate)}/s`, 2, 12);
  g.fillText(fmtMs(maxLatency), width - 48, 12);
  g.fillText("calls/s", 2, height - 4);
  g.fillText("latency", width - 48, height - 4);
  g.strokeStyle = "#e3e6eb";
  g.beginPath();
  g.moveTo(40, height - 18);
  g.lineTo(width - 50, height - 18);
  g.stroke();
  line((p) => p.rate, maxRate, "#2b6cb0");
  line((p) => p.latency, maxLatency, "#b7791f");
}

// ---- calling a handler ------------------------------------------------------------------------

let choices = ""; // the kinds and handlers the selects show, to leave them alone when unchanged
let schemas = new Map(); // kind/handler -> arguments_schema text

function renderCallChoices(figures) {
  schemas = new Map();
  for (const node of state.nodes.values()) {
    for (const e of node.info?.endpoints ?? []) {
      const { kind, handler } = endpointOf(e);
      if (e.metadata?.arguments_schema) schemas.set(`${kind}/${handler}`, e.metadata.arguments_schema);
    }
  }
  const handlers = new Map();
  for (const f of figures.values()) handlers.set(f.kind, [...(handlers.get(f.kind) ?? []), f.handler].sort());
  const now = JSON.stringify([...handlers]);
  if (now === choices) return;
  choices = now;
  const kindSelect = $("call-kind");
  const kept = kindSelect.value;
  kindSelect.innerHTML = [...handlers.keys()].sort().map((k) => `<option>${esc(k)}</option>`).join("");
  if (handlers.has(kept)) kindSelect.value = kept;
  fillHandlers(handlers);
}

function fillHandlers(handlers) {
  const all = handlers ?? new Map(JSON.parse(choices || "[]"));
  const handlerSelect = $("call-handler");
  const kept = handlerSelect.value;
  const list = all.get($("call-kind").value) ?? [];
  handlerSelect.innerHTML = list.map((h) => `<option>${esc(h)}</option>`).join("");
  if (list.includes(kept)) handlerSelect.value = kept;
  else fillArguments();
  showSubject();
}

function fillArguments() {
  const schema = schemas.get(`${$("call-kind").value}/${$("call-handler").value}`);
  $("call-args").value = schema ? argumentsTemplate(schema) : "{}";
}

function showSubject() {
  const ns = state.swarm?.namespace ?? "";
  $("call-subject").textContent = `${ns}.${$("call-kind").value}.${$("call-key").value}.${$("call-handler").value}`;
}

function showAnswer(text, kind) {
  const el = $("call-answer");
  el.textContent = text;
  el.dataset.state = kind;
}

async function call(event) {
  event.preventDefault();
  const kind = $("call-kind").value;
  const handler = $("call-handler").value;
  const key = $("call-key").value.trim();
  const argsText = $("call-args").value.trim() || "{}";
  if (!state.swarm) return showAnswer("not connected", "error");
  if (!kind || !handler) return showAnswer("no kind or handler to call: no node serves one yet", "error");
  if (!KEY.test(key)) return showAnswer(`key ${JSON.stringify(key)}: keys are 1-128 characters of A-Z a-z 0-9 _ -`, "error");
  let args;
  try {
    args = JSON.parse(argsText);
  } catch (err) {
    return showAnswer(`the arguments are not JSON: ${err.message}`, "error");
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    return showAnswer("the arguments must be a JSON object of the handler's parameters by name", "error");
  }
  $("call-button").disabled = true;
  showAnswer(`calling ${kind} ${key} ${handler} ...`, "none");
  try {
    const { answer, ms } = await state.swarm.call(kind, key, handler, JSON.stringify(args));
    showAnswer(`${JSON.stringify(answer, null, 2)}\n(${ms.toFixed(1)} ms)`, "error" in answer ? "error" : "ok");
  } catch (err) {
    showAnswer(`no answer: ${err?.message ?? err}`, "error");
  } finally {
    $("call-button").disabled = false;
  }
}

// ---- start ------------------------------------------------------------------------------------

async function main() {
  const config = await loadConfig();
  $("server").value = config.servers[0];
  $("namespace").value = config.namespace;
  $("connect").addEventListener("submit", (event) => {
    event.preventDefault();
    connect($("server").value.trim(), $("namespace").value.trim());
  });
  $("call").addEventListener("submit", call);
  $("call-kind").addEventListener("change", () => fillHandlers());
  $("call-handler").addEventListener("change", () => {
    fillArguments();
    showSubject();
  });
  $("call-key").addEventListener("input", showSubject);
  connect(config.servers[0], config.namespace);
}

main();

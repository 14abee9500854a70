// What the dashboard asks a swarm over NATS, and what it makes of the answers. No DOM here.
//
// Every node of a namespace runs one instance of the NATS service `swarm-<namespace>` (see
// swarm/src/nats/discovery.rs): `$SRV.PING|INFO|STATS.swarm-<ns>` reach every instance, and each
// names its own `observe` subject (supervision trees and live agents) in its metadata.

import { createInbox, wsconnect } from "@nats-io/nats-core";

const decoder = new TextDecoder();

/** Keys a node accepts (swarm/src/key.rs): they become a subject token, so check before sending. */
export const KEY = /^[A-Za-z0-9_-]{1,128}$/;

function json(msg) {
  return JSON.parse(decoder.decode(msg.data));
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v) => Number.isFinite(v) && v >= 0;
const optional = (v, test) => v === undefined || v === null || test(v);

/**
 * Whether `answer` has the shape the page reads of a `$SRV.<verb>` answer of `service`
 * (io.nats.micro.v1). Anyone allowed to publish can answer on `$SRV`: an answer of another
 * shape is left out rather than allowed to stop the page's drawing.
 */
export function wellFormed(verb, answer, service) {
  if (!isObject(answer) || answer.type !== `io.nats.micro.v1.${verb.toLowerCase()}_response`) return false;
  if (answer.name !== service || typeof answer.id !== "string" || typeof answer.version !== "string") return false;
  if (!optional(answer.metadata, isObject)) return false;
  const endpoints = (test) => Array.isArray(answer.endpoints) && answer.endpoints.every((e) => isObject(e) && typeof e.name === "string" && test(e));
  switch (verb) {
    case "PING":
      return true;
    case "INFO":
      return endpoints((e) => optional(e.metadata, isObject));
    case "STATS":
      return typeof answer.started === "string"
        && endpoints((e) => isCount(e.num_requests) && isCount(e.num_errors) && isCount(e.processing_time)
          && optional(e.last_error, (v) => typeof v === "string"));
    default:
      return false;
  }
}

/** A supervisor of an observe answer as the page draws it (children, members, nested ones). */
function wellFormedSupervisor(sup, depth = 0) {
  return depth < 32 && isObject(sup) && typeof sup.name === "string" && Array.isArray(sup.children)
    && sup.children.every((child) => isObject(child) && Array.isArray(child.members)
      && child.members.every((m) => isObject(m) && typeof m.name === "string")
      && optional(child.supervisor, (nested) => wellFormedSupervisor(nested, depth + 1)));
}

/** Whether `answer` has the shape of a node's observe answer (swarm/src/nats/discovery.rs). */
export function wellFormedObserve(answer) {
  return isObject(answer) && answer.type === "io.swarm.observe.v1"
    && optional(answer.agents_live, isCount)
    && optional(answer.agents, (agents) => Array.isArray(agents)
      && agents.every((a) => isObject(a) && typeof a.kind === "string" && typeof a.key === "string"))
    && optional(answer.supervisors, (sups) => Array.isArray(sups) && sups.every((sup) => wellFormedSupervisor(sup)));
}

export class Swarm {
  constructor(nc, namespace) {
    this.nc = nc;
    this.namespace = namespace;
    this.service = `swarm-${namespace}`;
  }

  static async connect(server, namespace) {
    // No reconnect storm against a server that is gone: the page reconnects when asked.
    const nc = await wsconnect({ servers: [server], name: "swarm-dashboard", maxReconnectAttempts: 10, reconnectTimeWait: 1000 });
    return new Swarm(nc, namespace);
  }

  /**
   * Every well-formed answer to a `$SRV` verb of this namespace's service within `maxWait` ms,
   * or once `count` came. On an inbox of its own rather than `requestMany`: that counts every
   * message, so that answers of another shape could crowd the nodes' out.
   */
  async srv(verb, { maxWait, count }) {
    const answers = [];
    const sub = this.nc.subscribe(createInbox());
    const timer = setTimeout(() => sub.unsubscribe(), maxWait);
    try {
      this.nc.publish(`$SRV.${verb}.${this.service}`, "", { reply: sub.getSubject() });
      for await (const msg of sub) {
        let answer;
        try {
          answer = json(msg);
        } catch {
          continue; // Not JSON: not one of ours.
        }
        if (!wellFormed(verb, answer, this.service)) continue;
        answers.push(answer);
        if (count && answers.length >= count) break;
      }
    } finally {
      clearTimeout(timer);
      if (!sub.isClosed()) sub.unsubscribe();
    }
    return answers;
  }

  async ping() {
    return this.srv("PING", { maxWait: 400 });
  }

  async info(count) {
    return this.srv("INFO", { maxWait: 1500, count });
  }

  async stats(count) {
    // A node waits up to 0.5 s for its workers' counts (STATS_WAIT) and 0.3 s for a cluster's.
    return this.srv("STATS", { maxWait: 1500, count });
  }

  async observe(subject) {
    const answer = json(await this.nc.request(subject, JSON.stringify({ agents: 200 }), { timeout: 3000 }));
    if (!wellFormedObserve(answer)) throw new Error(`the answer on ${subject} is not a swarm node's`);
    return answer;
  }

  /** Calls a handler through the front door: `{ok: ..}` or `{error: ..}`, as the node answered. */
  async call(kind, key, handler, argsText) {
    const started = performance.now();
    const msg = await this.nc.request(`${this.namespace}.${kind}.${key}.${handler}`, argsText, { timeout: 12000 });
    return { answer: json(msg), ms: performance.now() - started };
  }

  close() {
    return this.nc.close();
  }
}

/**
 * Rates between two STATS of one node: per endpoint name, {calls, errors} per second and the
 * average processing time (ms) of the calls in between. `prev` and `next` are
 * `{at: ms, stats: <stats_response>}`.
 */
export function rates(prev, next) {
  const out = new Map();
  if (!prev || prev.stats.started !== next.stats.started) return out; // a restarted node: counts began again
  const seconds = (next.at - prev.at) / 1000;
  if (seconds <= 0) return out;
  const before = new Map(prev.stats.endpoints.map((e) => [e.name, e]));
  for (const e of next.stats.endpoints) {
    const b = before.get(e.name);
    if (!b) continue;
    const calls = Math.max(0, e.num_requests - b.num_requests);
    const errors = Math.max(0, e.num_errors - b.num_errors);
    const nanos = Math.max(0, e.processing_time - b.processing_time);
    out.set(e.name, { calls: calls / seconds, errors: errors / seconds, count: calls, nanos });
  }
  return out;
}

/** `{kind, handler}` of an INFO endpoint (its metadata says; older nodes: from the name). */
export function endpointOf(endpoint) {
  const m = endpoint.metadata ?? {};
  if (m.kind && m.handler) return { kind: m.kind, handler: m.handler };
  const at = endpoint.name.lastIndexOf("-");
  return { kind: endpoint.name.slice(0, at), handler: endpoint.name.slice(at + 1) };
}

/** A JSON object to start from, from an endpoint's `arguments_schema` (metadata text), or `{}`. */
export function argumentsTemplate(schemaText) {
  let schema;
  try {
    schema = JSON.parse(schemaText);
  } catch {
    return "{}";
  }
  const props = schema?.properties ?? {};
  const sample = (s) => {
    const type = Array.isArray(s?.type) ? s.type[0] : s?.type;
    switch (type) {
      case "string": return "";
      case "integer": case "number": return 0;
      case "boolean": return false;
      case "array": return [];
      case "object": return {};
      default: return null;
    }
  };
  const args = {};
  for (const [name, s] of Object.entries(props)) args[name] = sample(s);
  return Object.keys(args).length ? JSON.stringify(args, null, 1).replace(/\n\s*/g, " ") : "{}";
}

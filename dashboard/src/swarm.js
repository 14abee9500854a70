// What the dashboard asks a swarm over NATS, and what it makes of the answers. No DOM here.
//
// Every node of a namespace runs one instance of the NATS service `swarm-<namespace>` (see
// swarm/src/nats/discovery.rs): `$SRV.PING|INFO|STATS.swarm-<ns>` reach every instance, and each
// names its own `observe` subject (supervision trees and live agents) in its metadata.

import { wsconnect } from "@nats-io/nats-core";

const decoder = new TextDecoder();

/** Keys a node accepts (swarm/src/key.rs): they become a subject token, so check before sending. */
export const KEY = /^[A-Za-z0-9_-]{1,128}$/;

function json(msg) {
  return JSON.parse(decoder.decode(msg.data));
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

  /** Every answer to a `$SRV` verb of this namespace's service within `maxWait` ms (or once `count` came). */
  async srv(verb, { maxWait, count }) {
    const opts = count ? { strategy: "count", maxMessages: count, maxWait } : { strategy: "timer", maxWait };
    const answers = [];
    try {
      const replies = await this.nc.requestMany(`$SRV.${verb}.${this.service}`, "", opts);
      for await (const msg of replies) {
        try {
          answers.push(json(msg));
        } catch {
          // Not JSON: not one of ours.
        }
      }
    } catch (err) {
      // No node serves the namespace (yet): no answers, not a failure of the page.
      if (!/no responders|503/i.test(String(err?.message ?? err))) throw err;
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
    return json(await this.nc.request(subject, JSON.stringify({ agents: 200 }), { timeout: 3000 }));
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

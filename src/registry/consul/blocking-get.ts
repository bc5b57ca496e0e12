import type { EventEmitter } from "node:events";
import { request } from "undici";
import type { BlockingAnswer, LoopSettings } from "./blocking-loop.ts";
import type { ConsulConnections } from "./consul-connections.ts";

/**
 * A Consul registry's options, validated: where the agent is, how its blocking loops pace themselves,
 * and what every call to the agent carries. @internal
 */
export interface AgentSettings extends LoopSettings {
  /** The ACL token sent as `X-Consul-Token`, if any. */
  readonly token: string | undefined;
  /** The datacenter to ask about, if not the agent's own. */
  readonly datacenter: string | undefined;
  /** The registry's connections to the agent (its own, with TLS settings when https). */
  readonly connections: ConsulConnections;
}

/** One blocking GET on the agent, over undici; a 404 answers `undefined` when `missingOk`. @internal */
export async function blockingGet(settings: AgentSettings, path: string, index: number, waitSeconds: number, cancel: EventEmitter, withDc: boolean, missingOk = false): Promise<BlockingAnswer> {
  const abort = new AbortController();
  cancel.once("cancel", () => abort.abort());
  const query = new URLSearchParams({ index: String(index), wait: `${waitSeconds}s` });
  if (withDc && settings.datacenter !== undefined) query.set("dc", settings.datacenter);
  const res = await request(`${settings.url}${path}?${query.toString()}`, {
    signal: abort.signal,
    dispatcher: settings.connections.background,
    headersTimeout: Math.ceil(waitSeconds * 1000 * (1 + 1 / 16) + 5000),
    headers: settings.token === undefined ? {} : { "x-consul-token": settings.token },
  });
  const text = await res.body.text();
  if (missingOk && res.statusCode === 404) return { index: headerIndex(res.headers["x-consul-index"]), body: undefined };
  if (res.statusCode !== 200) throw Object.assign(new Error(text), { statusCode: res.statusCode });
  return { index: headerIndex(res.headers["x-consul-index"]), body: JSON.parse(text) as unknown };
}

/** The index of a Consul answer, from its `X-Consul-Index` header. @internal */
export function headerIndex(header: string | string[] | undefined): number {
  return Number(Array.isArray(header) ? header[0] : header);
}

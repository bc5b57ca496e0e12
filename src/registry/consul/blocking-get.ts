import type { EventEmitter } from "node:events";
import { request } from "undici";
import type { BlockingAnswer, LoopSettings } from "./blocking-loop.ts";
import { ConsulCallError, parseAnswer, readAnswer, statusFailure, transportFailure, type AnswerLimits } from "./consul-answer.ts";
import type { ConsulConnections } from "./consul-connections.ts";

/**
 * A Consul registry's options, validated: where the agent is, how its blocking loops pace themselves,
 * how much of an answer it reads, and what every call to the agent carries. @internal
 */
export interface AgentSettings extends LoopSettings, AnswerLimits {
  /** The ACL token sent as `X-Consul-Token`, if any. */
  readonly token: string | undefined;
  /** The datacenter to ask about, if not the agent's own. */
  readonly datacenter: string | undefined;
  /** The registry's connections to the agent (its own, with TLS settings when https). */
  readonly connections: ConsulConnections;
}

/**
 * One blocking GET on the agent, over undici; a 404 answers `undefined` when `missingOk`. The body is
 * read within the size and depth caps; every failure is a {@link ConsulCallError} (plain data: nothing
 * in it reaches the request or its token). @internal
 */
export async function blockingGet(settings: AgentSettings, path: string, index: number, waitSeconds: number, cancel: EventEmitter, withDc: boolean, missingOk = false): Promise<BlockingAnswer> {
  const abort = new AbortController();
  const onCancel = (): void => abort.abort();
  cancel.once("cancel", onCancel);
  const query = new URLSearchParams({ index: String(index), wait: `${waitSeconds}s` });
  if (withDc && settings.datacenter !== undefined) query.set("dc", settings.datacenter);
  // Consul may add up to wait/16 of jitter; allow that and a margin before giving up.
  const timeoutMs = Math.ceil(waitSeconds * 1000 * (1 + 1 / 16) + 5000);
  try {
    let res;
    try {
      res = await request(`${settings.url}${path}?${query.toString()}`, {
        signal: abort.signal,
        dispatcher: settings.connections.background,
        headersTimeout: timeoutMs,
        headers: settings.token === undefined ? {} : { "x-consul-token": settings.token },
      });
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === "UND_ERR_HEADERS_TIMEOUT") throw new ConsulCallError(`no answer within ${timeoutMs} ms`, { code: "UND_ERR_HEADERS_TIMEOUT" });
      throw transportFailure(err, settings.token);
    }
    let bytes: Buffer;
    try {
      bytes = await readAnswer(res, settings, res.statusCode === 200);
    } catch (err) {
      throw err instanceof ConsulCallError ? err : transportFailure(err, settings.token);
    }
    const at = headerIndex(res.headers["x-consul-index"]);
    if (missingOk && res.statusCode === 404) return { index: at, body: undefined };
    if (res.statusCode !== 200) throw statusFailure(res.statusCode, bytes, settings.token);
    return { index: at, body: parseAnswer(bytes), filteredByAcls: res.headers["x-consul-results-filtered-by-acls"] === "true" };
  } finally {
    cancel.off("cancel", onCancel);
  }
}

/** The index of a Consul answer, from its `X-Consul-Index` header. @internal */
export function headerIndex(header: string | string[] | undefined): number {
  return Number(Array.isArray(header) ? header[0] : header);
}

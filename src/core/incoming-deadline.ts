import { AsyncLocalStorage } from "node:async_hooks";
import type { IncomingHttpHeaders } from "node:http";

/**
 * The header that carries a call's remaining time, in ms, to the upstream: Envoy's
 * `x-envoy-expected-rq-timeout-ms`, so proxyless and Envoy meshes understand each other.
 */
export const DEADLINE_HEADER = "x-envoy-expected-rq-timeout-ms";

const store = new AsyncLocalStorage<{ readonly until: number }>();

/**
 * Runs `fn` under the deadline an incoming request carries (`x-envoy-expected-rq-timeout-ms`): calls
 * made through any mesh inside it get at most the time left, so a caller's deadline holds across hops.
 * Without the header, `fn` runs as is.
 *
 * @param headers - the incoming request's headers (`req.headers`)
 * @param fn - the handler's work
 * @returns what `fn` returns
 *
 * @example
 * ```ts
 * http.createServer((req, res) => withIncomingDeadline(req.headers, () => handle(req, res)));
 * ```
 */
export function withIncomingDeadline<T>(headers: IncomingHttpHeaders, fn: () => T): T {
  const raw = headers[DEADLINE_HEADER];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  if (raw === undefined || !Number.isFinite(value) || value < 0) return fn();
  return store.run({ until: performance.now() + value }, fn);
}

/** The time left under the incoming deadline, in ms, or undefined when there is none. @internal */
export function remainingIncomingMs(): number | undefined {
  const deadline = store.getStore();
  return deadline === undefined ? undefined : deadline.until - performance.now();
}

import type { Dispatcher } from "undici";
import { MeshError } from "../core/errors.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { statusConditions, type FailureKind } from "./classify.ts";
import { DEADLINE_HEADER } from "../core/incoming-deadline.ts";
import type { CallPolicy } from "../config/resilience-options.ts";

/*
 * The call engine's rules: when to retry, how long to wait, and the errors calls end with. @internal
 */

/** Full-jitter exponential backoff (AWS's): a random time up to base * 2^retry, capped. @internal */
export function backoff(policy: CallPolicy, retry: number, random: { next(): number }): number {
  return Math.round(random.next() * Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** retry));
}

/** Whether the policy retries a response with this status. @internal */
export function retriesStatus(policy: CallPolicy, status: number): boolean {
  return (status >= 429 || policy.statusCodes.size > 0) && statusConditions(status, policy.statusCodes).some((c) => policy.retryOn.has(c));
}

/** Whether the policy retries an attempt that failed this way (a timed-out attempt counts as a gateway error). @internal */
export function retriesFailure(policy: CallPolicy, failure: FailureKind | undefined): boolean {
  const condition = failure === "connect-failure" ? "connect-failure" : failure === "reset" ? "reset" : failure === "timeout" ? "gateway-error" : undefined;
  return condition !== undefined && (policy.retryOn.has(condition) || (condition === "gateway-error" && policy.retryOn.has("5xx")));
}

/** The headers with the remaining deadline (ms) told downstream. @internal */
export function withDeadlineHeader(headers: Dispatcher.DispatchOptions["headers"], remaining: number): Exclude<Dispatcher.DispatchOptions["headers"], undefined> {
  const value = String(Math.max(0, Math.floor(remaining)));
  if (headers === undefined || headers === null) return { [DEADLINE_HEADER]: value };
  if (Array.isArray(headers)) return [...(headers), DEADLINE_HEADER, value];
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") return [...(headers as Iterable<[string, string]>), [DEADLINE_HEADER, value]] as unknown as string[];
  return { ...(headers as Record<string, string>), [DEADLINE_HEADER]: value };
}

/** `ERR_TIMEOUT` for a call. @internal */
export function timeoutError(state: UpstreamView, total: number, attempts: number, cause: unknown): MeshError {
  return new MeshError("ERR_TIMEOUT", `A call to '${state.service}' got no response within its ${total} ms deadline (${attempts} attempt${attempts === 1 ? "" : "s"}). Raise timeoutMs, or look at the upstream.`, {
    cause,
    details: { service: state.service, timeoutMs: total, attempts },
  });
}

/** The budget refused a retry or hedge: the mesh's event, and the call's span event and counter. @internal */
export function budgetSpent(state: UpstreamView, call: { budgetExhausted(): void } | undefined): void {
  state.events.emit("retry_budget_exhausted", { service: state.service });
  call?.budgetExhausted();
}

/** `ERR_RETRY_BUDGET_EXHAUSTED`: the call failed and the budget allowed no retry. @internal */
export function budgetExhaustedError(state: UpstreamView, error: unknown, attempts: number): MeshError {
  return new MeshError("ERR_RETRY_BUDGET_EXHAUSTED", `A call to '${state.service}' failed (${(error as Error).message}) and was not retried: the retry budget is spent (too many retries in the last second).`, {
    cause: error,
    details: { service: state.service, attempts },
  });
}

/** `ERR_LIMIT_EXCEEDED`: the upstream's concurrency slots and queue are full. @internal */
export function limitError(state: UpstreamView, limit: { readonly max: number; readonly queue: number }): MeshError {
  return new MeshError(
    "ERR_LIMIT_EXCEEDED",
    `Too many requests to '${state.service}': the ${limit.max} concurrency slots and the queue of ${limit.queue} are full. Raise limits.maxConcurrent or maxPending, or slow down.`,
    { details: { service: state.service, maxConcurrent: limit.max, maxPending: limit.queue } },
  );
}

/** `ERR_CIRCUIT_OPEN`: the breaker is open (the call fails at once, with no I/O). @internal */
export function circuitOpenError(state: UpstreamView, breaker: { retryAfterMs(): number }): MeshError {
  const retryAfter = breaker.retryAfterMs();
  return new MeshError("ERR_CIRCUIT_OPEN", `The circuit breaker of '${state.service}' is open after repeated failures; calls fail at once for ${retryAfter} ms more, then one probe goes through.`, {
    details: { service: state.service, retryAfterMs: retryAfter },
  });
}

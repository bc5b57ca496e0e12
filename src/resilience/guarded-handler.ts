import type { Dispatcher } from "undici";
import { MeshError } from "../core/errors.ts";
import type { ServiceState } from "../client/service-state.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import { classifyError } from "./classify.ts";

/**
 * The protections a dispatch (`client.fetch()`, `mesh.dispatcher`) gets: the circuit breaker (open:
 * fail at once, no I/O) and outlier detection, which learn from its response status or error. Retries,
 * hedging and limits are `client.request()`'s only, for now.
 *
 * @returns the error to fail the dispatch with when the breaker is open, else undefined
 * @internal
 */
export function breakerRefusal(state: ServiceState): MeshError | undefined {
  const breaker = state.guard.breaker;
  if (breaker === undefined || breaker.allow()) return undefined;
  const retryAfter = breaker.retryAfterMs();
  return new MeshError("ERR_CIRCUIT_OPEN", `The circuit breaker of '${state.service}' is open after repeated failures; calls fail at once for ${retryAfter} ms more, then one probe goes through.`, {
    details: { service: state.service, retryAfterMs: retryAfter },
  });
}

/**
 * Wraps a dispatch handler (either undici API) so that the response's status, or the error, is told to
 * the upstream's breaker (which let the dispatch through) and outlier detector. @internal
 */
export function guardedHandler(state: ServiceState, handle: EndpointHandle, handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
  const guard = state.guard;
  const id = handle.endpoint.id;
  let told = false;
  const status = (code: number): void => {
    if (told) return;
    told = true;
    if (code >= 500) {
      guard.outlier?.failure(id, state.endpoints?.size ?? 1);
      guard.breaker?.failure();
    } else {
      guard.outlier?.success(id);
      guard.breaker?.success();
    }
  };
  const failed = (error: Error): void => {
    if (told) return;
    told = true;
    const kind = classifyError(error, undefined);
    if (kind === "connect-failure" || kind === "reset" || kind === "timeout") {
      guard.outlier?.failure(id, state.endpoints?.size ?? 1);
      guard.breaker?.failure();
    } else {
      guard.breaker?.release();
    }
  };
  return new Proxy(handler, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      switch (prop) {
        case "onResponseStart":
          return (controller: unknown, code: number, ...rest: unknown[]) => {
            status(code);
            return fn.call(target, controller, code, ...rest);
          };
        case "onHeaders":
          return (code: number, ...rest: unknown[]) => {
            if (code >= 200) status(code);
            return fn.call(target, code, ...rest);
          };
        case "onResponseError":
          return (controller: unknown, error: Error) => {
            failed(error);
            return fn.call(target, controller, error);
          };
        case "onError":
          return (error: Error) => {
            failed(error);
            return fn.call(target, error);
          };
        default:
          return fn.bind(target);
      }
    },
  });
}

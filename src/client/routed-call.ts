import type { Dispatcher } from "undici";
import { hash32 } from "../balancer/hash.ts";
import type { PickContext } from "../balancer/picker.ts";
import { changeRawResponseHeaders, changeRequestHeaders, changeResponseHeaders } from "../routing/header-changes.ts";
import { decideRoute, type RouteDecision } from "../routing/route-decision.ts";
import { RequestView } from "../routing/request-view.ts";
import { selectEndpoints, type Selection } from "../routing/select-endpoints.ts";
import { failHandler } from "../transport/http/forwarding-dispatcher.ts";
import type { ServiceState } from "./service-state.ts";

/** Gives the state of any service, creating its watch on first use. @internal */
export type StateLookup = (service: string) => ServiceState;

/** A routing decision and the endpoints it found. @internal */
export interface RoutedTarget {
  readonly decision: RouteDecision;
  readonly selection: Selection;
}

/**
 * Routes a request: decides, then finds endpoints, waiting (once per service, up to the discovery
 * timeout) for services the registry has not answered for yet.
 *
 * @internal
 */
export async function routeRequest(service: string, request: { readonly method?: string; readonly path: string; readonly headers?: unknown }, stateOf: StateLookup, advance = true): Promise<RoutedTarget> {
  const decision = decideRoute(service, new RequestView(request), (s) => stateOf(s).routing, advance);
  const waited = new Set<ServiceState>();
  for (;;) {
    const outcome = selectEndpoints(decision, stateOf, false);
    if (outcome.kind === "ready") return { decision, selection: outcome.selection };
    if (outcome.kind === "fail") throw outcome.error;
    if (waited.has(outcome.state)) {
      const last = selectEndpoints(decision, stateOf, true);
      if (last.kind === "ready") return { decision, selection: last.selection };
      throw last.kind === "fail" ? last.error : outcome.state.unavailableError();
    }
    waited.add(outcome.state);
    await outcome.state.settle();
  }
}

function pickContext(selection: Selection, request: { readonly path: string; readonly headers?: unknown }, hashKey: string | undefined): PickContext {
  if (hashKey !== undefined) return { hash: hash32(hashKey) };
  const hasher = selection.state.hasher;
  return { hash: hasher === undefined ? undefined : hasher(request) };
}

/** The options to send: the decision's path and request headers. */
function routedOptions<T extends { readonly path: string; readonly headers?: Dispatcher.DispatchOptions["headers"] }>(options: T, decision: RouteDecision): T {
  if (decision.path === options.path && decision.requestHeaders.length === 0) return options;
  return {
    ...options,
    path: decision.path,
    ...(decision.requestHeaders.length === 0 ? {} : { headers: changeRequestHeaders(options.headers, decision.requestHeaders) }),
  };
}

/**
 * `request()` through routing: the route's rewrites and header changes are applied, the endpoint comes
 * from the target's balancer, and the response's headers are changed as configured.
 *
 * @internal
 */
export async function routedRequest(service: string, options: Dispatcher.RequestOptions, stateOf: StateLookup, hashKey: string | undefined): Promise<Dispatcher.ResponseData> {
  const { decision, selection } = await routeRequest(service, options, stateOf);
  const handle = selection.picker.pick(pickContext(selection, options, hashKey));
  const res = await handle.pool.request(routedOptions(options, decision));
  if (decision.responseHeaders.length > 0) changeResponseHeaders(res.headers, decision.responseHeaders);
  return res;
}

/** A handler of either undici API whose response headers are changed on the way. */
function rewritingHandler(handler: Dispatcher.DispatchHandler, decision: RouteDecision): Dispatcher.DispatchHandler {
  if (decision.responseHeaders.length === 0) return handler;
  const changes = decision.responseHeaders;
  return new Proxy(handler, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "onResponseStart") {
        return (controller: unknown, status: number, headers: Record<string, string | string[] | undefined>, message: unknown) => {
          changeResponseHeaders(headers, changes);
          return (value as (...args: unknown[]) => unknown).call(target, controller, status, headers, message);
        };
      }
      if (prop === "onHeaders") {
        return (status: number, raw: Buffer[], resume: unknown, text: unknown) =>
          (value as (...args: unknown[]) => unknown).call(target, status, changeRawResponseHeaders(raw, changes), resume, text);
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
}

/**
 * A dispatch (fetch, `mesh.dispatcher`) through routing.
 *
 * @param host - the `Host` header to set when the caller set none
 * @internal
 */
export function routedDispatch(
  service: string,
  options: Dispatcher.DispatchOptions,
  handler: Dispatcher.DispatchHandler,
  stateOf: StateLookup,
  hashKey: string | undefined,
  prepare: (options: Dispatcher.DispatchOptions) => Dispatcher.DispatchOptions,
): boolean {
  routeRequest(service, options, stateOf).then(
    ({ decision, selection }) => {
      const handle = selection.picker.pick(pickContext(selection, options, hashKey));
      handle.pool.dispatch(prepare(routedOptions(options, decision)), rewritingHandler(handler, decision));
    },
    (err: unknown) => failHandler(handler, err instanceof Error ? err : new Error(String(err))),
  );
  return true;
}

import type { Dispatcher } from "undici";
import { hash32 } from "../../balancer/hash.ts";
import type { PickContext } from "../../balancer/picker.ts";
import { changeRawResponseHeaders, changeRequestHeaders, changeResponseHeaders } from "../../routing/header-changes.ts";
import { decideRoute, type RouteDecision } from "../../routing/route-decision.ts";
import { RequestView } from "../../routing/request-view.ts";
import { selectEndpoints, selectWaiting, type Selection } from "../../routing/select-endpoints.ts";
import { failHandler } from "./forwarding-dispatcher.ts";
import { respondWith } from "./synthetic-response.ts";
import { headerValue, withHeadersSet } from "../../core/headers.ts";
import { sleep } from "../../core/clock.ts";
import type { Random } from "../../core/random.ts";
import type { DiscoveryWait } from "../../upstream/discovery-wait.ts";
import { meshClosedError } from "../../upstream/upstream-errors.ts";
import { MAX_MIRRORS_IN_FLIGHT, type UpstreamView } from "../../upstream/upstream-view.ts";
import type { AttemptPicker } from "../../resilience/call-engine.ts";
import { pickUntried } from "../../resilience/pick-untried.ts";
import { meshDispatch } from "./http-call.ts";
import type { EndpointHandle } from "./endpoint-handle.ts";
import type { CallLabel } from "../../telemetry/call-telemetry.ts";

/** Gives the state of any service, creating its watch on first use. @internal */
export type StateLookup = (service: string) => UpstreamView<EndpointHandle>;

/**
 * Finds the endpoints for a decision, waiting (once per service, within `wait`: by default the call's
 * deadline or the discovery timeout) for services the registry has not answered for yet; says which
 * wait, if any, the call went through.
 *
 * @internal
 */
export async function selectFor(decision: RouteDecision, stateOf: StateLookup, wait: DiscoveryWait | undefined): Promise<{ readonly selection: Selection<EndpointHandle>; readonly wait: DiscoveryWait | undefined }> {
  const now = selectEndpoints(decision, stateOf, false);
  if (now.kind === "ready") return { selection: now.selection, wait };
  if (now.kind === "fail") throw now.error;
  // A service not known yet: the call waits, and its deadline counts from when it began waiting.
  const waited = wait ?? stateOf(decision.service).discoveryWait(true);
  const outcome = await selectWaiting(decision, stateOf, waited);
  if (outcome.kind === "fail") throw outcome.error;
  return { selection: outcome.selection, wait: waited };
}

/** What a route's fault policy does to one request. */
interface Fault {
  readonly delayMs: number;
  readonly abortStatus: number | undefined;
}

const NO_FAULT: Fault = { delayMs: 0, abortStatus: undefined };

function faultFor(decision: RouteDecision, headers: unknown, random: Random): Fault {
  const fault = decision.route?.config.fault;
  if (fault === undefined) return NO_FAULT;
  const applies = (f: { readonly percent?: number; readonly header?: string }): boolean =>
    (f.header === undefined || headerValue(headers, f.header.toLowerCase()) !== undefined) && random.next() * 100 < (f.percent ?? 100);
  return {
    delayMs: fault.delay !== undefined && applies(fault.delay) ? fault.delay.ms : 0,
    abortStatus: fault.abort !== undefined && applies(fault.abort) ? fault.abort.status : undefined,
  };
}

/** How long a mirrored copy may wait for its response headers, and then between body chunks. */
const MIRROR_TIMEOUT_MS = 10_000;

const FAULT_HEADERS = Object.freeze({ "content-type": "text/plain", "x-proxyless-fault": "abort" });

/**
 * Sends a copy of the request to the route's mirror target, when the dice say so and the body can be
 * sent twice. The copy's response is read and dropped; its failure is ignored. Its Host gets `-shadow`
 * appended, as Envoy does, so the target can tell copies apart. At most 100 copies are in flight per
 * target service, each for at most 10 s; closing the mesh aborts them.
 */
function mirror(decision: RouteDecision, options: Dispatcher.DispatchOptions, stateOf: StateLookup, random: Random): void {
  const policy = decision.route?.config.mirror;
  if (policy === undefined || random.next() * 100 >= policy.percent) return;
  const body = options.body;
  if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) return;
  const service = policy.service ?? decision.service;
  const target = { service, subset: policy.subset ?? stateOf(service).routing.resolver?.defaultSubset };
  const outcome = selectEndpoints({ ...decision, target }, stateOf, true);
  if (outcome.kind !== "ready") return;
  const state = outcome.selection.state;
  if (state.mirrorsInFlight >= MAX_MIRRORS_IN_FLIGHT) return;
  const host = headerValue(options.headers, "host") ?? decision.service;
  const copy = routedOptions(options, decision);
  const handle = outcome.selection.picker.pick({ hash: undefined });
  state.mirrorsInFlight++;
  // A copy loads its endpoint while in flight (least_request sees it); its round trip is no sample.
  handle.load.pending++;
  handle.pool
    .request({
      ...copy,
      method: copy.method,
      headers: withHeadersSet(copy.headers, { host: `${host}-shadow` }),
      // A copy must not outlive its usefulness nor hold up close(): bounded in time, aborted on close.
      signal: state.shadowSignal,
      headersTimeout: MIRROR_TIMEOUT_MS,
      bodyTimeout: MIRROR_TIMEOUT_MS,
    })
    .then((res) => res.body.dump())
    .catch(() => undefined)
    .finally(() => {
      state.mirrorsInFlight--;
      handle.load.pending--;
    });
}

function pickContext(selection: Selection<EndpointHandle>, request: { readonly path: string; readonly headers?: unknown }, hashKey: string | undefined): PickContext {
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
 * Picks each attempt's endpoint for a routed call: a retry re-selects, so it sees ejections and
 * failover since the first attempt, and prefers endpoints not tried yet.
 */
function attemptPicker(decision: RouteDecision, first: Selection<EndpointHandle>, stateOf: StateLookup, context: PickContext): AttemptPicker<EndpointHandle> {
  let selection = first;
  return (tried) => {
    if (tried.size > 0) {
      const again = selectEndpoints(decision, stateOf, true);
      if (again.kind === "ready") selection = again.selection;
    }
    return pickUntried(selection.picker, context, tried);
  };
}

/** Where a decision sends a call, for its span. */
function labelOf(decision: RouteDecision): CallLabel {
  return { service: decision.service, route: decision.route?.index, subset: decision.target.subset };
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
 * A dispatch (`request()`, `fetch()`, `mesh.dispatcher`) through routing.
 *
 * @param prepare - the options as they will go (with the `Host` of the service called when the caller
 *   set none): routes, faults, mirrors and hash policies read these
 * @internal
 */
export function routedDispatch(
  service: string,
  options: Dispatcher.DispatchOptions,
  handler: Dispatcher.DispatchHandler,
  stateOf: StateLookup,
  hashKey: string | undefined,
  prepare: (options: Dispatcher.DispatchOptions) => Dispatcher.DispatchOptions,
  wait?: DiscoveryWait,
): boolean {
  const send = async (): Promise<void> => {
    if (stateOf(service).closing) throw meshClosedError();
    // Routes, faults, mirrors and hash policies see the request as it will go, its Host included.
    const sent = prepare(options);
    const decision = decideRoute(service, new RequestView(sent), (s) => stateOf(s).routing, true);
    const { clock, random } = stateOf(service).env;
    const fault = faultFor(decision, sent.headers, random);
    if (fault.delayMs > 0) await sleep(clock, fault.delayMs);
    if (fault.abortStatus !== undefined) {
      respondWith(rewritingHandler(handler, decision), fault.abortStatus, FAULT_HEADERS, "fault filter abort");
      return;
    }
    const { selection: first, wait: waited } = await selectFor(decision, stateOf, wait);
    mirror(decision, sent, stateOf, random);
    const context = pickContext(first, sent, hashKey);
    const target = first.state;
    const policy = target.policyFor(decision.route?.config.destination);
    meshDispatch(target, policy, routedOptions(sent, decision), rewritingHandler(handler, decision), attemptPicker(decision, first, stateOf, context), labelOf(decision), waited?.startedAt);
  };
  send().catch((err: unknown) => failHandler(handler, err instanceof Error ? err : new Error(String(err))));
  return true;
}

import type { RouteConfig } from "../config/route-config.ts";
import type { CompiledHeaderChanges } from "../config/header-rules.ts";
import type { TargetRef } from "../config/resolver-config.ts";
import { hash32 } from "../balancer/hash.ts";
import { cookieValue } from "../balancer/hash-policy.ts";
import { MeshError } from "../core/errors.ts";
import type { RequestView } from "./request-view.ts";
import type { ServiceRouting } from "../config/service-routing.ts";

/** A service and, optionally, one of its subsets. */
export interface RouteTarget {
  /** The service. */
  readonly service: string;
  /** The subset, or undefined for all of the service's endpoints. */
  readonly subset: string | undefined;
}

/** A split chosen on the way. */
export interface ChosenSplit {
  /** The service whose splitter chose. */
  readonly splitter: string;
  /** The split's position in that splitter. */
  readonly index: number;
  /** Its weight, in percent. */
  readonly weight: number;
}

/** Where routing sends a request, before an endpoint is picked. @internal */
export interface RouteDecision {
  /** The service the request was sent to. */
  readonly service: string;
  /** The route that matched; undefined for the default route. */
  readonly route: { readonly index: number; readonly config: RouteConfig } | undefined;
  /** The splits chosen, in order (a split to another service may meet that service's splitter). */
  readonly splits: readonly ChosenSplit[];
  /** The targets a resolver redirected from, in order. */
  readonly redirects: readonly RouteTarget[];
  /** The target after routes, splits, redirects and the default subset (before failover). */
  readonly target: RouteTarget;
  /** The path to send (rewritten by the route's `prefixRewrite`), with the query string. */
  readonly path: string;
  /** Request header changes, compiled, in the order they apply (route, then splits). */
  readonly requestHeaders: readonly CompiledHeaderChanges[];
  /** Response header changes, compiled, in the order they apply. */
  readonly responseHeaders: readonly CompiledHeaderChanges[];
}

/** Gives a service's compiled routing (creating its watch on first use). @internal */
export type RoutingLookup = (service: string) => ServiceRouting;

const NO_REDIRECTS: readonly RouteTarget[] = Object.freeze([]);

/** How deep splits and redirects may chain before routing calls it a loop (Consul refuses loops outright). */
const MAX_HOPS = 8;

function noRoute(message: string, service: string): MeshError {
  return new MeshError("ERR_NO_ROUTE", message, { details: { service } });
}

/** Why a target cannot be reached by this registry, or undefined when it can. */
export function unreachable(ref: TargetRef): string | undefined {
  if (ref.datacenter !== undefined) return `datacenter '${ref.datacenter}'`;
  if (ref.namespace !== undefined) return `namespace '${ref.namespace}'`;
  if (ref.peer !== undefined) return `peer '${ref.peer}'`;
  return undefined;
}

/**
 * Follows a target through resolvers: redirects (stopping when one points back at the same target, as
 * Consul does; a true loop is an error), then the default subset when none is named.
 *
 * @param start - the service and subset to resolve
 * @param lookup - every service's compiled routing
 * @param service - the service called, for errors
 * @throws MeshError `ERR_NO_ROUTE` for a loop or a redirect this registry cannot follow
 * @internal
 */
export function resolveTarget(start: RouteTarget, lookup: RoutingLookup, service: string): { readonly target: RouteTarget; readonly redirects: readonly RouteTarget[] } {
  const first = lookup(start.service).resolver;
  // The common case, no redirect: nothing to follow, nothing to allocate.
  if (first?.redirect === undefined) return { target: { service: start.service, subset: start.subset ?? first?.defaultSubset }, redirects: NO_REDIRECTS };
  const redirects: RouteTarget[] = [];
  const seen = new Set<string>();
  let current = start.service;
  let subset = start.subset;
  for (;;) {
    const key = `${current}/${subset ?? ""}`;
    if (seen.has(key)) throw noRoute(`Routing for '${service}' loops through resolver redirects (${[...seen, key].join(" -> ")})`, service);
    seen.add(key);
    const redirect = lookup(current).resolver?.redirect;
    if (redirect === undefined) break;
    const far = unreachable(redirect);
    if (far !== undefined) throw noRoute(`The resolver of '${current}' redirects to ${far}, which this registry cannot reach`, service);
    const next = redirect.service ?? current;
    const nextSubset = redirect.subset ?? (next === current ? subset : undefined);
    if (next === current && nextSubset === subset) break;
    redirects.push({ service: current, subset });
    current = next;
    subset = nextSubset;
  }
  return { target: { service: current, subset: subset ?? lookup(current).resolver?.defaultSubset }, redirects };
}

/**
 * Decides where a request goes, with Consul's discovery-chain semantics: the service's router (first
 * matching route; none matching means the service itself), then, unless the destination names a
 * subset, the destination's splitter (a split to another service without a subset meets that
 * service's splitter in turn), then the resolver (redirects, then the default subset).
 *
 * @param service - the service called
 * @param request - the request
 * @param lookup - every service's compiled routing
 * @param advance - whether to advance split sequences (false for `explain`)
 * @throws MeshError `ERR_NO_ROUTE` for a subset that is not defined, a loop, or an unreachable redirect
 * @internal
 */
export function decideRoute(service: string, request: RequestView, lookup: RoutingLookup, advance: boolean): RouteDecision {
  const requestHeaders: CompiledHeaderChanges[] = [];
  const responseHeaders: CompiledHeaderChanges[] = [];
  const splits: ChosenSplit[] = [];
  const matched = lookup(service).matchRoute(request);
  const destination = matched?.config.destination;
  let path = request.rawPath;
  if (matched !== undefined) {
    if (matched.requestHeaders !== undefined) requestHeaders.push(matched.requestHeaders);
    if (matched.responseHeaders !== undefined) responseHeaders.push(matched.responseHeaders);
  }
  if (destination !== undefined) {
    const rewrite = destination.prefixRewrite;
    const match = matched?.config.match;
    if (rewrite !== undefined) {
      const cut = match?.pathExact !== undefined ? request.path.length : (match?.pathPrefix?.length ?? 0);
      path = rewrite + request.path.slice(cut) + (request.queryString === "" ? "" : `?${request.queryString}`);
    }
  }
  let current = destination?.service ?? service;
  let subset = destination?.subset;
  // Splitters: only when no subset is named, as in Consul.
  for (let hops = 0; subset === undefined; hops++) {
    if (hops > MAX_HOPS) throw noRoute(`Routing for '${service}' loops through splitters (${splits.map((s) => s.splitter).join(" -> ")})`, service);
    const routing = lookup(current);
    const sequence = routing.sequence;
    const all = routing.splits;
    if (sequence === undefined || all === undefined) break;
    const sticky = routing.sticky;
    const key = sticky === undefined ? undefined : sticky.header !== undefined ? request.header(sticky.header) : cookieValue(request.header("cookie"), sticky.cookie ?? "");
    // Seeded per splitter: nested sticky splitters on one header must choose independently.
    const index = key !== undefined ? sequence.byHash(hash32(key, hash32(current))) : advance ? sequence.next() : sequence.peek();
    const split = all[index];
    if (split === undefined) break;
    splits.push({ splitter: current, index, weight: split.weight });
    if (split.requestHeaders !== undefined) requestHeaders.push(split.requestHeaders);
    if (split.responseHeaders !== undefined) responseHeaders.push(split.responseHeaders);
    const next = split.service ?? current;
    subset = split.subset;
    const again = next !== current && subset === undefined;
    current = next;
    if (!again) break;
  }
  const resolved = resolveTarget({ service: current, subset }, lookup, service);
  const routing = lookup(resolved.target.service);
  const target = resolved.target;
  if (target.subset !== undefined && !routing.subsets.has(target.subset)) {
    throw noRoute(`Service '${target.service}' does not have a subset named '${target.subset}': define it in its resolver, or change the route or split that names it`, service);
  }
  const redirects = resolved.redirects;
  return {
    service,
    route: matched === undefined ? undefined : { index: matched.index, config: matched.config },
    splits,
    redirects,
    target,
    path,
    requestHeaders,
    responseHeaders,
  };
}

import type { ResolverConfig } from "./resolver-config.ts";
import type { RouteConfig } from "./route-config.ts";
import type { SplitConfig } from "./split-config.ts";
import { compileFilter, type FilterPredicate } from "./filter-expression.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";
import type { ServiceConfig } from "./service-config.ts";
import { compileMatch, type MatchableRequest, type RouteMatcher } from "./compile-match.ts";
import { SplitSequence } from "../balancer/split-sequence.ts";

/** A route, compiled. @internal */
export interface CompiledRoute {
  /** Its position in the router's list. */
  readonly index: number;
  readonly config: RouteConfig;
  readonly matches: RouteMatcher;
}

/** A resolver subset, compiled. @internal */
export interface CompiledSubset {
  readonly name: string;
  /** Whether an endpoint belongs to the subset. */
  readonly includes: (endpoint: Endpoint) => boolean;
}

/** An endpoint as Consul's filter expressions see an instance (`Service.Tags`, `Service.Meta.version`, ...). */
function filterView(service: string, e: Endpoint): unknown {
  const [node, id] = e.id.includes("/") ? [e.id.slice(0, e.id.indexOf("/")), e.id.slice(e.id.indexOf("/") + 1)] : ["", e.id];
  return {
    Service: { ID: id, Service: service, Tags: e.tags, Meta: e.meta, Address: e.address, Port: e.port, Weights: { Passing: e.weights.passing, Warning: e.weights.warning } },
    Node: { Node: node, Address: e.address },
    Checks: [{ Status: e.health }],
  };
}

function compileSubset(service: string, name: string, filter: string | undefined, onlyPassing: boolean): CompiledSubset {
  const predicate: FilterPredicate | undefined = filter === undefined || filter === "" ? undefined : compileFilter(filter);
  return {
    name,
    includes: (e) => (!onlyPassing || e.health === "passing") && (predicate === undefined || predicate(filterView(service, e))),
  };
}

/**
 * One service's routing config, compiled when the config is applied and swapped in whole, so a request
 * sees either the old config or the new one: routes with their matchers, the splitter with its
 * sequence, the resolver with its subsets. @internal
 */
export class ServiceRouting {
  readonly routes: readonly CompiledRoute[] | undefined;
  readonly splits: readonly SplitConfig[] | undefined;
  readonly sequence: SplitSequence | undefined;
  /** Sticky splitting by a (lower-case) header or a cookie. */
  readonly sticky: { readonly header?: string; readonly cookie?: string } | undefined;
  readonly resolver: ResolverConfig | undefined;
  readonly subsets: ReadonlyMap<string, CompiledSubset>;
  /**
   * Whether anything here can change where a request to this service goes or what it carries: false
   * lets requests take the direct path to the service's own balancer.
   */
  readonly active: boolean;

  /** Nothing configured: every request goes to the service itself. */
  static readonly NONE = new ServiceRouting("", {});

  constructor(service: string, config: ServiceConfig) {
    this.routes = config.router?.routes.map((r, index) => ({ index, config: r, matches: compileMatch(r.match, `router.routes[${index}].match`) }));
    this.splits = config.splitter?.splits;
    this.sequence = this.splits === undefined ? undefined : new SplitSequence(this.splits.map((s) => s.weight));
    const sticky = config.splitter?.sticky;
    this.sticky = sticky === undefined ? undefined : sticky.header !== undefined ? { header: sticky.header.toLowerCase() } : sticky;
    this.resolver = config.resolver;
    const subsets = new Map<string, CompiledSubset>();
    for (const [name, s] of Object.entries(config.resolver?.subsets ?? {})) subsets.set(name, compileSubset(service, name, s.filter, s.onlyPassing === true));
    this.subsets = subsets;
    const r = config.resolver;
    this.active =
      (this.routes !== undefined && this.routes.length > 0) ||
      this.splits !== undefined ||
      (r !== undefined && (r.redirect !== undefined || r.defaultSubset !== undefined || r.failover !== undefined));
  }

  /** The first route whose match holds, or undefined (the default route: the service itself). */
  matchRoute(request: MatchableRequest): CompiledRoute | undefined {
    const routes = this.routes;
    if (routes === undefined) return undefined;
    for (const route of routes) if (route.matches(request)) return route;
    return undefined;
  }
}

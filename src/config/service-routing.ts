import type { ResolverConfig } from "./resolver-config.ts";
import type { MatchableRequest } from "./compile-match.ts";
import { SplitSequence } from "../balancer/split-sequence.ts";
import { compileServiceConfig, type CompiledRoute, type CompiledServiceConfig, type CompiledSplit, type CompiledSubset } from "./compile-config.ts";

/**
 * One service's routing, from its compiled config, swapped in whole when a config is applied, so a
 * request sees either the old config or the new one: routes with their matchers, the splitter with its
 * sequence, the resolver with its subsets. @internal
 */
export class ServiceRouting {
  readonly routes: readonly CompiledRoute[] | undefined;
  readonly splits: readonly CompiledSplit[] | undefined;
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
  static readonly NONE = new ServiceRouting(compileServiceConfig({}, ""));

  /** @param compiled - the service's config, compiled ({@link compileServiceConfig}) */
  constructor(compiled: CompiledServiceConfig) {
    this.routes = compiled.routes;
    this.splits = compiled.splits;
    this.sequence = this.splits === undefined ? undefined : new SplitSequence(this.splits.map((s) => s.weight));
    this.sticky = compiled.sticky;
    const r = (this.resolver = compiled.config.resolver);
    this.subsets = compiled.subsets;
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

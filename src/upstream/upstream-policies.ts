import type { ServiceDefaultsConfig } from "../config/defaults-config.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import { callPolicy, guardSettings, type ResilienceLayers } from "../config/resolve-policy.ts";
import type { ResolverConfig } from "../config/resolver-config.ts";
import type { RouteDestination } from "../config/route-config.ts";
import type { OutlierDetector } from "./outlier-detector.ts";
import type { MeshContext } from "./mesh-context.ts";
import type { PoolHandle } from "./pool-handle.ts";
import { UpstreamGuard } from "./upstream-guard.ts";

/** What the policies use of the mesh's context. @internal */
export type PolicyContext = Pick<MeshContext<PoolHandle>, "resilience" | "events" | "env">;

/** What the policies tell the rest of their upstream. @internal */
export interface PolicyHooks {
  /** Outlier detection ejected or returned an endpoint: the picker must be rebuilt. */
  rebuild(): void;
  /** Whether the upstream has closed (a returning endpoint then rebuilds nothing). */
  closed(): boolean;
}

/**
 * The resilience policies of one upstream: its guard (retry budget, outlier detection, breaker,
 * limits), rebuilt when the calling service's Consul service-defaults change, and the call policy
 * (timeouts, retries) of each route destination that sends calls here, cached per config. @internal
 */
export class UpstreamPolicies {
  readonly #service: string;
  readonly #ctx: PolicyContext;
  readonly #hooks: PolicyHooks;
  #guard: UpstreamGuard | undefined;
  /** Call policies by route destination, for the config and guard in force (weakly held: routes come and go). */
  #policies = new WeakMap<RouteDestination, CallPolicy>();
  /** The policy of calls that no route sent. */
  #plainPolicy: CallPolicy | undefined;
  /** The caller's service-defaults the guard was built with. */
  #guardCaller: ServiceDefaultsConfig | undefined;
  /** The resolver of the config in force. */
  #resolver: ResolverConfig | undefined;

  constructor(service: string, ctx: PolicyContext, hooks: PolicyHooks) {
    this.#service = service;
    this.#ctx = ctx;
    this.#hooks = hooks;
  }

  /** Where this upstream's resilience settings come from (see ResilienceLayers). */
  get layers(): ResilienceLayers {
    const r = this.#ctx.resilience;
    return { mesh: r.mesh, upstream: r.upstreams[this.#service], caller: r.callerDefaults() };
  }

  /** The outlier detection of the guard in force, without rebuilding the guard. */
  get outlier(): OutlierDetector | undefined {
    return this.#guard?.outlier;
  }

  /**
   * The budget, outlier detection, breaker and limits of this upstream; rebuilt when the calling
   * service's Consul service-defaults change.
   */
  get guard(): UpstreamGuard {
    return this.#refresh();
  }

  #refresh(): UpstreamGuard {
    const caller = this.#ctx.resilience.callerDefaults();
    if (this.#guard !== undefined && caller === this.#guardCaller) return this.#guard;
    const layers = this.layers;
    this.#policies = new Map();
    const hadEjections = (this.#guard?.outlier?.ejectedCount ?? 0) > 0;
    this.#guard?.close();
    this.#guardCaller = layers.caller;
    const events = this.#ctx.events;
    const service = this.#service;
    const hooks = this.#hooks;
    this.#guard = new UpstreamGuard(guardSettings(service, layers), this.#ctx.env.clock, this.#ctx.env.random, {
      ejected: (e) => {
        hooks.rebuild();
        events.emit("endpoint_ejected", { service, endpoint: e.id, failures: e.failures, durationMs: e.durationMs, reason: e.reason, ...(e.successRate === undefined || e.threshold === undefined ? {} : { successRate: e.successRate, threshold: e.threshold }) });
      },
      returned: (id) => {
        if (!hooks.closed()) hooks.rebuild();
        events.emit("endpoint_returned", { service, endpoint: id });
      },
      breaker: (state) => events.emit("breaker_state_changed", { service, state }),
    });
    if (hadEjections) hooks.rebuild();
    return this.#guard;
  }

  /**
   * The policy of a call to this service (timeouts, retries), for the route destination that sent it
   * here, if any. Cached per config.
   */
  policyFor(destination: RouteDestination | undefined): CallPolicy {
    this.#refresh(); // clears the cache when the caller's service-defaults changed
    if (destination === undefined) return (this.#plainPolicy ??= callPolicy(this.layers, this.#resolver, undefined));
    let policy = this.#policies.get(destination);
    if (policy === undefined) this.#policies.set(destination, (policy = callPolicy(this.layers, this.#resolver, destination)));
    return policy;
  }

  /** Takes a new config's resolver: the cached call policies are dropped. */
  configure(resolver: ResolverConfig | undefined): void {
    this.#resolver = resolver;
    this.#policies = new WeakMap();
    this.#plainPolicy = undefined;
  }

  /** Stops the guard's timers. */
  close(): void {
    this.#guard?.close();
  }
}

import { defined } from "../core/defined.ts";
import type { ServiceDefaultsConfig } from "./defaults-config.ts";
import type { ResolverConfig } from "./resolver-config.ts";
import type { RouteDestination } from "./route-config.ts";
import { DEFAULT_POLICY, type BreakerOptions, type CallPolicy, type LimitOptions, type OutlierOptions, type ResilienceOptions, type RetryBudgetOptions } from "./resilience-options.ts";

/**
 * Where a call's settings come from, lowest precedence first: the built-in defaults, the mesh's
 * `resilience` option, the mesh's `upstreams[service]` option, the calling service's Consul
 * `service-defaults` (`UpstreamConfig.Defaults`, then `UpstreamConfig.Overrides` for this upstream), the
 * target's resolver (`RequestTimeout`), and the matched route's destination (`RequestTimeout`,
 * `NumRetries`, `RetryOn...`). Central config wins over code. @internal
 */
export interface ResilienceLayers {
  readonly mesh: ResilienceOptions | undefined;
  readonly upstream: ResilienceOptions | undefined;
  readonly caller: ServiceDefaultsConfig | undefined;
}

/** What one upstream's guard is built from. @internal */
export interface GuardSettings {
  readonly budget: Required<RetryBudgetOptions>;
  readonly outlier: OutlierOptions | false;
  readonly breaker: BreakerOptions | false;
  readonly limits: LimitOptions | undefined;
}

function pick<K extends keyof ResilienceOptions>(layers: ResilienceLayers, key: K): Exclude<ResilienceOptions[K], undefined>[] {
  return [layers.mesh?.[key], layers.upstream?.[key]].filter((v): v is Exclude<ResilienceOptions[K], undefined> => v !== undefined);
}

/** Merges layers of an option that may be `false` (off): a later `false` turns it off, a later object merges over. */
function mergeToggle<T extends object>(values: readonly (T | false | undefined)[]): T | false {
  let merged: Partial<T> = {};
  let off = false;
  for (const v of values) {
    if (v === undefined) continue;
    off = v === false;
    merged = v === false ? {} : { ...merged, ...v };
  }
  return off ? false : (merged as T);
}

function consulUpstream(caller: ServiceDefaultsConfig | undefined, service: string): { readonly outlier?: OutlierOptions; readonly limits?: LimitOptions } {
  if (caller === undefined) return {};
  const merged = { ...caller.upstreamDefaults, ...caller.upstreamOverrides?.[service] };
  const phc = { ...caller.upstreamDefaults?.passiveHealthCheck, ...caller.upstreamOverrides?.[service]?.passiveHealthCheck };
  const limits = { ...caller.upstreamDefaults?.limits, ...caller.upstreamOverrides?.[service]?.limits };
  const outlier = defined<OutlierOptions>({ consecutiveFailures: phc.maxFailures, baseEjectionMs: phc.baseEjectionTimeMs, maxEjectionPercent: phc.maxEjectionPercent, enforcingPercent: phc.enforcingConsecutive5xx });
  const limitOptions: LimitOptions = Object.fromEntries(Object.entries({ maxConcurrent: limits.maxConcurrentRequests, maxPending: limits.maxPendingRequests }).filter(([, v]) => v !== undefined && v > 0));
  return {
    ...(merged.passiveHealthCheck === undefined ? {} : { outlier }),
    ...(merged.limits === undefined || Object.keys(limitOptions).length === 0 ? {} : { limits: limitOptions }),
  };
}

/** The settings of an upstream's guard (budget, outlier detection, breaker, limits). @internal */
export function guardSettings(service: string, layers: ResilienceLayers): GuardSettings {
  const consul = consulUpstream(layers.caller, service);
  const budget = { percent: 20, minPerSecond: 10, ...Object.assign({}, ...pick(layers, "budget")) } as Required<RetryBudgetOptions>;
  const limitsLayers = [...pick(layers, "limits"), consul.limits].filter((l) => l !== undefined);
  return {
    budget,
    outlier: mergeToggle<OutlierOptions>([...pick(layers, "outlier"), consul.outlier]),
    breaker: mergeToggle<BreakerOptions>(pick(layers, "breaker")),
    limits: limitsLayers.length === 0 ? undefined : (Object.assign({}, ...limitsLayers) as LimitOptions),
  };
}

/** Consul's (Envoy's) retry conditions in proxyless's terms. */
const CONSUL_RETRY_ON: Readonly<Record<string, string>> = {
  "5xx": "5xx",
  "gateway-error": "gateway-error",
  reset: "reset",
  "connect-failure": "connect-failure",
  "refused-stream": "reset",
  "envoy-ratelimited": "429",
};

/** The policy of one call. @internal */
export function callPolicy(layers: ResilienceLayers, resolver: ResolverConfig | undefined, destination: RouteDestination | undefined): CallPolicy {
  let policy: { -readonly [K in keyof CallPolicy]: CallPolicy[K] } = { ...DEFAULT_POLICY };
  for (const layer of [layers.mesh, layers.upstream]) {
    if (layer === undefined) continue;
    if (layer.timeoutMs !== undefined) {
      policy.timeoutMs = layer.timeoutMs;
      policy.explicitTimeout = true;
    }
    if (layer.perTryTimeoutMs !== undefined) policy.perTryTimeoutMs = layer.perTryTimeoutMs;
    if (layer.hedging !== undefined) policy.hedging = layer.hedging;
    const r = layer.retries;
    if (r === false) policy.maxRetries = 0;
    else if (r !== undefined) {
      policy = {
        ...policy,
        ...(r.maxRetries === undefined ? {} : { maxRetries: r.maxRetries }),
        ...(r.retryOn === undefined ? {} : { retryOn: new Set(r.retryOn) }),
        ...(r.statusCodes === undefined ? {} : { statusCodes: new Set(r.statusCodes), retryOn: new Set([...(r.retryOn ?? policy.retryOn), "retriable-status-codes"]) }),
        ...(r.backoffBaseMs === undefined ? {} : { backoffBaseMs: r.backoffBaseMs }),
        ...(r.backoffMaxMs === undefined ? {} : { backoffMaxMs: r.backoffMaxMs }),
        ...(r.retryNonIdempotent === undefined ? {} : { retryNonIdempotent: r.retryNonIdempotent }),
        ...(r.maxBufferedBodyBytes === undefined ? {} : { maxBufferedBodyBytes: r.maxBufferedBodyBytes }),
      };
    }
  }
  if (resolver?.requestTimeoutMs !== undefined) {
    policy.timeoutMs = resolver.requestTimeoutMs;
    policy.explicitTimeout = true;
  }
  const d = destination;
  if (d !== undefined) {
    if (d.requestTimeoutMs !== undefined) {
      policy.timeoutMs = d.requestTimeoutMs;
      policy.explicitTimeout = true;
    }
    if (d.numRetries !== undefined) policy.maxRetries = d.numRetries;
    // A route that names retry conditions replaces the ones below it, as in Consul.
    if (d.retryOn !== undefined || d.retryOnStatusCodes !== undefined || d.retryOnConnectFailure !== undefined) {
      const on = new Set<string>();
      for (const c of d.retryOn ?? []) {
        const mapped = CONSUL_RETRY_ON[c];
        if (mapped !== undefined) on.add(mapped);
        if (c === "retriable-4xx") on.add("retriable-status-codes");
      }
      if (d.retryOnConnectFailure === true) on.add("connect-failure");
      const codes = new Set(d.retryOnStatusCodes ?? []);
      if ((d.retryOn ?? []).includes("retriable-4xx")) codes.add(409);
      if (codes.size > 0) on.add("retriable-status-codes");
      policy.retryOn = on;
      policy.statusCodes = codes;
    }
  }
  return policy;
}

import { invalidConfig } from "../core/errors.ts";
import { describe, expectOptions, optionalNumber } from "../core/validate.ts";

/** Which failures a retry follows. */
export type RetryCondition = "connect-failure" | "reset" | "5xx" | "gateway-error" | "retriable-status-codes" | "429";

/** Retries: what is retried, how often, how long apart. */
export interface RetryOptions {
  /** Retries after the first attempt. Default 2. */
  readonly maxRetries?: number;
  /** Conditions that are retried. Default `["connect-failure", "reset", "gateway-error", "429"]`. */
  readonly retryOn?: readonly RetryCondition[];
  /** Status codes that are retried (with `retriable-status-codes`, which is implied when given). */
  readonly statusCodes?: readonly number[];
  /** First backoff, in ms; doubled each retry, with full jitter. Default 25. */
  readonly backoffBaseMs?: number;
  /** Longest backoff, in ms. Default 250. */
  readonly backoffMaxMs?: number;
  /** Retry POST and PATCH without an `Idempotency-Key` too. Default false: only when provably unsent. */
  readonly retryNonIdempotent?: boolean;
  /** Largest request body kept to be sent again, in bytes. Default 65536. */
  readonly maxBufferedBodyBytes?: number;
}

/** The retry budget shared by retries and hedges of one upstream service. */
export interface RetryBudgetOptions {
  /** Retries allowed as a percent of requests (over the last second). Default 20. */
  readonly percent?: number;
  /** Retries allowed per second whatever the traffic. Default 10. */
  readonly minPerSecond?: number;
}

/** Passive outlier detection: endpoints that keep failing are taken out for a while. */
export interface OutlierOptions {
  /** Consecutive failures (5xx, gateway errors, connect failures) that eject an endpoint. Default 5; 0 turns it off. */
  readonly consecutiveFailures?: number;
  /** First ejection, in ms; the n-th ejection of an endpoint lasts n times as long (jittered +0-10%). Default 30000. */
  readonly baseEjectionMs?: number;
  /** Longest ejection, in ms. Default 300000. */
  readonly maxEjectionMs?: number;
  /** Most endpoints ejected at once, percent (at least one is always allowed). Default 10. */
  readonly maxEjectionPercent?: number;
  /** Chance, percent, that a consecutive-failure ejection is carried out (Envoy's `enforcing_consecutive_5xx`; Consul's `EnforcingConsecutive5xx`). Default 100. */
  readonly enforcingPercent?: number;
  /** Success-rate ejection (Envoy's statistical detector) as well, or `false` (the default) for none. */
  readonly successRate?: SuccessRateOptions | false;
}

/**
 * Success-rate ejection: every interval, among endpoints with enough calls, one whose success rate is
 * below the mean by more than `stdevFactor` standard deviations is ejected. Catches an endpoint that
 * fails often but not consecutively.
 */
export interface SuccessRateOptions {
  /** How often rates are judged (and counts start again), in ms. Default 10000. */
  readonly intervalMs?: number;
  /** Endpoints with enough calls needed before any is judged. Default 5. */
  readonly minimumHosts?: number;
  /** Calls an endpoint needs in the interval to be judged. Default 100. */
  readonly requestVolume?: number;
  /** How many standard deviations under the mean ejects. Default 1.9. */
  readonly stdevFactor?: number;
}

/**
 * Circuit breaker for one upstream service: how failures are counted, and when to probe again. It
 * counts calls (after their retries), not attempts, and leaves out failures of an endpoint that outlier
 * detection has ejected or is ejecting: it opens for a failing service, not for one bad instance.
 */
export interface BreakerOptions {
  /**
   * `sampling` (default: a failure rate over a time window, with a minimum volume of calls),
   * `count` (a failure rate over the last `size` calls) or `consecutive` (failed calls in a row).
   */
  readonly kind?: "consecutive" | "count" | "sampling";
  /** Failure rate 0.01-1 that opens it (`sampling`, `count`; default 0.5), or failed calls in a row (`consecutive`; default 5). */
  readonly threshold?: number;
  /** Calls counted (`count`; default 100). */
  readonly size?: number;
  /** Time window in ms (`sampling`; default 10000). */
  readonly durationMs?: number;
  /** Calls needed in the window before a rate counts (`sampling`: default 20; `count`: default 10). */
  readonly minimumCalls?: number;
  /** How long it stays open before one probe goes through, in ms. Default 10000. */
  readonly halfOpenAfterMs?: number;
}

/** Concurrency limits toward one upstream service. */
export interface LimitOptions {
  /** Requests in flight at once. Default unlimited. */
  readonly maxConcurrent?: number;
  /** Requests waiting for a slot beyond that. Default 0 (none wait) when `maxConcurrent` is set. */
  readonly maxPending?: number;
}

/** Hedging: a second attempt to another endpoint when the first is slow. Idempotent requests only. */
export interface HedgingOptions {
  /** Send the hedge after this many ms. */
  readonly delayMs?: number;
  /** Or after the service's observed latency at this percentile (50-99.9), once 20 samples are in. */
  readonly percentile?: number;
}

/**
 * How calls to an upstream behave when things go wrong. Every field is optional; see
 * `docs/resilience.md` for the defaults and why.
 */
export interface ResilienceOptions {
  /** Time allowed for a call until its response headers arrive, across attempts and backoffs, in ms. Default 15000; 0 turns it off. */
  readonly timeoutMs?: number;
  /** Time allowed for one attempt until its response headers, in ms. Default: no per-try limit. */
  readonly perTryTimeoutMs?: number;
  /** Retries, or `false` for none. */
  readonly retries?: RetryOptions | false;
  /** The retry budget. */
  readonly budget?: RetryBudgetOptions;
  /** Outlier detection, or `false` for none. */
  readonly outlier?: OutlierOptions | false;
  /** The circuit breaker, or `false` for none. */
  readonly breaker?: BreakerOptions | false;
  /** Concurrency limits. */
  readonly limits?: LimitOptions;
  /** Hedging (off unless given). */
  readonly hedging?: HedgingOptions;
}

/** The resolved policy of one call. @internal */
export interface CallPolicy {
  readonly timeoutMs: number;
  /** Whether a layer set the timeout (then it is told downstream); the built-in default is not. */
  readonly explicitTimeout: boolean;
  readonly perTryTimeoutMs: number;
  readonly maxRetries: number;
  readonly retryOn: ReadonlySet<string>;
  readonly statusCodes: ReadonlySet<number>;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly retryNonIdempotent: boolean;
  readonly maxBufferedBodyBytes: number;
  readonly hedging: HedgingOptions | undefined;
}

/** The built-in defaults (docs/resilience.md says why). @internal */
export const DEFAULT_POLICY: CallPolicy = Object.freeze({
  timeoutMs: 15_000,
  explicitTimeout: false,
  perTryTimeoutMs: 0,
  maxRetries: 2,
  retryOn: new Set(["connect-failure", "reset", "gateway-error", "429"]),
  statusCodes: new Set<number>(),
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  retryNonIdempotent: false,
  maxBufferedBodyBytes: 65_536,
  hedging: undefined,
});

const RETRY_CONDITIONS = ["connect-failure", "reset", "5xx", "gateway-error", "retriable-status-codes", "429"];

/**
 * Validates resilience options.
 *
 * @param raw - the options
 * @param field - their path, for errors (`resilience`, `upstreams.orders`)
 * @throws MeshError `ERR_INVALID_CONFIG` naming the field at fault
 * @internal
 */
export function validateResilience(raw: unknown, field: string): ResilienceOptions {
  const o = expectOptions(raw, field, ["timeoutMs", "perTryTimeoutMs", "retries", "budget", "outlier", "breaker", "limits", "hedging"]);
  optionalNumber(o.timeoutMs, `${field}.timeoutMs`, { min: 0 });
  optionalNumber(o.perTryTimeoutMs, `${field}.perTryTimeoutMs`, { min: 0 });
  if (o.retries !== undefined && o.retries !== false) {
    const r = expectOptions(o.retries, `${field}.retries`, ["maxRetries", "retryOn", "statusCodes", "backoffBaseMs", "backoffMaxMs", "retryNonIdempotent", "maxBufferedBodyBytes"]);
    optionalNumber(r.maxRetries, `${field}.retries.maxRetries`, { min: 0, max: 10, integer: true });
    if (r.retryOn !== undefined) {
      if (!Array.isArray(r.retryOn)) throw invalidConfig(`${field}.retries.retryOn`, `expected an array of ${RETRY_CONDITIONS.join(", ")}`);
      (r.retryOn as unknown[]).forEach((c, i) => {
        if (typeof c !== "string" || !RETRY_CONDITIONS.includes(c)) throw invalidConfig(`${field}.retries.retryOn[${i}]`, `expected one of ${RETRY_CONDITIONS.join(", ")}, got ${describe(c)}`);
      });
    }
    if (r.statusCodes !== undefined) {
      if (!Array.isArray(r.statusCodes)) throw invalidConfig(`${field}.retries.statusCodes`, "expected an array of status codes");
      (r.statusCodes as unknown[]).forEach((c, i) => optionalNumber(c, `${field}.retries.statusCodes[${i}]`, { min: 100, max: 599, integer: true }));
    }
    optionalNumber(r.backoffBaseMs, `${field}.retries.backoffBaseMs`, { min: 0 });
    optionalNumber(r.backoffMaxMs, `${field}.retries.backoffMaxMs`, { min: 0 });
    if (r.retryNonIdempotent !== undefined && typeof r.retryNonIdempotent !== "boolean") throw invalidConfig(`${field}.retries.retryNonIdempotent`, "expected true or false");
    optionalNumber(r.maxBufferedBodyBytes, `${field}.retries.maxBufferedBodyBytes`, { min: 0, integer: true });
  }
  if (o.budget !== undefined) {
    const b = expectOptions(o.budget, `${field}.budget`, ["percent", "minPerSecond"]);
    optionalNumber(b.percent, `${field}.budget.percent`, { min: 0, max: 1000 });
    optionalNumber(b.minPerSecond, `${field}.budget.minPerSecond`, { min: 0 });
  }
  if (o.outlier !== undefined && o.outlier !== false) {
    const x = expectOptions(o.outlier, `${field}.outlier`, ["consecutiveFailures", "baseEjectionMs", "maxEjectionMs", "maxEjectionPercent", "enforcingPercent", "successRate"]);
    optionalNumber(x.consecutiveFailures, `${field}.outlier.consecutiveFailures`, { min: 0, integer: true });
    optionalNumber(x.baseEjectionMs, `${field}.outlier.baseEjectionMs`, { min: 1 });
    optionalNumber(x.maxEjectionMs, `${field}.outlier.maxEjectionMs`, { min: 1 });
    optionalNumber(x.maxEjectionPercent, `${field}.outlier.maxEjectionPercent`, { min: 0, max: 100 });
    optionalNumber(x.enforcingPercent, `${field}.outlier.enforcingPercent`, { min: 0, max: 100 });
    if (x.successRate !== undefined && x.successRate !== false) {
      const r = expectOptions(x.successRate, `${field}.outlier.successRate`, ["intervalMs", "minimumHosts", "requestVolume", "stdevFactor"]);
      optionalNumber(r.intervalMs, `${field}.outlier.successRate.intervalMs`, { min: 100 });
      optionalNumber(r.minimumHosts, `${field}.outlier.successRate.minimumHosts`, { min: 1, integer: true });
      optionalNumber(r.requestVolume, `${field}.outlier.successRate.requestVolume`, { min: 1, integer: true });
      optionalNumber(r.stdevFactor, `${field}.outlier.successRate.stdevFactor`, { min: 0 });
    }
  }
  if (o.breaker !== undefined && o.breaker !== false) {
    const k = expectOptions(o.breaker, `${field}.breaker`, ["kind", "threshold", "size", "durationMs", "minimumCalls", "halfOpenAfterMs"]);
    if (k.kind !== undefined && !["consecutive", "count", "sampling"].includes(k.kind as string)) throw invalidConfig(`${field}.breaker.kind`, `expected consecutive, count or sampling, got ${describe(k.kind)}`);
    if (k.kind === "consecutive") optionalNumber(k.threshold, `${field}.breaker.threshold`, { min: 1, integer: true });
    else if (typeof k.threshold === "number" && k.threshold > 1 && k.kind === undefined) {
      throw invalidConfig(`${field}.breaker.threshold`, `the default breaker ('sampling') takes a failure rate from 0.01 to 1, got ${k.threshold}; for ${k.threshold} consecutive failures give kind: "consecutive"`);
    } else optionalNumber(k.threshold, `${field}.breaker.threshold`, { min: 0.01, max: 1 });
    optionalNumber(k.size, `${field}.breaker.size`, { min: 1, integer: true });
    optionalNumber(k.durationMs, `${field}.breaker.durationMs`, { min: 1 });
    optionalNumber(k.minimumCalls, `${field}.breaker.minimumCalls`, { min: 1, integer: true });
    optionalNumber(k.halfOpenAfterMs, `${field}.breaker.halfOpenAfterMs`, { min: 1 });
  }
  if (o.limits !== undefined) {
    const l = expectOptions(o.limits, `${field}.limits`, ["maxConcurrent", "maxPending"]);
    optionalNumber(l.maxConcurrent, `${field}.limits.maxConcurrent`, { min: 1, integer: true });
    optionalNumber(l.maxPending, `${field}.limits.maxPending`, { min: 0, integer: true });
  }
  if (o.hedging !== undefined) {
    const h = expectOptions(o.hedging, `${field}.hedging`, ["delayMs", "percentile"]);
    optionalNumber(h.delayMs, `${field}.hedging.delayMs`, { min: 0 });
    optionalNumber(h.percentile, `${field}.hedging.percentile`, { min: 50, max: 99.9 });
    if ((h.delayMs === undefined) === (h.percentile === undefined)) throw invalidConfig(`${field}.hedging`, "give delayMs or percentile");
  }
  return raw as ResilienceOptions;
}

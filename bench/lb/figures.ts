import { quantileSorted, round } from "../lib/stats.ts";
import type { Scenario } from "./scenarios.ts";
import type { RunResult } from "./simulate.ts";

/** The reported figures of one policy in one scenario. */
export interface PolicyFigures {
  readonly policy: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  /** Share of requests sent to the slow backend, 0 to 1; undefined when the scenario has none. */
  readonly slowShare: number | undefined;
  /** Share of requests sent to each backend. */
  readonly shares: readonly number[];
  /** Most requests in flight at each backend at any one time. */
  readonly maxPending: readonly number[];
}

/**
 * Latency quantiles and traffic shares of one run.
 *
 * @param policy - the policy's name
 * @param scenario - the scenario it ran in
 * @param result - the run
 */
export function computeFigures(policy: string, scenario: Scenario, result: RunResult): PolicyFigures {
  const sorted = result.sortedLatencies;
  let sum = 0;
  for (const latency of sorted) sum += latency;
  const total = sorted.length;
  const shares = Array.from(result.sent, (count) => count / total);
  return {
    policy,
    p50Ms: quantileSorted(sorted, 0.5),
    p99Ms: quantileSorted(sorted, 0.99),
    p999Ms: quantileSorted(sorted, 0.999),
    meanMs: sum / total,
    maxMs: sorted[total - 1]!,
    slowShare: scenario.slowBackend === undefined ? undefined : shares[scenario.slowBackend]!,
    shares,
    maxPending: Array.from(result.maxPending),
  };
}

/**
 * The JSON form of a policy's figures, rounded.
 *
 * @param figures - the figures
 * @param oracle - the oracle's figures in the same scenario
 */
export function figuresJson(figures: PolicyFigures, oracle: PolicyFigures): Record<string, unknown> {
  return {
    p50_ms: round(figures.p50Ms, 3),
    p99_ms: round(figures.p99Ms, 3),
    p999_ms: round(figures.p999Ms, 3),
    mean_ms: round(figures.meanMs, 3),
    max_ms: round(figures.maxMs, 3),
    p99_over_oracle: round(figures.p99Ms / oracle.p99Ms, 4),
    slow_share: figures.slowShare === undefined ? null : round(figures.slowShare, 5),
    shares: figures.shares.map((s) => round(s, 5)),
    max_pending: figures.maxPending,
  };
}

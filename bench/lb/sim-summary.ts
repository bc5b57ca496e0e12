import type { TargetCheck } from "../lib/report.ts";
import { round } from "../lib/stats.ts";
import { QUEUE_LENGTH_ORACLE } from "./oracle.ts";
import type { ScenarioResult } from "./run-scenario.ts";

/**
 * The flat summary: `<scenario>_<policy>_p99_over_oracle` for every policy and scenario; then, against
 * the weaker oracle, `<scenario>_<policy>_p99_over_oracle_queue_len` for the built-in policies; then
 * `<scenario>_<policy>_slow_share` (a fraction) where a scenario has a slow backend, oracles included.
 *
 * @param results - every scenario's results
 */
export function buildSummary(results: readonly ScenarioResult[]): Record<string, number> {
  const summary: Record<string, number> = {};
  for (const { scenario, policies, oracle } of results) {
    for (const figures of [...policies, oracle]) {
      summary[`${scenario.id}_${figures.policy}_p99_over_oracle`] = round(figures.p99Ms / oracle.p99Ms, 4);
    }
  }
  for (const { scenario, policies } of results) {
    const reference = policies.find((f) => f.policy === QUEUE_LENGTH_ORACLE);
    if (reference === undefined) continue;
    for (const figures of policies) {
      if (figures === reference) continue;
      summary[`${scenario.id}_${figures.policy}_p99_over_${QUEUE_LENGTH_ORACLE}`] = round(figures.p99Ms / reference.p99Ms, 4);
    }
  }
  for (const { scenario, policies, oracle } of results) {
    for (const figures of [...policies, oracle]) {
      if (figures.slowShare !== undefined) summary[`${scenario.id}_${figures.policy}_slow_share`] = round(figures.slowShare, 5);
    }
  }
  return summary;
}

function value(summary: Readonly<Record<string, number>>, key: string): number {
  const v = summary[key];
  if (v === undefined) throw new Error(`summary has no ${key}`);
  return v;
}

/**
 * The targets: peak_ewma p99 ≤ 1.5× the oracle's in A; ≤ 1.2× in B with ≤ 1% of requests to the slow
 * backend; least_request p99 ≤ 5× the oracle's in A.
 *
 * @param summary - the flat summary
 */
export function targetChecks(summary: Readonly<Record<string, number>>): TargetCheck[] {
  const check = (key: string, limit: number, target: string): TargetCheck => {
    const v = value(summary, key);
    return { name: key, target, value: v, met: v <= limit };
  };
  return [
    check("A_peak_ewma_p99_over_oracle", 1.5, "<= 1.5"),
    check("B_peak_ewma_p99_over_oracle", 1.2, "<= 1.2"),
    check("B_peak_ewma_slow_share", 0.01, "<= 0.01"),
    check("A_least_request_p99_over_oracle", 5, "<= 5"),
  ];
}

/**
 * The A targets measured against the weaker queue-length oracle instead, for reference (not checked).
 *
 * @param summary - the flat summary
 */
export function referenceLines(summary: Readonly<Record<string, number>>): string {
  const keys = [
    "A_peak_ewma_c3_p99_over_oracle",
    "B_peak_ewma_c3_p99_over_oracle",
    ...["A_peak_ewma", "A_least_request"].map((prefix) => `${prefix}_p99_over_${QUEUE_LENGTH_ORACLE}`),
  ];
  return keys.map((key) => `info     ${key} = ${value(summary, key).toFixed(3)}`).join("\n");
}

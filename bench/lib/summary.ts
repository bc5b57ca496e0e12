import type { RoundSample } from "./run-round.ts";
import { median } from "./stats.ts";
import type { VariantKey } from "./variants.ts";

/** Every round of one variant. */
export interface VariantRounds {
  readonly key: VariantKey;
  readonly label: string;
  readonly rounds: readonly RoundSample[];
}

/** One variant's figures: medians across rounds, and ratios to the baseline paired round by round. */
export interface VariantSummary {
  readonly key: VariantKey;
  readonly label: string;
  readonly rps: number;
  readonly cpuUsPerReq: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Median over rounds of (this variant's req/s ÷ the baseline's req/s in the same round). */
  readonly throughputRatio: number;
  readonly throughputRatioMin: number;
  readonly throughputRatioMax: number;
  /** Median over rounds of (this variant's CPU µs/req − the baseline's in the same round). */
  readonly addedCpuUs: number;
}

/**
 * Summarises every variant against a baseline. Ratios are paired per round, so drift in machine speed
 * between rounds cancels out.
 *
 * @param all - every variant, each with the same number of rounds
 * @param baseline - the variant ratios are taken against
 */
export function summarize(all: readonly VariantRounds[], baseline: VariantKey): VariantSummary[] {
  const base = all.find((v) => v.key === baseline);
  if (base === undefined) throw new Error(`no baseline variant ${baseline}`);
  return all.map((v) => {
    const ratios = v.rounds.map((r, i) => r.rps / base.rounds[i]!.rps);
    const added = v.rounds.map((r, i) => r.cpuUsPerReq - base.rounds[i]!.cpuUsPerReq);
    return {
      key: v.key,
      label: v.label,
      rps: median(v.rounds.map((r) => r.rps)),
      cpuUsPerReq: median(v.rounds.map((r) => r.cpuUsPerReq)),
      p50Ms: median(v.rounds.map((r) => r.p50Ms)),
      p99Ms: median(v.rounds.map((r) => r.p99Ms)),
      throughputRatio: median(ratios),
      throughputRatioMin: Math.min(...ratios),
      throughputRatioMax: Math.max(...ratios),
      addedCpuUs: median(added),
    };
  });
}

/**
 * Compares two variants directly (e.g. mesh `fetch` against plain `undici.fetch`), paired per round.
 *
 * @param a - the variant measured
 * @param b - the one it is compared with
 */
export function compare(a: VariantRounds, b: VariantRounds): { readonly throughputRatio: number; readonly addedCpuUs: number } {
  return {
    throughputRatio: median(a.rounds.map((r, i) => r.rps / b.rounds[i]!.rps)),
    addedCpuUs: median(a.rounds.map((r, i) => r.cpuUsPerReq - b.rounds[i]!.cpuUsPerReq)),
  };
}

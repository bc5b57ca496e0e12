import { median } from "../lib/stats.ts";
import type { PickCase } from "./cases.ts";
import type { CaseResult } from "./protocol.ts";

/** One case's figures over every pass. */
export interface CaseSummary {
  readonly spec: PickCase;
  /** The picker class (the code path measured); several if the passes disagreed. */
  readonly picker: string;
  /** Median over every timed batch. */
  readonly picksPerSec: number;
  /** 1e9 / picksPerSec. */
  readonly nsPerPick: number;
  /** The slowest and fastest batch. */
  readonly minPicksPerSec: number;
  readonly maxPicksPerSec: number;
  /** Every batch's rate, pass by pass. */
  readonly batchPicksPerSec: readonly number[];
  /** Median of each pass's first, cold `createPicker`, in ms. */
  readonly buildMsCold: number;
  /** Median of the later, warm `createPicker` calls (the cold ones when there are none), in ms. */
  readonly buildMs: number;
  /** Mean `pending` of the picked targets (about 10 when picks ignore load; lower when they avoid it). */
  readonly meanPickedPending: number;
  /** Garbage collections during the timed batches, all passes. */
  readonly gcs: number;
}

/**
 * Summarises one case from the results of every pass.
 *
 * @param spec - the case
 * @param results - one result per pass, at least one
 * @param batchSize - picks per timed batch
 */
export function summarizeCase(spec: PickCase, results: readonly CaseResult[], batchSize: number): CaseSummary {
  const rates = results.flatMap((r) => r.batchMs.map((ms) => (batchSize * 1000) / ms));
  const picksPerSec = median(rates);
  const cold = results.map((r) => r.buildMs[0] ?? 0);
  const warm = results.flatMap((r) => r.buildMs.slice(1));
  const picks = rates.length * batchSize;
  return {
    spec,
    picker: [...new Set(results.map((r) => r.picker))].join("/"),
    picksPerSec,
    nsPerPick: 1e9 / picksPerSec,
    minPicksPerSec: Math.min(...rates),
    maxPicksPerSec: Math.max(...rates),
    batchPicksPerSec: rates,
    buildMsCold: median(cold),
    buildMs: median(warm.length > 0 ? warm : cold),
    meanPickedPending: results.reduce((sum, r) => sum + r.pendingSum, 0) / picks,
    gcs: results.reduce((sum, r) => sum + r.gcs, 0),
  };
}

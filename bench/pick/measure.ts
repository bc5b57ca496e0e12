import type { PickContext, PickTarget, Picker } from "../../src/balancer/picker.ts";

/**
 * The hot loop: `picks` picks, cycling through `contexts`, summing `pending` of each picked target so
 * V8 cannot drop the work. Runs in a fresh worker per case, so `picker.pick` sees one class only and is
 * inlined as it would be in a process that uses one policy.
 *
 * @param picker - the picker under test
 * @param contexts - the contexts to cycle through; length a power of two
 * @param picks - how many picks
 */
export function runBatch(picker: Picker<PickTarget>, contexts: readonly PickContext[], picks: number): number {
  const mask = contexts.length - 1;
  let sum = 0;
  for (let i = 0; i < picks; i++) sum += picker.pick(contexts[i & mask]!).load.pending;
  return sum;
}

/**
 * Picks in batches of `batchSize / 10` until `ms` have passed, at least three batches.
 *
 * @param picker - the picker under test
 * @param contexts - the contexts to cycle through
 * @param batchSize - picks per timed batch
 * @param ms - how long to warm up
 */
export function warmUp(picker: Picker<PickTarget>, contexts: readonly PickContext[], batchSize: number, ms: number): number {
  const start = performance.now();
  let sum = 0;
  for (let i = 0; i < 3 || performance.now() - start < ms; i++) sum += runBatch(picker, contexts, Math.max(1, Math.floor(batchSize / 10)));
  return sum;
}

/** Timed batches: their durations and the sum that consumed the picks. */
export interface Batches {
  /** Each batch's duration, in ms. */
  readonly batchMs: number[];
  /** The sum of `pending` over every picked target. */
  readonly pendingSum: number;
  /** `performance.now()` before the first batch and after the last. */
  readonly start: number;
  readonly end: number;
}

/**
 * Times `batches` batches of `batchSize` picks each.
 *
 * @param picker - the picker under test
 * @param contexts - the contexts to cycle through
 * @param batchSize - picks per batch
 * @param batches - how many batches
 */
export function timeBatches(picker: Picker<PickTarget>, contexts: readonly PickContext[], batchSize: number, batches: number): Batches {
  const batchMs: number[] = [];
  let pendingSum = 0;
  const start = performance.now();
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    pendingSum += runBatch(picker, contexts, batchSize);
    batchMs.push(performance.now() - t0);
  }
  return { batchMs, pendingSum, start, end: performance.now() };
}

import { envInt } from "../lib/env.ts";
/** What a `bench:pick` run does; every number can be overridden through the environment. */
export interface PickSettings {
  /** Passes over every case, each case in a fresh worker per pass. */
  readonly passes: number;
  /** Timed batches per case and pass. */
  readonly batches: number;
  /** Picks per timed batch. */
  readonly batchSize: number;
  /** Untimed picks per case and pass before the batches, in ms. */
  readonly warmupMs: number;
  /** `createPicker` calls per case and pass, the first one cold. */
  readonly builds: number;
  /** `BENCH_PICK_ONLY`: the cases to run, empty for all. */
  readonly only: string;
}

/**
 * Reads the settings: `BENCH_PICK_PASSES` (3), `BENCH_PICK_BATCHES` (5), `BENCH_PICK_BATCH_SIZE`
 * (1,000,000), `BENCH_PICK_WARMUP_MS` (150), `BENCH_PICK_BUILDS` (3) and `BENCH_PICK_ONLY` (all).
 */
export function readPickSettings(): PickSettings {
  return {
    passes: envInt("BENCH_PICK_PASSES", 3, 1),
    batches: envInt("BENCH_PICK_BATCHES", 5, 1),
    batchSize: envInt("BENCH_PICK_BATCH_SIZE", 1_000_000, 1),
    warmupMs: envInt("BENCH_PICK_WARMUP_MS", 150, 0),
    builds: envInt("BENCH_PICK_BUILDS", 3, 1),
    only: process.env.BENCH_PICK_ONLY ?? "",
  };
}

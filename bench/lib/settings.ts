import { createRequire } from "node:module";
import os from "node:os";
import type { PoolOptions } from "proxyless";
import { envInt } from "./env.ts";

/** What a bench run does; every number can be overridden through the environment. */
export interface BenchSettings {
  readonly concurrency: number;
  readonly rounds: number;
  /** Alternating raw / `client.request` pairs measured after the rounds, nothing else in between. */
  readonly pairs: number;
  readonly roundMs: number;
  readonly warmupMs: number;
  /** Idle time between two measured runs, so one variant's leftovers settle before the next starts. */
  readonly pauseMs: number;
  /** Unmeasured load before each measured run, for V8 to re-optimize after a switch of variant. */
  readonly leadInMs: number;
  readonly path: string;
  readonly pool: PoolOptions;
}

/**
 * Reads the settings: `BENCH_CONCURRENCY` (50), `BENCH_ROUNDS` (12: one balanced schedule for 4
 * variants), `BENCH_PAIRS` (16), `BENCH_ROUND_MS` (1000), `BENCH_LEAD_IN_MS` (250), `BENCH_WARMUP_MS` (1000).
 */
export function readSettings(): BenchSettings {
  const concurrency = envInt("BENCH_CONCURRENCY", 50, 1);
  return {
    concurrency,
    rounds: envInt("BENCH_ROUNDS", 12, 1),
    pairs: envInt("BENCH_PAIRS", 16, 0),
    roundMs: envInt("BENCH_ROUND_MS", 1000, 10),
    warmupMs: envInt("BENCH_WARMUP_MS", 1000, 0),
    pauseMs: 100,
    leadInMs: envInt("BENCH_LEAD_IN_MS", 250, 0),
    path: "/bench",
    // One connection per loop, kept alive across rounds (a variant is idle while the others run).
    pool: { connections: concurrency, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 },
  };
}

/** The machine and runtime the bench ran on. */
export function environment(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const undici = require("undici/package.json") as { version: string };
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    undici: undici.version,
    platform: process.platform,
    arch: process.arch,
    cpu_count: cpus.length,
    available_parallelism: os.availableParallelism(),
    cpu_model: cpus[0]?.model ?? "unknown",
  };
}

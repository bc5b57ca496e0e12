import { setTimeout as sleep } from "node:timers/promises";
import { collectYoungGarbage } from "./gc.ts";
import { LatencyRecorder } from "./latency-recorder.ts";
import { runRound, type RoundSample } from "./run-round.ts";
import type { BenchSettings } from "./settings.ts";
import { median, round } from "./stats.ts";

/** One variant's medians across rounds, as the JSON reports write them. */
export interface PairedRow {
  readonly rps: number;
  readonly cpu_us_per_req: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
}

/** What {@link runPairedRounds} measured. */
export interface PairedResult {
  readonly raw: PairedRow;
  readonly mesh: PairedRow;
  /** mesh ÷ raw req/s, per round. */
  readonly ratios: readonly number[];
  /** Their median, to 3 decimals. */
  readonly ratio: number;
}

function row(samples: readonly RoundSample[]): PairedRow {
  return {
    rps: round(median(samples.map((x) => x.rps)), 0),
    cpu_us_per_req: round(median(samples.map((x) => x.cpuUsPerReq)), 2),
    p50_ms: round(median(samples.map((x) => x.p50Ms)), 3),
    p99_ms: round(median(samples.map((x) => x.p99Ms)), 3),
  };
}

/**
 * Raw against mesh in alternating pairs (raw first in odd rounds): a warm-up of each, then per round and
 * variant a scavenge ({@link collectYoungGarbage}) and a pause of `settings.pauseMs`, so one variant's
 * garbage is not collected on the other's time, an unmeasured lead-in and the measured run. Prints a line
 * per round. Needs `--expose-gc`.
 *
 * @param variants - each sends one request or call and waits for its whole answer
 * @param settings - concurrency and durations
 * @param rounds - how many pairs
 * @param unit - what a line calls one send (`req/s`, `calls/s`)
 */
export async function runPairedRounds(
  variants: { readonly raw: () => Promise<void>; readonly mesh: () => Promise<void> },
  settings: BenchSettings,
  rounds: number,
  unit: string,
): Promise<PairedResult> {
  const recorder = new LatencyRecorder();
  const samples = { raw: [] as RoundSample[], mesh: [] as RoundSample[] };
  for (const name of ["raw", "mesh"] as const) await runRound(variants[name], settings.concurrency, settings.warmupMs, recorder);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (["raw", "mesh"] as const) : (["mesh", "raw"] as const);
    const got: Partial<Record<"raw" | "mesh", RoundSample>> = {};
    for (const name of order) {
      collectYoungGarbage();
      await sleep(settings.pauseMs);
      await runRound(variants[name], settings.concurrency, settings.leadInMs, recorder);
      const sample = await runRound(variants[name], settings.concurrency, settings.roundMs, recorder);
      got[name] = sample;
      samples[name].push(sample);
    }
    ratios.push(got.mesh!.rps / got.raw!.rps);
    console.log(`round ${r + 1}/${rounds}: raw ${got.raw!.rps.toFixed(0)} ${unit} | mesh ${got.mesh!.rps.toFixed(0)} ${unit} | x${ratios.at(-1)!.toFixed(3)}`);
  }
  return { raw: row(samples.raw), mesh: row(samples.mesh), ratios, ratio: round(median(ratios), 3) };
}

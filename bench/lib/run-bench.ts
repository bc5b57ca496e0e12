import { setTimeout as sleep } from "node:timers/promises";
import { collectGarbage } from "./gc.ts";
import { LatencyRecorder } from "./latency-recorder.ts";
import { balancedSchedule } from "./order.ts";
import { runRound, type RoundSample } from "./run-round.ts";
import type { BenchSettings } from "./settings.ts";
import type { VariantRounds } from "./summary.ts";
import { createVariants, type Variant } from "./variants.ts";

function ordered<T>(items: readonly T[], order: readonly number[]): T[] {
  return order.map((i) => items[i]!);
}

function short(s: RoundSample): string {
  return `${s.rps.toFixed(0)} req/s ${s.cpuUsPerReq.toFixed(1)}us`;
}

/**
 * Warms every variant up, then runs the interleaved rounds against the backend, printing one line per
 * round. The order follows {@link balancedSchedule}; each run starts with a full GC, a short pause and
 * an unmeasured lead-in. Closes every pool before returning.
 *
 * @param origin - the backend, `http://127.0.0.1:<port>`
 * @param settings - rounds, durations, concurrency, pool settings
 * @returns every round of every variant, in the variants' fixed order (raw `Pool.request` first)
 */
export async function runBench(origin: string, settings: BenchSettings): Promise<VariantRounds[]> {
  const set = createVariants(origin, settings.path, settings.pool);
  const recorder = new LatencyRecorder();
  const samples = new Map<Variant, RoundSample[]>(set.variants.map((v) => [v, []]));
  const schedule = balancedSchedule(set.variants.length);
  const measure = async (v: Variant, ms: number): Promise<RoundSample> => {
    collectGarbage();
    await sleep(settings.pauseMs);
    // Unmeasured lead-in: lets V8 re-optimize what the previous variant deoptimized.
    if (settings.leadInMs > 0) await runRound(v.send, settings.concurrency, settings.leadInMs, recorder);
    return runRound(v.send, settings.concurrency, ms, recorder);
  };
  try {
    console.log(`warm-up: ${settings.warmupMs} ms per variant, concurrency ${settings.concurrency}`);
    for (const v of ordered(set.variants, schedule.warmup)) await measure(v, settings.warmupMs);
    for (let r = 0; r < settings.rounds; r++) {
      const parts: string[] = [];
      for (const v of ordered(set.variants, schedule.rounds[r % schedule.rounds.length]!)) {
        const s = await measure(v, settings.roundMs);
        samples.get(v)!.push(s);
        parts.push(`${v.key} ${short(s)}`);
      }
      console.log(`round ${r + 1}/${settings.rounds}: ${parts.join(" | ")}`);
    }
  } finally {
    await set.close();
  }
  return set.variants.map((v) => ({ key: v.key, label: v.label, rounds: samples.get(v)! }));
}

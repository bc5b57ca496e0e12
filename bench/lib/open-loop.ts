import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { LatencyRecorder } from "./latency-recorder.ts";
import type { RoundSample } from "./run-round.ts";

/**
 * Sends at a fixed rate for `durationMs`, whatever the answers do (an open loop: a slow variant does
 * not slow the arrivals down), and measures client CPU per request and latency. Each latency counts
 * from when its request was due, so a send that starts late is charged for the wait.
 *
 * @param send - sends one request and consumes its body
 * @param ratePerSecond - arrivals per second
 * @param durationMs - how long requests keep arriving; those in flight at the end finish and count
 * @param recorder - a reused latency buffer
 */
export async function runOpenLoop(send: () => Promise<void>, ratePerSecond: number, durationMs: number, recorder: LatencyRecorder): Promise<RoundSample> {
  recorder.reset();
  const interval = 1000 / ratePerSecond;
  const inFlight = new Set<Promise<void>>();
  let failures = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  for (;;) {
    const now = performance.now();
    if (now - start >= durationMs) break;
    const due = Math.floor((now - start) / interval);
    for (; next <= due; next++) {
      const scheduled = start + next * interval;
      const p: Promise<void> = send().then(
        () => {
          recorder.add(performance.now() - scheduled);
          inFlight.delete(p);
        },
        () => {
          failures++;
          inFlight.delete(p);
        },
      );
      inFlight.add(p);
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  if (failures > 0) throw new Error(`${String(failures)} requests failed in the open loop`);
  const requests = recorder.count;
  const { p50, p99 } = recorder.percentiles();
  return { requests, elapsedMs, rps: (requests * 1000) / elapsedMs, cpuUsPerReq: (cpu.user + cpu.system) / requests, p50Ms: p50, p99Ms: p99 };
}

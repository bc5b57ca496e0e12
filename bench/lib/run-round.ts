import { performance } from "node:perf_hooks";
import type { LatencyRecorder } from "./latency-recorder.ts";

/** What one variant did in one round. */
export interface RoundSample {
  readonly requests: number;
  readonly elapsedMs: number;
  readonly rps: number;
  /** Client-process CPU (user + system) per request, in µs. */
  readonly cpuUsPerReq: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * Runs `concurrency` request loops of `send` until `durationMs` has passed, and measures throughput,
 * client CPU per request and latency. A loop starts no request after the deadline; requests in flight
 * finish and count.
 *
 * @param send - sends one request and consumes its body
 * @param concurrency - the number of loops
 * @param durationMs - how long loops keep starting requests
 * @param recorder - a reused latency buffer
 */
export async function runRound(
  send: () => Promise<void>,
  concurrency: number,
  durationMs: number,
  recorder: LatencyRecorder,
): Promise<RoundSample> {
  recorder.reset();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + durationMs;
  const loop = async (): Promise<void> => {
    for (let t = performance.now(); t < deadline; ) {
      await send();
      const end = performance.now();
      recorder.add(end - t);
      t = end;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  const requests = recorder.count;
  const { p50, p99 } = recorder.percentiles();
  return {
    requests,
    elapsedMs,
    rps: (requests * 1000) / elapsedMs,
    cpuUsPerReq: (cpu.user + cpu.system) / requests,
    p50Ms: p50,
    p99Ms: p99,
  };
}

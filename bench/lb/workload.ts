import { createSeededRandom } from "proxyless/testing";

/** The requests of one run, drawn once and replayed to every policy. */
export interface Workload {
  /** Arrival time of each request, in ms, ascending (Poisson process). */
  readonly arrivals: Float64Array;
  /** Each request's size as a unit-mean exponential draw; its service time is this × the backend's mean. */
  readonly work: Float64Array;
  /** A random 32-bit affinity key per request, for the hash-based policies. */
  readonly hashes: Uint32Array;
}

/** The independent random streams of a run. */
export const STREAM = { arrivals: 1, work: 2, hashes: 3, picker: 4 } as const;

/**
 * A seed for one random stream, derived from the run's seed so streams do not overlap.
 *
 * @param seed - the run's seed
 * @param stream - the stream number, from {@link STREAM}
 */
export function streamSeed(seed: number, stream: number): number {
  return (seed ^ Math.imul(stream, 0x9e3779b9)) >>> 0;
}

/**
 * Draws a workload: Poisson arrivals at `ratePerMs`, unit exponential sizes and random hash keys, each
 * from its own seeded stream, so every policy sees the same sequence.
 *
 * @param requests - how many requests
 * @param ratePerMs - arrival rate, requests per ms
 * @param seed - the run's seed
 */
export function createWorkload(requests: number, ratePerMs: number, seed: number): Workload {
  const arrivalRandom = createSeededRandom(streamSeed(seed, STREAM.arrivals));
  const workRandom = createSeededRandom(streamSeed(seed, STREAM.work));
  const hashRandom = createSeededRandom(streamSeed(seed, STREAM.hashes));
  const arrivals = new Float64Array(requests);
  const work = new Float64Array(requests);
  const hashes = new Uint32Array(requests);
  let t = 0;
  for (let i = 0; i < requests; i++) {
    // 1 - u is in (0, 1], so the logarithm is finite.
    t += -Math.log(1 - arrivalRandom.next()) / ratePerMs;
    arrivals[i] = t;
    work[i] = -Math.log(1 - workRandom.next());
    hashes[i] = Math.floor(hashRandom.next() * 0x100000000);
  }
  return { arrivals, work, hashes };
}

import type { Random } from "proxyless";
import type { Chooser, SimState } from "./sim-state.ts";

/** The reference oracle's name in reports: least expected completion time from remaining work. */
export const ORACLE = "oracle";
/** A weaker oracle, for reference: from the number of requests at each backend instead of their work. */
export const QUEUE_LENGTH_ORACLE = "oracle_queue_len";

/** The backend with the least cost; ties go to a random one of the best (reservoir sampling). */
function argminRandomTies(n: number, cost: (b: number) => number, random: Random): number {
  let best = 0;
  let bestCost = Infinity;
  let ties = 0;
  for (let b = 0; b < n; b++) {
    const c = cost(b);
    if (c < bestCost) {
      best = b;
      bestCost = c;
      ties = 1;
    } else if (c === bestCost) {
      // Each of the k tied backends ends up chosen with probability 1/k.
      ties++;
      if (random.next() * ties < 1) best = b;
    }
  }
  return best;
}

/**
 * The reference oracle, with true knowledge: the backend with the least expected completion time. With
 * FIFO queues that is its remaining work (the service time left of everything it has accepted) plus its
 * mean service time; with unlimited concurrency, its mean service time. Ties go to a random one of the
 * best, drawn from the simulation's seeded random source.
 *
 * @param sim - the simulation state
 */
export function oracleChooser(sim: SimState): Chooser {
  const { clock, busyUntil, meanServiceMs, random } = sim;
  const queued = sim.model === "fifo_queue";
  const n = meanServiceMs.length;
  return {
    choose(): number {
      const now = clock.now();
      return argminRandomTies(n, (b) => (queued ? Math.max(0, busyUntil[b]! - now) : 0) + meanServiceMs[b]!, random);
    },
  };
}

/**
 * A weaker oracle, for reference: with FIFO queues, the least (requests queued or in service + 1) × the
 * backend's mean service time; with unlimited concurrency, the mean service time (the same as
 * {@link oracleChooser}). Ties at random.
 *
 * @param sim - the simulation state
 */
export function queueLengthOracleChooser(sim: SimState): Chooser {
  const { targets, meanServiceMs, random } = sim;
  const queued = sim.model === "fifo_queue";
  const n = meanServiceMs.length;
  return {
    choose(): number {
      return argminRandomTies(n, (b) => (queued ? targets[b]!.load.pending + 1 : 1) * meanServiceMs[b]!, random);
    },
  };
}

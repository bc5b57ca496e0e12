import { createSeededRandom } from "proxyless/testing";
import { EventHeap } from "./event-heap.ts";
import type { Scenario } from "./scenarios.ts";
import { createTargets, type Chooser, type SimState } from "./sim-state.ts";
import { VirtualClock } from "./virtual-clock.ts";
import type { Workload } from "./workload.ts";

/** What one run (one scenario, one policy) produced. */
export interface RunResult {
  /** Latency of every request (completion − arrival), in ms, ascending. */
  readonly sortedLatencies: Float64Array;
  /** Requests sent to each backend. */
  readonly sent: Int32Array;
  /** Highest number of requests in flight at any one backend. */
  readonly maxPending: Int32Array;
}

/**
 * Runs one discrete-event simulation in virtual time. Arrivals come from the workload in order,
 * completions from a binary heap; at equal times a completion goes first. On arrival the policy chooses
 * a backend and the request is sent at once (`load.pending++`); with `fifo_queue` it starts when the
 * backend has finished the work before it, with `unlimited` at once. On completion the simulator does
 * what the transport does: `load.observe(rtt, now)` then `load.pending--`.
 *
 * @param scenario - the backends and how they serve
 * @param workload - the requests
 * @param pickerSeed - seed of the policy's random source
 * @param makeChooser - builds the policy over the simulation state
 */
export function simulate(
  scenario: Scenario,
  workload: Workload,
  pickerSeed: number,
  makeChooser: (sim: SimState) => Chooser,
): RunResult {
  const { arrivals, work } = workload;
  const count = arrivals.length;
  const means = scenario.meanServiceMs;
  const queued = scenario.model === "fifo_queue";
  const clock = new VirtualClock();
  const targets = createTargets(scenario);
  const busyUntil = new Float64Array(means.length);
  const sim: SimState = {
    clock,
    targets,
    model: scenario.model,
    meanServiceMs: means,
    busyUntil,
    random: createSeededRandom(pickerSeed),
  };
  const chooser = makeChooser(sim);
  const heap = new EventHeap();
  const backendOf = new Int32Array(count);
  const latencies = new Float64Array(count);
  const sent = new Int32Array(means.length);
  const maxPending = new Int32Array(means.length);
  let next = 0;
  while (next < count || heap.size > 0) {
    const arrival = next < count ? arrivals[next]! : Infinity;
    const completion = heap.peekTime();
    if (completion <= arrival) {
      const request = heap.pop();
      clock.advance(completion);
      const rtt = completion - arrivals[request]!;
      const load = targets[backendOf[request]!]!.load;
      load.observe(rtt, completion);
      load.pending--;
      latencies[request] = rtt;
    } else {
      clock.advance(arrival);
      const b = chooser.choose(next);
      const target = targets[b];
      if (target === undefined) throw new Error(`policy chose backend ${b}, out of range`);
      backendOf[next] = b;
      sent[b] = sent[b]! + 1;
      const pending = ++target.load.pending;
      if (pending > maxPending[b]!) maxPending[b] = pending;
      const start = queued ? Math.max(arrival, busyUntil[b]!) : arrival;
      const done = start + means[b]! * work[next]!;
      if (queued) busyUntil[b] = done;
      heap.push(done, next);
      next++;
    }
  }
  return { sortedLatencies: latencies.sort(), sent, maxPending };
}

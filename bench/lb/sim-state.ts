import { createEndpoint, type PickTarget, type Random } from "proxyless";
import { EndpointLoad } from "../../src/balancer/load.ts";
import type { Scenario, ServerModel } from "./scenarios.ts";
import type { VirtualClock } from "./virtual-clock.ts";

/** A simulated backend as a picker sees it, with its index in the scenario. */
export interface SimTarget extends PickTarget {
  /** Position in the scenario's backend list. */
  readonly index: number;
  /** Kept by the simulator exactly as the transport keeps it. */
  readonly load: EndpointLoad;
}

/** What a policy may look at while the simulation runs. */
export interface SimState {
  /** The virtual clock. */
  readonly clock: VirtualClock;
  /** The backends, as picker targets. */
  readonly targets: readonly SimTarget[];
  /** How backends serve requests. */
  readonly model: ServerModel;
  /** True mean service time of each backend, in ms (only the oracle reads it). */
  readonly meanServiceMs: readonly number[];
  /**
   * For `fifo_queue`: the time each backend finishes the work it has accepted (its remaining work is
   * `max(0, busyUntil - now)`). Unused for `unlimited`.
   */
  readonly busyUntil: Float64Array;
  /** The policy's seeded random source. */
  readonly random: Random;
}

/** Chooses a backend for each request. */
export interface Chooser {
  /**
   * @param request - the request's index in the workload
   * @returns the backend's index
   */
  choose(request: number): number;
}

/**
 * Fresh picker targets for a scenario: `b0`…`b9` at 10.0.0.0…, weight 1, empty load.
 *
 * @param scenario - the scenario
 */
export function createTargets(scenario: Scenario): SimTarget[] {
  return scenario.meanServiceMs.map((_, index) => ({
    index,
    endpoint: createEndpoint({ id: `b${index}`, address: `10.0.0.${index}`, port: 80 }),
    weight: 1,
    load: new EndpointLoad(),
  }));
}

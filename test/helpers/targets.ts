import { createEndpoint, EndpointLoad, systemClock, type BalancerEnv, type PickContext, type PickTarget } from "proxyless";
import { createSeededRandom } from "proxyless/testing";

/** A pick target as the balancers see one, without any transport. */
export interface FakeTarget extends PickTarget {
  weight: number;
}

/** `weights.length` targets with ids t0, t1, ... */
export function targets(weights: readonly number[]): FakeTarget[] {
  return weights.map((weight, i) => ({
    endpoint: createEndpoint({ id: `t${i}`, address: `10.0.0.${i}`, port: 80 }),
    weight,
    load: new EndpointLoad(),
  }));
}

/** A balancer env with a seeded random source and the real clock. */
export function env(seed: number): BalancerEnv {
  return { clock: systemClock, random: createSeededRandom(seed) };
}

/** Counts picks by target id. */
export function tally(pick: () => PickTarget, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = pick().endpoint.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** A pick context with no hash. */
export const NO_HASH: PickContext = { hash: undefined };

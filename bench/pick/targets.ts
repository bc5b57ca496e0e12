import { EndpointLoad } from "../../src/balancer/load.ts";
import type { PickContext, PickTarget } from "../../src/balancer/picker.ts";
import type { Clock } from "../../src/core/clock.ts";
import { createSeededRandom } from "../../src/core/random.ts";
import { createEndpoint } from "../../src/endpoint/endpoint.ts";
import type { WeightMode } from "./cases.ts";

/** Seeds of the target state and of the request hashes; the picker's own random source has seed 1. */
const STATE_SEED = 42;
const HASH_SEED = 7;

/** The number of precomputed hashed contexts the hot loop cycles through; a power of two. */
export const HASH_CONTEXTS = 4096;

/**
 * Targets as the transport builds them, with realistic state: requests in flight 0 to 20 and one to
 * three round-trip samples of 1 to 50 ms each, so least_request and peak_ewma compare real numbers.
 *
 * @param n - the number of targets
 * @param weights - all 1, or seeded random integers 1 to 10
 * @param clock - the clock the samples are stamped with
 */
export function buildTargets(n: number, weights: WeightMode, clock: Clock): PickTarget[] {
  const random = createSeededRandom(STATE_SEED);
  const int = (lo: number, hi: number): number => lo + Math.floor(random.next() * (hi - lo + 1));
  const now = clock.now();
  const targets: PickTarget[] = [];
  for (let i = 0; i < n; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const load = new EndpointLoad();
    load.pending = int(0, 20);
    const samples = int(1, 3);
    for (let s = 0; s < samples; s++) load.observe(1 + random.next() * 49, now - (samples - s) * 100);
    targets.push({ endpoint: createEndpoint({ id: `e${i}`, address, port: 80 }), weight: weights === "equal" ? 1 : int(1, 10), load });
  }
  return targets;
}

/**
 * The contexts the hot loop cycles through: {@link HASH_CONTEXTS} precomputed random 32-bit hashes for
 * hash policies, one `{ hash: undefined }` for the others.
 *
 * @param hashed - whether the policy hashes
 */
export function buildContexts(hashed: boolean): PickContext[] {
  if (!hashed) return [{ hash: undefined }];
  const random = createSeededRandom(HASH_SEED);
  return Array.from({ length: HASH_CONTEXTS }, () => ({ hash: Math.floor(random.next() * 0x100000000) }));
}

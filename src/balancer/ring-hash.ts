import { invalidConfig } from "../core/errors.ts";
import { expectOptions, optionalNumber } from "../core/validate.ts";
import { hash32 } from "./hash.ts";
import { compileHashPolicies, type RequestHasher } from "./hash-policy.ts";
import type { BalancerEnv, BalancerPlugin, PickContext, PickTarget, Picker } from "./picker.ts";

/** Settings of `ring_hash`. */
export interface RingHashConfig {
  /** Points on the ring per unit of endpoint weight. Default 128. */
  readonly pointsPerWeight: number;
  /**
   * Grow the ring to at least this many points. Off (0) by default: growing it makes every endpoint's
   * points depend on how many endpoints there are, so each membership change moves a few more keys
   * (as in Envoy, whose default is 1024).
   */
  readonly minimumRingSize: number;
  /** Shrink the ring to at most this many points. Default 1,048,576. */
  readonly maximumRingSize: number;
  /** Where a request's key comes from; a caller's `hashKey` takes precedence. */
  readonly hasher: RequestHasher | undefined;
}

/** Owners fit in the low bits of a packed (hash, owner) double: 2^21 endpoints. */
const OWNER_BITS = 2 ** 21;

class RingPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #hashes: Uint32Array;
  readonly #owners: Int32Array;
  readonly #env: BalancerEnv;

  constructor(targets: readonly T[], config: RingHashConfig, env: BalancerEnv) {
    this.#targets = targets;
    this.#env = env;
    // Points per unit of absolute weight: an endpoint's points depend on its own weight only, so when one
    // endpoint leaves or joins the others keep theirs and only its keys move. The ring is scaled only
    // when it would fall outside [minimumRingSize, maximumRingSize].
    const totalWeight = targets.reduce((sum, t) => sum + t.weight, 0);
    let perWeight = config.pointsPerWeight;
    if (perWeight * totalWeight < config.minimumRingSize) perWeight = config.minimumRingSize / totalWeight;
    if (perWeight * totalWeight > config.maximumRingSize) perWeight = config.maximumRingSize / totalWeight;
    const counts = targets.map((t) => Math.max(1, Math.round(perWeight * t.weight)));
    const total = counts.reduce((a, b) => a + b, 0);
    // Sort (hash, owner) pairs packed into doubles: a native numeric sort, no object per point.
    const packed = new Float64Array(total);
    let at = 0;
    targets.forEach((target, owner) => {
      const id = target.endpoint.id;
      for (let k = 0; k < (counts[owner] ?? 1); k++) packed[at++] = hash32(id, k) * OWNER_BITS + owner;
    });
    packed.sort();
    this.#hashes = new Uint32Array(total);
    this.#owners = new Int32Array(total);
    for (let i = 0; i < total; i++) {
      const value = packed[i] ?? 0;
      const hash = Math.floor(value / OWNER_BITS);
      this.#hashes[i] = hash;
      this.#owners[i] = value - hash * OWNER_BITS;
    }
  }

  pick(context: PickContext): T {
    const hash = context.hash ?? Math.floor(this.#env.random.next() * 0x100000000);
    const hashes = this.#hashes;
    // The first point at or after the hash, wrapping around.
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((hashes[mid] ?? 0) < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.#targets[this.#owners[lo === hashes.length ? 0 : lo] ?? 0] as T;
  }
}

/**
 * `ring_hash` (consistent hashing, Ketama): requests with the same key go to the same endpoint; when one
 * of N endpoints leaves, only its keys move (about 1/N). Points per endpoint follow its weight. O(log n)
 * per pick. A request without a key goes to a random endpoint.
 */
export const ringHash: BalancerPlugin<RingHashConfig> = Object.freeze({
  name: "ring_hash",
  consistentHashing: true,
  parseConfig(raw: unknown, field: string): RingHashConfig {
    const o = expectOptions(raw, field, ["pointsPerWeight", "minimumRingSize", "maximumRingSize", "hashPolicies"]);
    const pointsPerWeight = optionalNumber(o.pointsPerWeight, `${field}.pointsPerWeight`, { min: 1, max: 65_536, integer: true }) ?? 128;
    const maximumRingSize = optionalNumber(o.maximumRingSize, `${field}.maximumRingSize`, { min: 1, max: 8_388_608, integer: true }) ?? 1_048_576;
    const minimumRingSize = optionalNumber(o.minimumRingSize, `${field}.minimumRingSize`, { min: 0, max: 8_388_608, integer: true }) ?? 0;
    if (minimumRingSize > maximumRingSize) {
      throw invalidConfig(`${field}.minimumRingSize`, `must not exceed maximumRingSize (${maximumRingSize}), got ${minimumRingSize}`);
    }
    return { pointsPerWeight, minimumRingSize, maximumRingSize, hasher: compileHashPolicies(o.hashPolicies, `${field}.hashPolicies`) };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: RingHashConfig, env: BalancerEnv): Picker<T> {
    return new RingPicker(targets, config, env);
  },
  requestHasher: (config: RingHashConfig) => config.hasher,
});

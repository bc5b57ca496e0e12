import { expectOptions, optionalNumber } from "../core/validate.ts";
import { hash32 } from "./hash.ts";
import { compileHashPolicies, type RequestHasher } from "./hash-policy.ts";
import type { BalancerEnv, BalancerPlugin, PickContext, PickTarget, Picker } from "./picker.ts";

/** Settings of `ring_hash` (Envoy's `RingHashLbConfig`, Consul's `RingHashConfig` and `HashPolicies`). */
export interface RingHashConfig {
  /** The ring has at least this many points. Default 1024. */
  readonly minimumRingSize: number;
  /** And at most this many. Default 8,388,608. */
  readonly maximumRingSize: number;
  /** Where a request's key comes from; a caller's `hashKey` takes precedence. */
  readonly hasher: RequestHasher | undefined;
}

class RingPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #hashes: Uint32Array;
  readonly #owners: Int32Array;
  readonly #env: BalancerEnv;

  constructor(targets: readonly T[], config: RingHashConfig, env: BalancerEnv) {
    this.#targets = targets;
    this.#env = env;
    const total = targets.reduce((sum, t) => sum + t.weight, 0);
    const minShare = Math.min(...targets.map((t) => t.weight)) / total;
    // As Envoy: enough points that the lightest endpoint gets its share of the minimum ring size.
    const scale = Math.min(Math.ceil(minShare * config.minimumRingSize) / minShare, config.maximumRingSize);
    const points: { hash: number; owner: number }[] = [];
    targets.forEach((target, owner) => {
      const count = Math.max(1, Math.round((scale * target.weight) / total));
      for (let k = 0; k < count; k++) points.push({ hash: hash32(`${target.endpoint.id}_${k}`), owner });
    });
    points.sort((a, b) => a.hash - b.hash || a.owner - b.owner);
    this.#hashes = Uint32Array.from(points, (p) => p.hash);
    this.#owners = Int32Array.from(points, (p) => p.owner);
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
 * `ring_hash` (consistent hashing, Ketama): requests with the same key go to the same endpoint, and
 * removing one of N endpoints moves only about 1/N of the keys. Points per endpoint follow its weight.
 * O(log n) per pick. A request without a key goes to a random endpoint.
 */
export const ringHash: BalancerPlugin<RingHashConfig> = Object.freeze({
  name: "ring_hash",
  parseConfig(raw: unknown, field: string): RingHashConfig {
    const o = expectOptions(raw, field, ["minimumRingSize", "maximumRingSize", "hashPolicies"]);
    const minimumRingSize = optionalNumber(o.minimumRingSize, `${field}.minimumRingSize`, { min: 1, max: 8_388_608, integer: true }) ?? 1024;
    const maximumRingSize =
      optionalNumber(o.maximumRingSize, `${field}.maximumRingSize`, { min: minimumRingSize, max: 8_388_608, integer: true }) ??
      8_388_608;
    return { minimumRingSize, maximumRingSize, hasher: compileHashPolicies(o.hashPolicies, `${field}.hashPolicies`) };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: RingHashConfig, env: BalancerEnv): Picker<T> {
    return new RingPicker(targets, config, env);
  },
  requestHasher: (config: RingHashConfig) => config.hasher,
});

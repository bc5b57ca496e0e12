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
    // Points per unit of weight (the lightest endpoint's weight), a power of two: the smallest that
    // makes the ring at least minimumRingSize, within maximumRingSize. An endpoint's points then depend
    // only on its own relative weight and on that power, which changes only when the ring crosses a
    // power-of-two threshold; so when one endpoint leaves or joins, the others keep their points and
    // only its keys move. (Envoy sizes the ring to the endpoint count instead, which moves a few more.)
    const unit = Math.min(...targets.map((t) => t.weight));
    const countAt = (perUnit: number): number[] => targets.map((t) => Math.max(1, Math.round((perUnit * t.weight) / unit)));
    const sum = (counts: number[]): number => counts.reduce((a, b) => a + b, 0);
    let perUnit = 1;
    while (perUnit < 2 ** 23 && sum(countAt(perUnit * 2)) <= config.maximumRingSize && sum(countAt(perUnit)) < config.minimumRingSize) {
      perUnit *= 2;
    }
    const counts = countAt(perUnit);
    const points: { hash: number; owner: number }[] = [];
    targets.forEach((target, owner) => {
      for (let k = 0; k < (counts[owner] ?? 1); k++) points.push({ hash: hash32(`${target.endpoint.id}_${k}`), owner });
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

import { invalidConfig } from "../core/errors.ts";
import { expectOptions, optionalNumber } from "../core/validate.ts";
import { hash32 } from "./hash.ts";
import { compileHashPolicies, type RequestHasher } from "./hash-policy.ts";
import type { BalancerEnv, BalancerPlugin, PickContext, PickTarget, Picker } from "./picker.ts";

/** Settings of `maglev`. */
export interface MaglevConfig {
  /** Size of the lookup table, a prime; at least 100× the endpoints for even spread. Default 65537. */
  readonly tableSize: number;
  /** Where a request's key comes from; a caller's `hashKey` takes precedence. */
  readonly hasher: RequestHasher | undefined;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

class MaglevPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #table: Int32Array;
  readonly #env: BalancerEnv;

  constructor(targets: readonly T[], size: number, env: BalancerEnv) {
    this.#targets = targets;
    this.#env = env;
    const table = new Int32Array(size).fill(-1);
    const n = targets.length;
    const offset = targets.map((t) => hash32(t.endpoint.id, 0x9747b28c) % size);
    const skip = targets.map((t) => (hash32(t.endpoint.id, 0x1b873593) % (size - 1)) + 1);
    const next = new Float64Array(n);
    const maxWeight = Math.max(...targets.map((t) => t.weight));
    const credit = new Float64Array(n);
    // Each round, an endpoint earns weight/maxWeight of a slot and takes a slot per whole credit, in
    // the order of its own permutation (Maglev's population, weighted as in Envoy).
    for (let filled = 0; filled < size; ) {
      for (let i = 0; i < n && filled < size; i++) {
        credit[i] = (credit[i] ?? 0) + (targets[i]?.weight ?? 0) / maxWeight;
        while ((credit[i] ?? 0) >= 1 && filled < size) {
          let slot = ((offset[i] ?? 0) + (next[i] ?? 0) * (skip[i] ?? 1)) % size;
          while ((table[slot] ?? 0) >= 0) {
            next[i] = (next[i] ?? 0) + 1;
            slot = ((offset[i] ?? 0) + (next[i] ?? 0) * (skip[i] ?? 1)) % size;
          }
          table[slot] = i;
          next[i] = (next[i] ?? 0) + 1;
          credit[i] = (credit[i] ?? 0) - 1;
          filled++;
        }
      }
    }
    this.#table = table;
  }

  pick(context: PickContext): T {
    const hash = context.hash ?? Math.floor(this.#env.random.next() * 0x100000000);
    return this.#targets[this.#table[hash % this.#table.length] ?? 0] as T;
  }
}

/**
 * `maglev` (Google's Maglev hashing): like `ring_hash`, same key → same endpoint and about 1/N of keys
 * move when one of N endpoints leaves, with an O(1) lookup in a fixed table. Weighted.
 */
export const maglev: BalancerPlugin<MaglevConfig> = Object.freeze({
  name: "maglev",
  consistentHashing: true,
  parseConfig(raw: unknown, field: string): MaglevConfig {
    const o = expectOptions(raw, field, ["tableSize", "hashPolicies"]);
    const tableSize = optionalNumber(o.tableSize, `${field}.tableSize`, { min: 3, max: 5_000_011, integer: true }) ?? 65_537;
    if (!isPrime(tableSize)) throw invalidConfig(`${field}.tableSize`, `must be a prime number (such as 65537), got ${tableSize}`);
    return { tableSize, hasher: compileHashPolicies(o.hashPolicies, `${field}.hashPolicies`) };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: MaglevConfig, env: BalancerEnv): Picker<T> {
    return new MaglevPicker(targets, config.tableSize, env);
  },
  requestHasher: (config: MaglevConfig) => config.hasher,
});

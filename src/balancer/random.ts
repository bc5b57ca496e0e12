import { expectOptions } from "../core/validate.ts";
import type { BalancerEnv, BalancerPlugin, PickTarget, Picker } from "./picker.ts";
import { equalWeights } from "./weights.ts";

/** `random` takes no options. */
export type RandomConfig = Readonly<Record<string, never>>;

class UniformPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #env: BalancerEnv;

  constructor(targets: readonly T[], env: BalancerEnv) {
    this.#targets = targets;
    this.#env = env;
  }

  pick(): T {
    return this.#targets[Math.floor(this.#env.random.next() * this.#targets.length)] as T;
  }
}

/** Vose's alias method: a weighted draw in O(1) after O(n) set-up. */
class AliasPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #env: BalancerEnv;
  readonly #chance: Float64Array;
  readonly #alias: Int32Array;

  constructor(targets: readonly T[], env: BalancerEnv) {
    const n = targets.length;
    this.#targets = targets;
    this.#env = env;
    this.#chance = new Float64Array(n);
    this.#alias = new Int32Array(n);
    const total = targets.reduce((sum, t) => sum + t.weight, 0);
    const scaled = targets.map((t) => (t.weight * n) / total);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    for (;;) {
      const s = small.pop();
      const l = large.pop();
      if (s === undefined || l === undefined) {
        for (const i of [s, l, ...small, ...large]) if (i !== undefined) this.#chance[i] = 1;
        break;
      }
      this.#chance[s] = scaled[s] ?? 0;
      this.#alias[s] = l;
      const rest = (scaled[l] ?? 0) + (scaled[s] ?? 0) - 1;
      scaled[l] = rest;
      (rest < 1 ? small : large).push(l);
    }
  }

  pick(): T {
    const u = this.#env.random.next() * this.#targets.length;
    const i = Math.floor(u);
    return this.#targets[u - i < (this.#chance[i] ?? 1) ? i : (this.#alias[i] ?? i)] as T;
  }
}

/** `random`: a target drawn at random, in proportion to weight. O(1) per pick. */
export const random: BalancerPlugin<RandomConfig> = Object.freeze({
  name: "random",
  parseConfig(raw: unknown, field: string): RandomConfig {
    expectOptions(raw, field, []);
    return {};
  },
  createPicker<T extends PickTarget>(targets: readonly T[], _config: RandomConfig, env: BalancerEnv): Picker<T> {
    return equalWeights(targets) ? new UniformPicker(targets, env) : new AliasPicker(targets, env);
  },
});

import { randomIndex } from "../core/random.ts";
import { expectOptions } from "../core/validate.ts";
import { EdfScheduler } from "./edf.ts";
import type { BalancerEnv, BalancerPlugin, PickTarget, Picker } from "./picker.ts";
import { RoundRobinPicker } from "./round-robin.ts";
import { equalWeights, randomOffsets } from "./weights.ts";

/** `weighted_round_robin` takes no options. */
export type WeightedRoundRobinConfig = Readonly<Record<string, never>>;

class EdfPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #edf: EdfScheduler;

  constructor(targets: readonly T[], env: BalancerEnv) {
    this.#targets = targets;
    this.#edf = new EdfScheduler(
      targets.map((t) => t.weight),
      randomOffsets(targets.length, env.random),
    );
  }

  pick(): T {
    return this.#targets[this.#edf.next()] as T;
  }
}

/**
 * `weighted_round_robin`: each target in proportion to its weight, smoothly interleaved, by an
 * earliest-deadline-first schedule (Envoy's). Integer weights get exact ratios over every cycle of
 * `sum(weights)` picks. Start points are random, so clients do not move in lock step. With equal weights
 * it is plain round robin. O(log n) per pick.
 */
export const weightedRoundRobin: BalancerPlugin<WeightedRoundRobinConfig> = Object.freeze({
  name: "weighted_round_robin",
  parseConfig(raw: unknown, field: string): WeightedRoundRobinConfig {
    expectOptions(raw, field, []);
    return {};
  },
  createPicker<T extends PickTarget>(targets: readonly T[], _config: WeightedRoundRobinConfig, env: BalancerEnv): Picker<T> {
    if (equalWeights(targets)) return new RoundRobinPicker(targets, randomIndex(env.random, targets.length));
    return new EdfPicker(targets, env);
  },
});

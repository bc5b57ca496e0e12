import { expectOptions, optionalNumber } from "../core/validate.ts";
import { EdfScheduler } from "./edf.ts";
import type { BalancerEnv, BalancerPlugin, PickTarget, Picker } from "./picker.ts";
import { equalWeights, randomOffsets, secondChoice } from "./weights.ts";

/** Settings of `least_request` (Envoy's `LeastRequestLbConfig`, Consul's `LeastRequestConfig`). */
export interface LeastRequestConfig {
  /** Candidates drawn per pick when weights are equal; the least loaded wins. >= 2, default 2. */
  readonly choiceCount: number;
  /** With unequal weights, the exponent in `weight / (active + 1)^bias`. >= 0, default 1. */
  readonly activeRequestBias: number;
}

class PowerOfChoicesPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #choices: number;
  readonly #env: BalancerEnv;

  constructor(targets: readonly T[], choices: number, env: BalancerEnv) {
    this.#targets = targets;
    this.#choices = choices;
    this.#env = env;
  }

  pick(): T {
    const targets = this.#targets;
    const n = targets.length;
    if (n === 1) return targets[0] as T;
    const random = this.#env.random;
    const a = Math.floor(random.next() * n);
    const b = secondChoice(a, n, random);
    let best = targets[a] as T;
    const other = targets[b] as T;
    if (other.load.pending < best.load.pending) best = other;
    for (let c = 2; c < this.#choices; c++) {
      const candidate = targets[Math.floor(random.next() * n)] as T;
      if (candidate.load.pending < best.load.pending) best = candidate;
    }
    return best;
  }
}

class WeightedLeastRequestPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  readonly #bias: number;
  readonly #edf: EdfScheduler;

  constructor(targets: readonly T[], bias: number, env: BalancerEnv) {
    this.#targets = targets;
    this.#bias = bias;
    this.#edf = new EdfScheduler(
      targets.map((t) => t.weight),
      randomOffsets(targets.length, env.random),
    );
  }

  pick(): T {
    const target = this.#targets[this.#edf.peek()] as T;
    const active = target.load.pending + 1;
    const bias = this.#bias;
    const divisor = bias === 1 ? active : bias === 0 ? 1 : Math.pow(active, bias);
    this.#edf.nextDynamic(target.weight / divisor);
    return target;
  }
}

/**
 * `least_request`: with equal weights, power of `choiceCount` choices: draw that many targets at random
 * and take the one with the fewest requests in flight. With unequal weights, Envoy's weighted least
 * request: an earliest-deadline-first schedule whose weights are `weight / (active + 1)^bias`, updated
 * at each pick. O(1) and O(log n) per pick.
 */
export const leastRequest: BalancerPlugin<LeastRequestConfig> = Object.freeze({
  name: "least_request",
  parseConfig(raw: unknown, field: string): LeastRequestConfig {
    const o = expectOptions(raw, field, ["choiceCount", "activeRequestBias"]);
    return {
      choiceCount: optionalNumber(o.choiceCount, `${field}.choiceCount`, { min: 2, max: 100, integer: true }) ?? 2,
      activeRequestBias: optionalNumber(o.activeRequestBias, `${field}.activeRequestBias`, { min: 0, max: 10 }) ?? 1,
    };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: LeastRequestConfig, env: BalancerEnv): Picker<T> {
    if (equalWeights(targets)) return new PowerOfChoicesPicker(targets, config.choiceCount, env);
    return new WeightedLeastRequestPicker(targets, config.activeRequestBias, env);
  },
});

import { randomIndex } from "../core/random.ts";
import { expectOptions } from "../core/validate.ts";
import type { BalancerEnv, BalancerPlugin, PickTarget, Picker } from "./picker.ts";

/** `round_robin` takes no options. */
export type RoundRobinConfig = Readonly<Record<string, never>>;

/** Each target in turn from `start`. @internal */
export class RoundRobinPicker<T extends PickTarget> implements Picker<T> {
  readonly #targets: readonly T[];
  #next: number;

  constructor(targets: readonly T[], start: number) {
    this.#targets = targets;
    this.#next = start;
  }

  pick(): T {
    const i = this.#next;
    this.#next = i + 1 === this.#targets.length ? 0 : i + 1;
    return this.#targets[i] as T;
  }
}

/**
 * `round_robin`: each target in turn, starting at a random index so a fleet of clients does not hit the
 * same endpoint first. Ignores weights.
 */
export const roundRobin: BalancerPlugin<RoundRobinConfig> = Object.freeze({
  name: "round_robin",
  parseConfig(raw: unknown, field: string): RoundRobinConfig {
    expectOptions(raw, field, []);
    return {};
  },
  createPicker<T extends PickTarget>(targets: readonly T[], _config: RoundRobinConfig, env: BalancerEnv): Picker<T> {
    return new RoundRobinPicker(targets, randomIndex(env.random, targets.length));
  },
});

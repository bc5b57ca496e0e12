import type { Random } from "../core/random.ts";
import type { PickTarget } from "./picker.ts";

/** Whether every target has the same weight (the fast paths of the weighted policies). @internal */
export function equalWeights(targets: readonly PickTarget[]): boolean {
  const first = targets[0]?.weight;
  return targets.every((t) => t.weight === first);
}

/** `n` random numbers in [0, 1). @internal */
export function randomOffsets(n: number, random: Random): number[] {
  return Array.from({ length: n }, () => random.next());
}

/**
 * Two distinct random indices below `n` (n >= 2), for power-of-two-choices. @internal
 */
export function twoChoices(n: number, random: Random): [number, number] {
  const a = Math.floor(random.next() * n);
  let b = Math.floor(random.next() * (n - 1));
  if (b >= a) b++;
  return [a, b];
}

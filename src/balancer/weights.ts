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
 * A random index below `n` (n >= 2) other than `first`, for power-of-two-choices. @internal
 */
export function secondChoice(first: number, n: number, random: Random): number {
  const b = Math.floor(random.next() * (n - 1));
  return b >= first ? b + 1 : b;
}

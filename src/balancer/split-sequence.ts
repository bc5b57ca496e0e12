/**
 * Chooses among weighted splits deterministically: smooth weighted round robin (as nginx) over weights
 * in hundredths of a percent, so over every cycle of 10,000 requests each side gets exactly its share
 * (95/5 gives 9,500 and 500), interleaved rather than in runs. @internal
 */
export class SplitSequence {
  readonly #weights: Int32Array;
  readonly #current: Int32Array;
  readonly #cumulative: Int32Array;
  readonly #total: number;

  /** @param percents - the weights in percent, with at most two decimals, summing to 100 */
  constructor(percents: readonly number[]) {
    this.#weights = Int32Array.from(percents, (p) => Math.round(p * 100));
    this.#current = new Int32Array(percents.length);
    this.#cumulative = new Int32Array(percents.length);
    let sum = 0;
    this.#weights.forEach((w, i) => {
      sum += w;
      this.#cumulative[i] = sum;
    });
    this.#total = sum;
  }

  /** The next split, advancing the sequence. */
  next(): number {
    const chosen = this.peek();
    for (let i = 0; i < this.#weights.length; i++) this.#current[i] = (this.#current[i] ?? 0) + (this.#weights[i] ?? 0);
    this.#current[chosen] = (this.#current[chosen] ?? 0) - this.#total;
    return chosen;
  }

  /** The split {@link SplitSequence.next} would choose, without advancing. */
  peek(): number {
    let best = -1;
    let bestValue = -Infinity;
    for (let i = 0; i < this.#weights.length; i++) {
      const w = this.#weights[i] ?? 0;
      if (w === 0) continue;
      const value = (this.#current[i] ?? 0) + w;
      if (value > bestValue) {
        best = i;
        bestValue = value;
      }
    }
    return best;
  }

  /** The split a hash falls in (sticky splitting): the same hash always gives the same side. */
  byHash(hash: number): number {
    const point = hash % this.#total;
    for (let i = 0; i < this.#cumulative.length; i++) if (point < (this.#cumulative[i] ?? 0)) return i;
    return this.#cumulative.length - 1;
  }
}

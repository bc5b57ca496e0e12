/**
 * An earliest-deadline-first scheduler over entries 0..n-1 (Envoy's EDF). Entry `i` with weight `w`
 * is due every `1 / w`; a pick takes the entry due first and schedules its next turn. Over any span of
 * deadlines [k, k+1) an entry with integer weight `w` comes up exactly `w` times, so integer weights get
 * exact ratios over each cycle of `sum(weights)` picks. O(log n) per pick, with a binary heap.
 * @internal
 */
export class EdfScheduler {
  readonly #deadline: Float64Array;
  readonly #heap: Int32Array;
  readonly #turns: Float64Array;
  readonly #offset: Float64Array;
  readonly #weight: Float64Array;

  /**
   * @param weights - one positive weight per entry
   * @param offsets - per entry, in [0, 1): where in its first period the entry starts (random, so a
   *   fleet of clients does not move in lock step)
   */
  constructor(weights: readonly number[], offsets: readonly number[]) {
    const n = weights.length;
    this.#deadline = new Float64Array(n);
    this.#heap = new Int32Array(n);
    this.#turns = new Float64Array(n);
    this.#offset = new Float64Array(offsets);
    this.#weight = new Float64Array(weights);
    for (let i = 0; i < n; i++) {
      this.#deadline[i] = (offsets[i] ?? 0) / (weights[i] ?? 1);
      this.#heap[i] = i;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  /** The entry due first. Does not advance. */
  peek(): number {
    return this.#heap[0] ?? 0;
  }

  /**
   * Takes the entry due first and schedules its next turn with the weight it was built with.
   *
   * @returns the entry taken
   */
  next(): number {
    const entry = this.#heap[0] ?? 0;
    const turns = (this.#turns[entry] ?? 0) + 1;
    this.#turns[entry] = turns;
    // From the turn count rather than by adding 1/w up, so rounding does not drift over long runs.
    this.#deadline[entry] = (turns + (this.#offset[entry] ?? 0)) / (this.#weight[entry] ?? 1);
    this.#down(0);
    return entry;
  }

  /**
   * Takes the entry due first and schedules its next turn `1 / weight` later, with a weight that may
   * have changed since its last turn (least request's `weight / (active + 1)^bias`).
   *
   * @param weight - the entry's weight for its next period, > 0
   * @returns the entry taken
   */
  nextDynamic(weight: number): number {
    const entry = this.#heap[0] ?? 0;
    this.#deadline[entry] = (this.#deadline[entry] ?? 0) + 1 / weight;
    this.#down(0);
    return entry;
  }

  #less(a: number, b: number): boolean {
    const da = this.#deadline[a] ?? 0;
    const db = this.#deadline[b] ?? 0;
    return da < db || (da === db && a < b);
  }

  #down(start: number): void {
    const heap = this.#heap;
    const n = heap.length;
    let i = start;
    const item = heap[i] ?? 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.#less(heap[right] ?? 0, heap[child] ?? 0)) child = right;
      if (!this.#less(heap[child] ?? 0, item)) break;
      heap[i] = heap[child] ?? 0;
      i = child;
    }
    heap[i] = item;
  }
}

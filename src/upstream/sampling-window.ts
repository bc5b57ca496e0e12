import type { Clock } from "../core/clock.ts";

const BUCKETS = 10;

/**
 * Call outcomes over a sliding time window on the mesh's clock: ten buckets, each a tenth of the
 * window, dropped as they age out. (cockatiel's `SamplingBreaker` does the same on `Date.now()`, which
 * a FakeClock cannot drive.) @internal
 */
export class SamplingWindow {
  readonly #clock: Clock;
  readonly #bucketMs: number;
  readonly #failures = new Float64Array(BUCKETS);
  readonly #successes = new Float64Array(BUCKETS);
  /** The index (time / bucketMs) of the newest bucket. */
  #newest = -Infinity;
  #failureCount = 0;
  #total = 0;

  /** @param windowMs - the window's length */
  constructor(clock: Clock, windowMs: number) {
    this.#clock = clock;
    this.#bucketMs = Math.max(1, windowMs / BUCKETS);
  }

  /**
   * Records one outcome.
   *
   * @param now - the clock's time, if the caller read it already
   */
  record(success: boolean, now = this.#clock.now()): void {
    const slot = this.#advance(now);
    if (success) this.#successes[slot] = (this.#successes[slot] ?? 0) + 1;
    else {
      this.#failures[slot] = (this.#failures[slot] ?? 0) + 1;
      this.#failureCount++;
    }
    this.#total++;
  }

  /** Outcomes in the window. */
  get total(): number {
    this.#advance(this.#clock.now());
    return this.#total;
  }

  /** Failures in the window. */
  get failures(): number {
    this.#advance(this.#clock.now());
    return this.#failureCount;
  }

  /** Forgets every outcome. */
  reset(): void {
    this.#failures.fill(0);
    this.#successes.fill(0);
    this.#failureCount = 0;
    this.#total = 0;
  }

  /** Drops the buckets that aged out; the slot of the current bucket. */
  #advance(now: number): number {
    const index = Math.floor(now / this.#bucketMs);
    const slot = ((index % BUCKETS) + BUCKETS) % BUCKETS;
    if (index === this.#newest) return slot;
    if (index - this.#newest >= BUCKETS) this.reset();
    else {
      for (let i = this.#newest + 1; i <= index; i++) {
        const old = ((i % BUCKETS) + BUCKETS) % BUCKETS;
        const failures = this.#failures[old] ?? 0;
        this.#failureCount -= failures;
        this.#total -= failures + (this.#successes[old] ?? 0);
        this.#failures[old] = 0;
        this.#successes[old] = 0;
      }
    }
    this.#newest = index;
    return slot;
  }
}

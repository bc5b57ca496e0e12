import { quantileSorted } from "./stats.ts";

/** Collects per-request latencies (ms) in a reused, growable buffer, so recording allocates nothing. */
export class LatencyRecorder {
  #samples = new Float64Array(1 << 16);
  #count = 0;

  /** The number of samples since the last {@link LatencyRecorder.reset}. */
  get count(): number {
    return this.#count;
  }

  /** Forgets every sample. */
  reset(): void {
    this.#count = 0;
  }

  /** Records one latency in ms. */
  add(ms: number): void {
    if (this.#count === this.#samples.length) {
      const bigger = new Float64Array(this.#samples.length * 2);
      bigger.set(this.#samples);
      this.#samples = bigger;
    }
    this.#samples[this.#count++] = ms;
  }

  /** p50 and p99 in ms of the samples so far. */
  percentiles(): { readonly p50: number; readonly p99: number } {
    const sorted = this.#samples.slice(0, this.#count).sort();
    return { p50: quantileSorted(sorted, 0.5), p99: quantileSorted(sorted, 0.99) };
  }
}

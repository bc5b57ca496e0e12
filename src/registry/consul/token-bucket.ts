import type { Clock } from "../../core/clock.ts";

/**
 * A token bucket on an injected clock: `burst` requests go at once, then one per `1 / perSecond`
 * seconds. Consul's advice for blocking-query loops ("a token bucket with burst of 2"), so that churn
 * degrades into polling. @internal
 */
export class TokenBucket {
  readonly #clock: Clock;
  readonly #burst: number;
  readonly #perMs: number;
  #tokens: number;
  #stamp: number;

  /**
   * @param clock - the clock
   * @param burst - tokens when full
   * @param perSecond - refill rate
   */
  constructor(clock: Clock, burst: number, perSecond: number) {
    this.#clock = clock;
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#tokens = burst;
    this.#stamp = clock.now();
  }

  /** Milliseconds to wait before the next request may go; takes a token when it returns 0. */
  take(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#stamp) * this.#perMs);
    this.#stamp = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) / this.#perMs);
  }
}

import type { Clock } from "../core/clock.ts";

const SLOTS = 10;
const SLOT_MS = 100;

/**
 * A retry budget over the last second (ten 100 ms slots), shared by retries and hedges to one upstream
 * (Finagle's idea): a retry is allowed while the retries in the window stay under `percent` of the
 * requests in it plus `minPerSecond`. When a whole service fails, retries add at most that much load,
 * instead of multiplying it. @internal
 */
export class RetryBudget {
  readonly #clock: Clock;
  readonly #ratio: number;
  readonly #min: number;
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  #slot = 0;
  #slotStart = 0;

  constructor(clock: Clock, percent: number, minPerSecond: number) {
    this.#clock = clock;
    this.#ratio = percent / 100;
    this.#min = minPerSecond;
    this.#slotStart = clock.now();
  }

  /**
   * Counts a first attempt.
   *
   * @param now - the clock's time, if the caller read it already
   */
  request(now = this.#clock.now()): void {
    this.#advance(now);
    this.#requests[this.#slot] = (this.#requests[this.#slot] ?? 0) + 1;
  }

  /** The window now: requests and retries in it, and how many retries it allows (for the snapshot). */
  reading(): { readonly windowMs: number; readonly requests: number; readonly retries: number; readonly allowed: number } {
    const { requests, retries } = this.#window();
    return { windowMs: SLOTS * SLOT_MS, requests, retries, allowed: Math.floor(this.#ratio * requests + this.#min) };
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    const { requests, retries } = this.#window();
    if (retries + 1 > this.#ratio * requests + this.#min) return false;
    this.#retries[this.#slot] = (this.#retries[this.#slot] ?? 0) + 1;
    return true;
  }

  /** The calls and retries in the window as it stands now. */
  #window(): { readonly requests: number; readonly retries: number } {
    this.#advance(this.#clock.now());
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i] ?? 0;
      retries += this.#retries[i] ?? 0;
    }
    return { requests, retries };
  }

  #advance(now: number): void {
    const steps = Math.floor((now - this.#slotStart) / SLOT_MS);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, SLOTS); i++) {
      this.#slot = (this.#slot + 1) % SLOTS;
      this.#requests[this.#slot] = 0;
      this.#retries[this.#slot] = 0;
    }
    this.#slotStart += steps * SLOT_MS;
  }
}

/** A call waiting for a slot: told when it gets one. @internal */
export interface SlotWaiter {
  /** The slot is this call's now; it must call {@link ConcurrencyLimit.release} when done. */
  granted(): void;
}

/**
 * The concurrency limit of one upstream (Envoy's max requests and max pending requests): `max` calls
 * at once, `queue` more waiting, first come first served; beyond that, calls are refused. A waiter
 * that gives up (its caller aborted, its deadline passed) leaves the queue at once, so it never holds
 * a place another call could have. No promise per call: a slot is granted synchronously or by a callback.
 * @internal
 */
export class ConcurrencyLimit {
  readonly max: number;
  readonly queue: number;
  #active = 0;
  readonly #waiting = new Set<SlotWaiter>();

  constructor(max: number, queue: number) {
    this.max = max;
    this.queue = queue;
  }

  /** Calls in flight. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Asks for a slot: `"granted"` (the caller has it now), `"queued"` (`waiter.granted()` will be called
   * later, unless it leaves first), or `"refused"` (slots and queue are full).
   */
  acquire(waiter: SlotWaiter): "granted" | "queued" | "refused" {
    if (this.#active < this.max) {
      this.#active++;
      return "granted";
    }
    if (this.#waiting.size < this.queue) {
      this.#waiting.add(waiter);
      return "queued";
    }
    return "refused";
  }

  /** A queued waiter gives up; does nothing for one that is not waiting. */
  leave(waiter: SlotWaiter): void {
    this.#waiting.delete(waiter);
  }

  /** A slot is free again: the longest waiter gets it. */
  release(): void {
    for (const next of this.#waiting) {
      this.#waiting.delete(next);
      next.granted();
      return;
    }
    this.#active--;
  }
}

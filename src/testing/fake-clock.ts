import type { Clock, TimerHandle } from "../core/clock.ts";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
  readonly keepAlive: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in time order (ties in the order they were set)
 * during {@link FakeClock.advance}.
 *
 * @example
 * ```ts
 * const clock = new FakeClock();
 * const mesh = createMesh({ registry, clock, discoveryTimeout: 1000 });
 * clock.advance(1000); // fires the discovery timeout
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  /** @param start - the initial time in ms */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time in ms. */
  now(): number {
    return this.#now;
  }

  /**
   * Schedules `callback` to run when time has advanced by `ms`. Virtual timers hold no process open;
   * `keepAlive` (whether a real clock's timer would) is only counted, by {@link FakeClock.pendingKeepAliveTimers}.
   */
  setTimeout(callback: () => void, ms: number, keepAlive = false): TimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, callback, keepAlive });
    return seq;
  }

  /** Cancels a timer; unknown or fired timers are ignored. */
  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** The number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * The number of timers waiting to fire that were set with `keepAlive`: those a real clock lets hold
   * the process open, such as a call's per-try timeout or hedge. The mesh's shared coarse deadline timers
   * are not among them, and an emptied one stays until it fires.
   */
  get pendingKeepAliveTimers(): number {
    let n = 0;
    for (const timer of this.#timers.values()) if (timer.keepAlive) n++;
    return n;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in order.
   *
   * @param ms - milliseconds, >= 0
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at <= end && (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) {
          next = timer;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(next.seq);
      this.#now = next.at;
      next.callback();
    }
    this.#now = end;
  }
}

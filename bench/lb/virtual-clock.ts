import type { Clock, TimerHandle } from "proxyless";

/**
 * The simulation's clock: `now()` is the virtual time in ms, moved only by the simulator. Pickers only
 * read the time; timers are not supported in a simulation and throw.
 */
export class VirtualClock implements Clock {
  #now = 0;

  /** The virtual time, in ms. */
  now(): number {
    return this.#now;
  }

  /**
   * Moves the time forward.
   *
   * @param time - the new time, not before the current one
   */
  advance(time: number): void {
    if (time < this.#now) throw new Error(`virtual time cannot go back from ${this.#now} to ${time}`);
    this.#now = time;
  }

  /** Not supported in virtual time. */
  setTimeout(): TimerHandle {
    throw new Error("VirtualClock.setTimeout: pickers should only read the time");
  }

  /** Nothing to cancel. */
  clearTimeout(): void {
    // No timers are ever created.
  }
}

/** An opaque timer returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/**
 * The source of time. Pass a fake clock (`FakeClock` from `proxyless/testing`) to drive timeouts,
 * backoff and ejection in virtual time.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number;
  /** Calls `callback` once after `ms` milliseconds. The timer must not keep the process alive. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer; unknown or fired timers are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, ms: number): TimerHandle => {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return timer;
  },
  clearTimeout: (handle: TimerHandle): void => {
    clearTimeout(handle as NodeJS.Timeout);
  },
});

/**
 * Resolves after `ms` on the given clock (a FakeClock's when testing).
 *
 * @param clock - the clock
 * @param ms - how long, in ms
 */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/** An opaque timer returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/**
 * The source of time. Pass a fake clock (`FakeClock` from `proxyless/testing`) to drive timeouts,
 * backoff and ejection in virtual time.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number;
  /**
   * Calls `callback` once after `ms` milliseconds.
   *
   * @param keepAlive - true for a timer that a pending call waits on (a retry backoff, a per-try
   *   timeout, a hedge delay, the wait for discovery): like a pending undici request, it keeps the
   *   process alive until it fires or is cleared. False or left out for background work (watches,
   *   ejection expiry, slow start, heartbeats), which must never keep a process from exiting.
   *   A fake clock may ignore it.
   */
  setTimeout(callback: () => void, ms: number, keepAlive?: boolean): TimerHandle;
  /** Cancels a timer; unknown or fired timers are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `performance.now()` and Node timers, unref'd unless a pending call waits on them. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, ms: number, keepAlive = false): TimerHandle => {
    const timer = setTimeout(callback, ms);
    if (!keepAlive) timer.unref();
    return timer;
  },
  clearTimeout: (handle: TimerHandle): void => {
    clearTimeout(handle as NodeJS.Timeout);
  },
});

/**
 * Resolves after `ms` on the given clock (a FakeClock's when testing). For a call's waits (a backoff, an
 * injected delay): the wait keeps the process alive, as the call would if it were in flight.
 *
 * @param clock - the clock
 * @param ms - how long, in ms
 * @param signal - ends the wait early when aborted (the caller then checks `signal.aborted`)
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => clock.setTimeout(resolve, ms, true));
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms, true);
    signal.addEventListener("abort", done, { once: true });
  });
}

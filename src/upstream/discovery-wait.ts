import type { Clock } from "../core/clock.ts";
import { remainingIncomingMs } from "../core/incoming-deadline.ts";

/** How long a wait for the registry's first answer about a service may last. @internal */
export interface DiscoveryWait {
  /** When the call (or explain) began waiting, on the mesh's clock: its deadline counts from then. */
  readonly startedAt: number;
  /** Until when, on the mesh's clock. */
  readonly until: number;
  /** The call's deadline in ms, when that (not the discovery timeout) sets `until`: running out is `ERR_TIMEOUT`. */
  readonly deadlineMs: number | undefined;
}

/**
 * How long a wait for the registry may last, from now: the discovery timeout; for a call, its own
 * deadline when that comes first (the timeout of calls to the upstream, or an incoming deadline).
 *
 * @param discoveryTimeout - the mesh's discovery timeout, in ms
 * @param callTimeoutMs - for a call, gives the timeout of the upstream's plain calls (0: none); undefined for no call
 * @internal
 */
export function discoveryWait(clock: Clock, discoveryTimeout: number, callTimeoutMs: (() => number) | undefined): DiscoveryWait {
  const startedAt = clock.now();
  if (callTimeoutMs !== undefined) {
    const timeoutMs = callTimeoutMs();
    const incoming = remainingIncomingMs();
    let deadline = timeoutMs > 0 ? timeoutMs : Infinity;
    if (incoming !== undefined) deadline = Math.min(deadline, Math.max(0, incoming));
    if (deadline < discoveryTimeout) return { startedAt, until: startedAt + deadline, deadlineMs: Math.round(deadline) };
  }
  return { startedAt, until: startedAt + discoveryTimeout, deadlineMs: undefined };
}

/** The waits for an upstream's next registry update: each ends at the update, its timeout or its signal. @internal */
export class UpdateWaiters {
  readonly #waiters = new Set<() => void>();
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** How many waits are open. */
  get size(): number {
    return this.#waiters.size;
  }

  /** Ends every wait (an update came, or the upstream closed). */
  wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Resolves at the next {@link UpdateWaiters.wake}, after `timeout` ms, or when `signal` aborts. The
   * timer keeps the process alive: a call waits on it.
   */
  next(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    const clock = this.#clock;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clock.clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, timeout, true); // a call waits on it
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

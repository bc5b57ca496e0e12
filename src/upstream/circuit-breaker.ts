import { CircuitState, ConsecutiveBreaker, CountBreaker, type IBreaker } from "cockatiel";
import type { Clock } from "../core/clock.ts";
import type { BreakerOptions } from "../config/resilience-options.ts";
import { SamplingWindow } from "./sampling-window.ts";

/** A breaker's state. */
export type BreakerState = "closed" | "open" | "half-open";

/** What {@link UpstreamBreaker.allow} let a call through as (or that it refused it). @internal */
export type BreakerTicket = "call" | "probe" | "refused";

/** The default breaker: opens when at least half the calls of the last 10 s failed, once 20 calls were made. @internal */
export const BREAKER_DEFAULTS = Object.freeze({ threshold: 0.5, durationMs: 10_000, minimumCalls: 20, halfOpenAfterMs: 10_000 });

/** Counts call outcomes and says when the breaker should open. */
interface FailureCounter {
  success(state: CircuitState, now: number | undefined): void;
  /** Whether the breaker should open now. */
  failure(state: CircuitState): boolean;
}

/** A failure rate over a time window on the mesh's clock, with a minimum volume of calls. */
class RateCounter implements FailureCounter {
  readonly #window: SamplingWindow;
  readonly #threshold: number;
  readonly #minimum: number;

  constructor(clock: Clock, threshold: number, durationMs: number, minimum: number) {
    this.#window = new SamplingWindow(clock, durationMs);
    this.#threshold = threshold;
    this.#minimum = minimum;
  }

  success(state: CircuitState, now: number | undefined): void {
    if (state === CircuitState.HalfOpen) this.#window.reset();
    this.#window.record(true, now);
  }

  failure(state: CircuitState): boolean {
    this.#window.record(false);
    if (state !== CircuitState.Closed) return true;
    const total = this.#window.total;
    return total >= this.#minimum && this.#window.failures >= this.#threshold * total;
  }
}

/**
 * The circuit breaker of one upstream service. It hears one outcome per call (after its retries), and
 * only failures that are the service's: the engine leaves out those of an endpoint that outlier
 * detection has ejected or is ejecting. By default it opens when at least half the calls of the last
 * 10 s failed, once there were 20 (`kind: "sampling"`, on the mesh's clock); `consecutive` and `count`
 * use cockatiel's counters. The open / half-open / closed cycle runs on the mesh's clock: while open,
 * calls fail at once; after `halfOpenAfterMs` one probe goes through, and its outcome closes or
 * reopens it. @internal
 */
export class UpstreamBreaker {
  readonly #clock: Clock;
  readonly #counter: FailureCounter;
  readonly #halfOpenAfter: number;
  readonly #onChange: (state: BreakerState) => void;
  #state: BreakerState = "closed";
  #openedAt = 0;
  #probing = false;

  constructor(options: BreakerOptions, clock: Clock, onChange: (state: BreakerState) => void) {
    this.#clock = clock;
    this.#onChange = onChange;
    this.#halfOpenAfter = options.halfOpenAfterMs ?? BREAKER_DEFAULTS.halfOpenAfterMs;
    const kind = options.kind ?? "sampling";
    const counter: IBreaker | undefined =
      kind === "consecutive"
        ? new ConsecutiveBreaker(options.threshold ?? 5)
        : kind === "count"
          ? new CountBreaker({ threshold: options.threshold ?? 0.5, size: options.size ?? 100, minimumNumberOfCalls: options.minimumCalls ?? 10 })
          : undefined;
    this.#counter =
      counter ?? new RateCounter(clock, options.threshold ?? BREAKER_DEFAULTS.threshold, options.durationMs ?? BREAKER_DEFAULTS.durationMs, options.minimumCalls ?? BREAKER_DEFAULTS.minimumCalls);
  }

  get state(): BreakerState {
    return this.#state;
  }

  /**
   * Whether a call may go now, and as what: `call` while closed, `probe` for the one call let through
   * in half-open, `refused` otherwise. A call's outcome is told with its ticket: only the probe's
   * closes or reopens the breaker; a call let through before it opened only feeds the counter, if the
   * breaker is closed again by then.
   */
  allow(): BreakerTicket {
    if (this.#state === "closed") return "call";
    if (this.#state === "open") {
      if (this.#clock.now() - this.#openedAt < this.#halfOpenAfter) return "refused";
      this.#set("half-open");
    }
    if (this.#probing) return "refused";
    this.#probing = true;
    return "probe";
  }

  /** The time until a probe may go, in ms (0 when closed). */
  retryAfterMs(): number {
    return this.#state === "open" ? Math.max(0, this.#halfOpenAfter - (this.#clock.now() - this.#openedAt)) : 0;
  }

  /**
   * A call let through with `ticket` succeeded.
   *
   * @param now - the clock's time, if the caller read it already
   */
  success(ticket: BreakerTicket, now?: number): void {
    if (ticket === "probe") {
      if (this.#state !== "half-open") return;
      this.#probing = false;
      this.#counter.success(CircuitState.HalfOpen, now);
      this.#set("closed");
    } else if (this.#state === "closed") this.#counter.success(CircuitState.Closed, now);
  }

  /** A call let through with `ticket` failed, and the failure is the service's. */
  failure(ticket: BreakerTicket): void {
    if (ticket === "probe") {
      if (this.#state !== "half-open") return;
      this.#probing = false;
      this.#counter.failure(CircuitState.HalfOpen);
      this.#open();
    } else if (this.#state === "closed" && this.#counter.failure(CircuitState.Closed)) this.#open();
  }

  /** A call let through with `ticket` did not say (aborted by its caller, or its failure was an ejected endpoint's): a probe's slot goes to the next call. */
  release(ticket: BreakerTicket): void {
    if (ticket === "probe" && this.#state === "half-open") this.#probing = false;
  }

  #open(): void {
    this.#openedAt = this.#clock.now();
    this.#set("open");
  }

  #set(state: BreakerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#onChange(state);
  }
}

import { CircuitState, ConsecutiveBreaker, CountBreaker, SamplingBreaker, type IBreaker } from "cockatiel";
import type { Clock } from "../core/clock.ts";
import type { BreakerOptions } from "./resilience-options.ts";

/** A breaker's state. */
export type BreakerState = "closed" | "open" | "half-open";

/**
 * The circuit breaker of one upstream service. Failures are counted by cockatiel's breakers
 * (`ConsecutiveBreaker`, `CountBreaker`, `SamplingBreaker`); the open / half-open / closed cycle runs on
 * the mesh's clock, so tests drive it with a FakeClock and a call costs no promise: while open, calls
 * fail at once; after `halfOpenAfterMs` one probe goes through, and its outcome closes or reopens it.
 * @internal
 */
export class UpstreamBreaker {
  readonly #clock: Clock;
  readonly #counter: IBreaker;
  readonly #halfOpenAfter: number;
  readonly #onChange: (state: BreakerState) => void;
  #state: BreakerState = "closed";
  #openedAt = 0;
  #probing = false;

  constructor(options: BreakerOptions, clock: Clock, onChange: (state: BreakerState) => void) {
    this.#clock = clock;
    this.#onChange = onChange;
    this.#halfOpenAfter = options.halfOpenAfterMs ?? 10_000;
    const kind = options.kind ?? "consecutive";
    this.#counter =
      kind === "consecutive"
        ? new ConsecutiveBreaker(options.threshold ?? 5)
        : kind === "count"
          ? new CountBreaker({ threshold: options.threshold ?? 0.5, size: options.size ?? 100, minimumNumberOfCalls: options.minimumCalls ?? 10 })
          : new SamplingBreaker({ threshold: options.threshold ?? 0.5, duration: options.durationMs ?? 30_000, minimumRps: (options.minimumCalls ?? 10) / ((options.durationMs ?? 30_000) / 1000) });
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether a call may go now; in half-open, only the one probe may. */
  allow(): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "open") {
      if (this.#clock.now() - this.#openedAt < this.#halfOpenAfter) return false;
      this.#set("half-open");
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /** The time until a probe may go, in ms (0 when closed). */
  retryAfterMs(): number {
    return this.#state === "open" ? Math.max(0, this.#halfOpenAfter - (this.#clock.now() - this.#openedAt)) : 0;
  }

  /** A call succeeded. */
  success(): void {
    if (this.#state === "half-open") {
      this.#probing = false;
      this.#counter.success(CircuitState.HalfOpen);
      this.#set("closed");
      return;
    }
    this.#counter.success(CircuitState.Closed);
  }

  /** A call failed. */
  failure(): void {
    if (this.#state === "half-open") {
      this.#probing = false;
      this.#counter.failure(CircuitState.HalfOpen);
      this.#open();
      return;
    }
    if (this.#state === "closed" && this.#counter.failure(CircuitState.Closed)) this.#open();
  }

  /** The call let through did not say (aborted by its caller): let another probe go. */
  release(): void {
    if (this.#state === "half-open") this.#probing = false;
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

import { ConcurrencyLimit } from "./concurrency-limit.ts";
import type { Clock } from "../core/clock.ts";
import type { Random } from "../core/random.ts";
import { UpstreamBreaker, type BreakerState } from "./circuit-breaker.ts";
import { OutlierDetector, type Ejection } from "./outlier-detector.ts";
import type { GuardSettings } from "../config/resolve-policy.ts";
import { RetryBudget } from "./retry-budget.ts";

/** What a guard tells its service. @internal */
export interface GuardListener {
  ejected(ejection: Ejection): void;
  returned(id: string): void;
  breaker(state: BreakerState): void;
}

const LATENCY_SAMPLES = 128;

/**
 * Everything that protects one upstream service, shared by every call to it: the retry budget, outlier
 * detection, the circuit breaker, the concurrency limit and a window of recent
 * latencies (for hedging at a percentile). @internal
 */
export class UpstreamGuard {
  readonly settings: GuardSettings;
  readonly budget: RetryBudget;
  readonly outlier: OutlierDetector | undefined;
  readonly breaker: UpstreamBreaker | undefined;
  readonly limit: ConcurrencyLimit | undefined;
  readonly #latencies = new Float64Array(LATENCY_SAMPLES);
  #samples = 0;

  constructor(settings: GuardSettings, clock: Clock, random: Random, listener: GuardListener) {
    this.settings = settings;
    this.budget = new RetryBudget(clock, settings.budget.percent, settings.budget.minPerSecond);
    this.outlier =
      settings.outlier === false || (settings.outlier.consecutiveFailures === 0 && (settings.outlier.successRate ?? false) === false)
        ? undefined
        : new OutlierDetector(settings.outlier, clock, random, (ejected, returned) => {
            if (ejected !== undefined) listener.ejected(ejected);
            if (returned !== undefined) listener.returned(returned);
          });
    this.breaker = settings.breaker === false ? undefined : new UpstreamBreaker(settings.breaker, clock, (state) => listener.breaker(state));
    const limits = settings.limits;
    this.limit = limits?.maxConcurrent === undefined ? undefined : new ConcurrencyLimit(limits.maxConcurrent, limits.maxPending ?? 0);
  }

  /** Records how long a response took to start, for hedging at a percentile. */
  observe(ms: number): void {
    this.#latencies[this.#samples % LATENCY_SAMPLES] = ms;
    this.#samples++;
  }

  /** The latency at a percentile over the recent samples; undefined before 20 samples. */
  percentile(p: number): number | undefined {
    const n = Math.min(this.#samples, LATENCY_SAMPLES);
    if (n < 20) return undefined;
    const sorted = this.#latencies.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.floor((p / 100) * n))];
  }

  /** Stops the timers. */
  close(): void {
    this.outlier?.close();
  }
}

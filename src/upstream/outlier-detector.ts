import type { Clock, TimerHandle } from "../core/clock.ts";
import type { Random } from "../core/random.ts";
import type { OutlierOptions, SuccessRateOptions } from "../config/resilience-options.ts";

/** What the detector knows of one endpoint. */
interface EndpointRecord {
  consecutive: number;
  ejections: number;
  ejectedUntil: number;
  timer: TimerHandle;
  /** Calls and successes in the current success-rate interval. */
  calls: number;
  successes: number;
}

/** Why an endpoint was ejected. */
export type EjectionReason = "consecutive-failures" | "success-rate";

/** An ejection, as reported. @internal */
export interface Ejection {
  readonly id: string;
  readonly durationMs: number;
  /** Consecutive failures, or failures in the interval (success rate). */
  readonly failures: number;
  readonly reason: EjectionReason;
  /** The endpoint's success rate and the threshold it fell under (success rate only). */
  readonly successRate?: number;
  readonly threshold?: number;
}

/**
 * Passive outlier detection for one upstream (Envoy's consecutive-5xx detector): an endpoint whose
 * last `consecutiveFailures` calls all failed (5xx, gateway errors, connect failures) is ejected at
 * once, for `baseEjectionMs` times the number of times it has been ejected (capped, +0-10% jitter so a
 * fleet does not bring it back all at once). At most `maxEjectionPercent` of the endpoints are out at a
 * time, but always at least one may be; the service's panic threshold still applies to what is left.
 *
 * With `successRate`, Envoy's statistical detector runs too: every interval, among endpoints that had
 * at least `requestVolume` calls (if there are `minimumHosts` of them), one whose success rate is below
 * mean - `stdevFactor` x standard deviation is ejected, whatever its consecutive count.
 * @internal
 */
export class OutlierDetector {
  readonly #records = new Map<string, EndpointRecord>();
  readonly #threshold: number;
  readonly #base: number;
  readonly #max: number;
  readonly #maxPercent: number;
  readonly #enforcing: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #onChange: (ejected: Ejection | undefined, returned: string | undefined) => void;
  readonly #successRate: Required<SuccessRateOptions> | undefined;
  #ejected = 0;
  #total = 1;
  #closed = false;
  #interval: TimerHandle;

  constructor(options: OutlierOptions, clock: Clock, random: Random, onChange: (ejected: Ejection | undefined, returned: string | undefined) => void) {
    this.#threshold = options.consecutiveFailures ?? 5;
    this.#base = options.baseEjectionMs ?? 30_000;
    this.#max = options.maxEjectionMs ?? 300_000;
    this.#maxPercent = options.maxEjectionPercent ?? 10;
    this.#enforcing = options.enforcingPercent ?? 100;
    this.#clock = clock;
    this.#random = random;
    this.#onChange = onChange;
    const sr = options.successRate;
    this.#successRate =
      sr === undefined || sr === false
        ? undefined
        : { intervalMs: sr.intervalMs ?? 10_000, minimumHosts: sr.minimumHosts ?? 5, requestVolume: sr.requestVolume ?? 100, stdevFactor: sr.stdevFactor ?? 1.9 };
    if (this.#successRate !== undefined) this.#armInterval(this.#successRate.intervalMs);
  }

  /** Whether a call outcome counts toward anything (consecutive failures or success rate). */
  get active(): boolean {
    return this.#threshold > 0 || this.#successRate !== undefined;
  }

  /** Whether an endpoint is ejected now. */
  isEjected(id: string): boolean {
    const r = this.#records.get(id);
    return r !== undefined && r.ejectedUntil > this.#clock.now();
  }

  /** An endpoint's ejection record: until when it is out (the clock's time) and how often it was ejected. */
  status(id: string): { readonly ejectedUntil: number; readonly ejections: number } | undefined {
    const r = this.#records.get(id);
    return r === undefined ? undefined : { ejectedUntil: r.ejectedUntil, ejections: r.ejections };
  }

  /**
   * Whether a failure of this endpoint is outlier detection's to handle, not the service breaker's: the
   * endpoint is ejected, or its next failure in a row will eject it (the cap leaves room). A service of
   * one endpoint has no other to take its traffic: its failures are the service's. So are those of an
   * endpoint that fails often but not enough in a row to be ejected, and those beyond the ejection cap
   * (many endpoints failing at once).
   */
  accountable(id: string): boolean {
    const r = this.#records.get(id);
    if (r === undefined || this.#closed || this.#total <= 1) return false;
    if (r.ejectedUntil > this.#clock.now()) return true;
    return this.#threshold > 0 && r.consecutive >= Math.max(1, this.#threshold - 1) && this.#ejected < this.#cap();
  }

  #cap(): number {
    return Math.max(1, Math.floor((this.#total * this.#maxPercent) / 100));
  }

  /** Endpoints ejected now. */
  get ejectedCount(): number {
    return this.#ejected;
  }

  /** A call to the endpoint succeeded. */
  success(id: string): void {
    let r = this.#records.get(id);
    if (this.#successRate !== undefined && !this.#closed) {
      r ??= this.#record(id);
      r.calls++;
      r.successes++;
    }
    if (r !== undefined) r.consecutive = 0;
  }

  #record(id: string): EndpointRecord {
    const r: EndpointRecord = { consecutive: 0, ejections: 0, ejectedUntil: 0, timer: undefined, calls: 0, successes: 0 };
    this.#records.set(id, r);
    return r;
  }

  /**
   * A call to the endpoint failed.
   *
   * @param total - endpoints the service has, for the ejection cap
   * @returns whether this failure ejected it
   */
  failure(id: string, total: number): boolean {
    // Calls still in flight after close report nothing; failures while ejected do not count twice.
    if (this.#closed || this.isEjected(id)) return false;
    this.#total = total;
    const r = this.#records.get(id) ?? this.#record(id);
    r.calls++;
    if (this.#threshold === 0) return false;
    r.consecutive++;
    if (r.consecutive < this.#threshold) return false;
    const failures = r.consecutive;
    // Not enforced this time (enforcingPercent): the count starts again, as in Envoy.
    if (this.#enforcing < 100 && this.#random.next() * 100 >= this.#enforcing) {
      r.consecutive = 0;
      return false;
    }
    if (!this.#eject(id, r, failures, "consecutive-failures", undefined, undefined)) return false;
    r.consecutive = 0;
    return true;
  }

  /** Ejects an endpoint unless the cap is reached; whether it did. */
  #eject(id: string, r: EndpointRecord, failures: number, reason: EjectionReason, successRate: number | undefined, threshold: number | undefined): boolean {
    if (this.#ejected >= this.#cap()) return false;
    r.ejections++;
    const duration = Math.round(Math.min(this.#max, this.#base * r.ejections) * (1 + this.#random.next() * 0.1));
    r.ejectedUntil = this.#clock.now() + duration;
    this.#ejected++;
    const record = r;
    r.timer = this.#clock.setTimeout(() => {
      record.ejectedUntil = 0;
      this.#ejected--;
      this.#onChange(undefined, id);
    }, duration);
    this.#onChange({ id, durationMs: duration, failures, reason, ...(successRate === undefined || threshold === undefined ? {} : { successRate, threshold }) }, undefined);
    return true;
  }

  #armInterval(ms: number): void {
    this.#interval = this.#clock.setTimeout(() => {
      if (this.#closed) return;
      this.#judgeSuccessRates();
      this.#armInterval(ms);
    }, ms);
  }

  /** The success-rate detector's verdict on the interval that just ended; the counts start again. */
  #judgeSuccessRates(): void {
    const sr = this.#successRate;
    if (sr === undefined) return;
    const now = this.#clock.now();
    const judged: [string, EndpointRecord, number][] = [];
    for (const [id, r] of this.#records) {
      if (r.ejectedUntil <= now && r.calls >= sr.requestVolume) judged.push([id, r, r.successes / r.calls]);
    }
    if (judged.length >= sr.minimumHosts) {
      const mean = judged.reduce((sum, [, , rate]) => sum + rate, 0) / judged.length;
      const variance = judged.reduce((sum, [, , rate]) => sum + (rate - mean) ** 2, 0) / judged.length;
      const threshold = mean - sr.stdevFactor * Math.sqrt(variance);
      this.#total = Math.max(this.#total, judged.length);
      for (const [id, r, rate] of judged.sort((a, b) => a[2] - b[2])) {
        if (rate >= threshold) break;
        this.#eject(id, r, r.calls - r.successes, "success-rate", rate, threshold);
      }
    }
    for (const r of this.#records.values()) {
      r.calls = 0;
      r.successes = 0;
    }
  }

  /** Forgets endpoints that left the service (their timers stop). */
  retain(ids: ReadonlySet<string>): void {
    for (const [id, r] of this.#records) {
      if (ids.has(id)) continue;
      if (r.ejectedUntil > this.#clock.now()) this.#ejected--;
      this.#clock.clearTimeout(r.timer);
      this.#records.delete(id);
    }
  }

  /** Stops every timer. */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#interval);
    for (const r of this.#records.values()) this.#clock.clearTimeout(r.timer);
    this.#records.clear();
    this.#ejected = 0;
  }
}

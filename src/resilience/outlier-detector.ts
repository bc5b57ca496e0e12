import type { Clock, TimerHandle } from "../core/clock.ts";
import type { Random } from "../core/random.ts";
import type { OutlierOptions } from "./resilience-options.ts";

/** What the detector knows of one endpoint. */
interface EndpointRecord {
  consecutive: number;
  ejections: number;
  ejectedUntil: number;
  timer: TimerHandle;
}

/** An ejection, as reported. @internal */
export interface Ejection {
  readonly id: string;
  readonly durationMs: number;
  readonly failures: number;
}

/**
 * Passive outlier detection for one upstream (Envoy's consecutive-5xx detector): an endpoint whose
 * last `consecutiveFailures` calls all failed (5xx, gateway errors, connect failures) is ejected at
 * once, for `baseEjectionMs` times the number of times it has been ejected (capped, +0-10% jitter so a
 * fleet does not bring it back all at once). At most `maxEjectionPercent` of the endpoints are out at a
 * time, but always at least one may be; the service's panic threshold still applies to what is left.
 * @internal
 */
export class OutlierDetector {
  readonly #records = new Map<string, EndpointRecord>();
  readonly #threshold: number;
  readonly #base: number;
  readonly #max: number;
  readonly #maxPercent: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #onChange: (ejected: Ejection | undefined, returned: string | undefined) => void;
  #ejected = 0;
  #closed = false;

  constructor(options: OutlierOptions, clock: Clock, random: Random, onChange: (ejected: Ejection | undefined, returned: string | undefined) => void) {
    this.#threshold = options.consecutiveFailures ?? 5;
    this.#base = options.baseEjectionMs ?? 30_000;
    this.#max = options.maxEjectionMs ?? 300_000;
    this.#maxPercent = options.maxEjectionPercent ?? 10;
    this.#clock = clock;
    this.#random = random;
    this.#onChange = onChange;
  }

  /** Whether an endpoint is ejected now. */
  isEjected(id: string): boolean {
    const r = this.#records.get(id);
    return r !== undefined && r.ejectedUntil > this.#clock.now();
  }

  /** Endpoints ejected now. */
  get ejectedCount(): number {
    return this.#ejected;
  }

  /** A call to the endpoint succeeded. */
  success(id: string): void {
    const r = this.#records.get(id);
    if (r !== undefined) r.consecutive = 0;
  }

  /**
   * A call to the endpoint failed.
   *
   * @param total - endpoints the service has, for the ejection cap
   */
  failure(id: string, total: number): void {
    // Calls still in flight after close report nothing; failures while ejected do not count twice.
    if (this.#threshold === 0 || this.#closed || this.isEjected(id)) return;
    let r = this.#records.get(id);
    if (r === undefined) this.#records.set(id, (r = { consecutive: 0, ejections: 0, ejectedUntil: 0, timer: undefined }));
    r.consecutive++;
    if (r.consecutive < this.#threshold || this.isEjected(id)) return;
    const cap = Math.max(1, Math.floor((total * this.#maxPercent) / 100));
    if (this.#ejected >= cap) return;
    r.ejections++;
    const failures = r.consecutive;
    r.consecutive = 0;
    const duration = Math.round(Math.min(this.#max, this.#base * r.ejections) * (1 + this.#random.next() * 0.1));
    r.ejectedUntil = this.#clock.now() + duration;
    this.#ejected++;
    const record = r;
    r.timer = this.#clock.setTimeout(() => {
      record.ejectedUntil = 0;
      this.#ejected--;
      this.#onChange(undefined, id);
    }, duration);
    this.#onChange({ id, durationMs: duration, failures }, undefined);
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
    for (const r of this.#records.values()) this.#clock.clearTimeout(r.timer);
    this.#records.clear();
    this.#ejected = 0;
  }
}

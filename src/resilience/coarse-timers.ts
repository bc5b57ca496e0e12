import type { Clock, TimerHandle } from "../core/clock.ts";

/** Long limits are kept to this grain: a limit of at least {@link COARSE_LIMIT_MS} fires up to one grain late. @internal */
export const COARSE_GRAIN_MS = 1000;

/** Limits at least this long go on the coarse timers; shorter ones get a timer of their own. @internal */
export const COARSE_LIMIT_MS = 5000;

/** Something with a coarse deadline. @internal */
export interface Expiring {
  /** The bucket it waits in, while it does. */
  bucket: Set<Expiring> | undefined;
  /** Its time is up. */
  expire(): void;
}

/**
 * Deadlines kept in one-second buckets on the mesh's clock, one timer per bucket: a call with the
 * default 15 s limit costs a set insertion, not a timer of its own, whatever the clock (a FakeClock
 * drives them as the real one does). The buckets' timers hold no process open: what waits on them is a
 * request in flight, whose socket does. An emptied bucket's timer is cleared. @internal
 */
export class CoarseTimers {
  readonly #clock: Clock;
  readonly #buckets = new Map<number, Bucket>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Calls `item.expire()` at `at` (the clock's time), or up to a grain later. */
  add(item: Expiring, at: number): void {
    const key = Math.ceil(at / COARSE_GRAIN_MS);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = new Bucket(key);
      this.#buckets.set(key, bucket);
      bucket.timer = this.#clock.setTimeout(() => this.#fire(key), Math.max(0, key * COARSE_GRAIN_MS - this.#clock.now()), false);
    }
    bucket.add(item);
    item.bucket = bucket;
  }

  /** Forgets an item (its call went on or ended). */
  remove(item: Expiring): void {
    const bucket = item.bucket as Bucket | undefined;
    item.bucket = undefined;
    if (bucket === undefined) return;
    bucket.delete(item);
    // An empty bucket leaves no timer behind (a FakeClock's pendingTimers counts only what matters).
    if (bucket.size === 0 && this.#buckets.get(bucket.key) === bucket) {
      this.#buckets.delete(bucket.key);
      this.#clock.clearTimeout(bucket.timer);
    }
  }

  #fire(key: number): void {
    const bucket = this.#buckets.get(key);
    this.#buckets.delete(key);
    if (bucket === undefined) return;
    for (const item of bucket) {
      item.bucket = undefined;
      item.expire();
    }
  }
}

/** The items due in one grain, and its timer. */
class Bucket extends Set<Expiring> {
  readonly key: number;
  timer: TimerHandle = undefined;
  constructor(key: number) {
    super();
    this.key = key;
  }
}

const timers = new WeakMap<Clock, CoarseTimers>();

/** The coarse timers of a clock (one set per clock). @internal */
export function coarseTimersOf(clock: Clock): CoarseTimers {
  let found = timers.get(clock);
  if (found === undefined) timers.set(clock, (found = new CoarseTimers(clock)));
  return found;
}

import type { Clock, TimerHandle } from "../core/clock.ts";

/** Long limits are kept to this grain: a limit of at least {@link COARSE_LIMIT_MS} fires up to one grain late. @internal */
export const COARSE_GRAIN_MS = 1000;

/** Limits at least this long go on the coarse timers; shorter ones get a timer of their own. @internal */
export const COARSE_LIMIT_MS = 5000;

/** Something with a coarse deadline: a link in its bucket's list while it waits. @internal */
export interface Expiring {
  /** The bucket it waits in, while it does. */
  bucket: Bucket | undefined;
  /** Its neighbours in the bucket's list. */
  prev: Expiring | undefined;
  next: Expiring | undefined;
  /** Its time is up. */
  expire(): void;
}

/** The items due in one grain (a list threaded through the items themselves: no allocation per item), and its timer. @internal */
export interface Bucket {
  readonly key: number;
  head: Expiring | undefined;
  timer: TimerHandle;
}

/**
 * Deadlines kept in one-second buckets on the mesh's clock, one timer per bucket: a call with the
 * default 15 s limit costs a few field writes, not a timer of its own, whatever the clock (a FakeClock
 * drives them as the real one does). The buckets' timers hold no process open: what waits on them is a
 * request in flight, whose socket does. An emptied bucket stays, with its timer, until that fires, so
 * that calls made one at a time share a timer per second rather than making one each. @internal
 */
export class CoarseTimers {
  readonly #clock: Clock;
  readonly #buckets = new Map<number, Bucket>();
  /** The bucket added to last (most adds land in the same one). */
  #last: Bucket | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Calls `item.expire()` at `at` (the clock's time), or up to a grain later. */
  add(item: Expiring, at: number): void {
    const key = Math.ceil(at / COARSE_GRAIN_MS);
    let bucket = this.#last;
    if (bucket === undefined || bucket.key !== key) {
      bucket = this.#buckets.get(key);
      if (bucket === undefined) {
        const fresh: Bucket = { key, head: undefined, timer: undefined };
        fresh.timer = this.#clock.setTimeout(() => this.#fire(fresh), Math.max(0, key * COARSE_GRAIN_MS - this.#clock.now()), false);
        this.#buckets.set(key, fresh);
        bucket = fresh;
      }
      this.#last = bucket;
    }
    item.bucket = bucket;
    item.prev = undefined;
    item.next = bucket.head;
    if (bucket.head !== undefined) bucket.head.prev = item;
    bucket.head = item;
  }

  /** Forgets an item (its call went on or ended). */
  remove(item: Expiring): void {
    const bucket = item.bucket;
    if (bucket === undefined) return;
    item.bucket = undefined;
    if (item.prev === undefined) bucket.head = item.next;
    else item.prev.next = item.next;
    if (item.next !== undefined) item.next.prev = item.prev;
    item.prev = item.next = undefined;
    // An emptied bucket keeps its timer, which finds it empty when it fires: one call at a time empties
    // its bucket at every call, and clearing the timer there made the next call create another (a timer
    // per call; 19,629 for about 40,000 calls at concurrency 1). The timer holds no process open.
  }

  #fire(bucket: Bucket): void {
    this.#buckets.delete(bucket.key);
    if (this.#last === bucket) this.#last = undefined;
    // Detached whole before any expires: an expiry may end (and remove) another item of the bucket.
    const due: Expiring[] = [];
    for (let item = bucket.head; item !== undefined; item = item.next) due.push(item);
    bucket.head = undefined;
    for (const item of due) item.bucket = item.prev = item.next = undefined;
    for (const item of due) item.expire();
  }
}

const timers = new WeakMap<Clock, CoarseTimers>();
let lastClock: Clock | undefined;
let lastTimers: CoarseTimers | undefined;

/** The coarse timers of a clock (one set per clock). @internal */
export function coarseTimersOf(clock: Clock): CoarseTimers {
  if (clock === lastClock && lastTimers !== undefined) return lastTimers;
  let found = timers.get(clock);
  if (found === undefined) timers.set(clock, (found = new CoarseTimers(clock)));
  lastClock = clock;
  lastTimers = found;
  return found;
}

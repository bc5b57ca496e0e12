import { AsyncLocalStorage } from "node:async_hooks";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { setImmediate as yieldToIo } from "node:timers/promises";
import { channels, type PickMessage } from "proxyless";
import { LatencyRecorder } from "./latency-recorder.ts";

/** What one call ended with: `ok`, or a failure key (`status_503`, a mesh code, `grpc_UNAVAILABLE`, ...). */
export type Outcome = string;

/** Sends one call of the mix; never rejects (failures are outcomes). */
export type CallFn = (post: boolean, id: string) => Promise<Outcome>;

/** The figures of a {@link Tally}, as the report writes them. */
export interface TallyJson {
  readonly calls: number;
  readonly failed: number;
  readonly get_calls: number;
  readonly get_ok: number;
  /** null when there was no GET. */
  readonly get_success_rate: number | null;
  readonly post_calls: number;
  readonly post_ok: number;
  readonly post_success_rate: number | null;
  /** Calls by outcome: `ok`, `status_503`, a mesh code, `grpc_<STATUS>`, an undici code. */
  readonly outcomes: Readonly<Record<string, number>>;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

/** Counts of the calls that ended in one part of a phase. */
export class Tally {
  calls = 0;
  readonly get = { calls: 0, ok: 0 };
  readonly post = { calls: 0, ok: 0 };
  readonly outcomes: Record<string, number> = {};
  readonly #latency = new LatencyRecorder();
  #maxMs = 0;

  /**
   * Counts one call.
   *
   * @param post - whether it was a POST
   * @param outcome - how it ended
   * @param ms - how long it took
   */
  add(post: boolean, outcome: Outcome, ms: number): void {
    this.calls++;
    const m = post ? this.post : this.get;
    m.calls++;
    if (outcome === "ok") m.ok++;
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    this.#latency.add(ms);
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  /** Calls that did not end `ok`. */
  get failed(): number {
    return this.calls - this.get.ok - this.post.ok;
  }

  /** The figures, for the report. */
  toJson(): TallyJson {
    const { p50, p99 } = this.calls > 0 ? this.#latency.percentiles() : { p50: 0, p99: 0 };
    const rate = (ok: number, n: number): number | null => (n === 0 ? null : Math.round((ok / n) * 1e6) / 1e6);
    return {
      calls: this.calls,
      failed: this.failed,
      get_calls: this.get.calls,
      get_ok: this.get.ok,
      get_success_rate: rate(this.get.ok, this.get.calls),
      post_calls: this.post.calls,
      post_ok: this.post.ok,
      post_success_rate: rate(this.post.ok, this.post.calls),
      outcomes: { ...this.outcomes },
      p50_ms: Math.round(p50 * 100) / 100,
      p99_ms: Math.round(p99 * 100) / 100,
      max_ms: Math.round(this.#maxMs * 100) / 100,
    };
  }
}

/** One call of a tracked load: when it ran, and the endpoint of each of its attempts. */
export interface CallRecord {
  readonly post: boolean;
  readonly id: string;
  readonly start: number;
  end: number;
  outcome: string;
  /** `[performance.now(), endpoint id]` per attempt, from the mesh's `proxyless:pick` channel. */
  readonly picks: [number, string][];
}

const current = new AsyncLocalStorage<CallRecord>();
const onPick = (message: unknown): void => {
  // Published synchronously inside the call's own async context: the store is the call's record.
  current.getStore()?.picks.push([performance.now(), (message as PickMessage).endpoint.id]);
};

/**
 * A closed loop of `concurrency` callers, each sending the next call as soon as its last one ended:
 * a share of the calls are POSTs with a unique id, the rest GETs. Calls that end before
 * {@link ClosedLoad.windowStart} count in `before`, the others in `window`.
 */
export class ClosedLoad {
  readonly before = new Tally();
  readonly window = new Tally();
  /** When the measured window began (`performance.now()`); calls ending from then on count in it. */
  windowStart = Number.POSITIVE_INFINITY;
  /** When the loops were told to stop starting calls. */
  stoppedAt = Number.NaN;
  inFlight = 0;
  /** With tracking: every call that ended in the window or is still in flight. */
  readonly records: CallRecord[] = [];
  readonly #track: boolean;
  #stopping = false;
  #seq = 0;
  readonly #done: Promise<void>;

  /**
   * Starts the loops.
   *
   * @param call - sends one call
   * @param concurrency - how many loops
   * @param postShare - the share of calls that are POSTs, drawn at random (a fixed pattern such as every
   *   fifth call would line up with round robin over ten instances and never send a POST to some)
   * @param random - a number in [0, 1) per call
   * @param idPrefix - prefix of the POST ids (unique per phase)
   * @param track - record each call and the endpoints its attempts went to (HTTP paths only: the
   *   mesh publishes picks on `proxyless:pick` for them; subscribing makes every call carry telemetry,
   *   so only the scenario that needs it tracks)
   */
  constructor(call: CallFn, concurrency: number, postShare: number, random: () => number, idPrefix: string, track = false) {
    this.#track = track;
    if (track) subscribe(channels.pick, onPick);
    const loop = async (): Promise<void> => {
      while (!this.#stopping) {
        const n = this.#seq++;
        const post = random() < postShare;
        const id = `${idPrefix}-${n}`;
        const start = performance.now();
        this.inFlight++;
        let outcome: Outcome;
        if (track) {
          const record: CallRecord = { post, id, start, end: Number.POSITIVE_INFINITY, outcome: "in flight", picks: [] };
          this.records.push(record);
          outcome = await current.run(record, () => call(post, id));
          record.end = performance.now();
          record.outcome = outcome;
          // Keep what the window needs: calls that ended before it go.
          if (record.end < this.windowStart && this.records.length > 4096) this.#prune();
        } else outcome = await call(post, id);
        this.inFlight--;
        const end = performance.now();
        (end >= this.windowStart ? this.window : this.before).add(post, outcome, end - start);
        // A call that fails at once (an open breaker) must not starve the event loop.
        if (outcome !== "ok") await yieldToIo();
      }
    };
    this.#done = Promise.all(Array.from({ length: concurrency }, loop)).then(() => undefined);
  }

  /**
   * Stops starting calls and waits for the ones in flight, at most `capMs`.
   *
   * @param capMs - how long to wait for them
   * @returns how long the wait took and how many calls were still in flight when it ended
   */
  async stop(capMs: number): Promise<{ readonly drainMs: number; readonly unsettled: number }> {
    this.#stopping = true;
    this.stoppedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const cap = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, capMs);
    });
    await Promise.race([this.#done, cap]);
    clearTimeout(timer);
    if (this.#track) unsubscribe(channels.pick, onPick);
    return { drainMs: performance.now() - this.stoppedAt, unsettled: this.inFlight };
  }

  #prune(): void {
    const keep = this.records.filter((r) => r.end >= this.windowStart);
    this.records.length = 0;
    this.records.push(...keep);
  }
}

/**
 * The tracked calls in flight at `t` whose latest attempt before `t` went to `endpoint`.
 *
 * @param records - a tracked load's records
 * @param t - a moment (`performance.now()`)
 * @param endpoint - the endpoint's id
 */
export function inFlightOn(records: readonly CallRecord[], t: number, endpoint: string): CallRecord[] {
  return records.filter((r) => {
    if (r.start > t || r.end < t) return false;
    let last: string | undefined;
    for (const [at, id] of r.picks) if (at <= t) last = id;
    return last === endpoint;
  });
}

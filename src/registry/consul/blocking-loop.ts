import { EventEmitter } from "node:events";
import type { Clock, TimerHandle } from "../../core/clock.ts";
import type { Random } from "../../core/random.ts";
import { TokenBucket } from "./token-bucket.ts";

/** How a loop paces itself. @internal */
export interface LoopSettings {
  readonly url: string;
  readonly waitSeconds: number;
  readonly burst: number;
  readonly queriesPerSecond: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly clock: Clock;
  readonly random: Random;
}

/** One answer of a blocking query: its `X-Consul-Index` and its body (undefined for a 404). @internal */
export interface BlockingAnswer {
  readonly index: number;
  readonly body: unknown;
  /** Whether Consul left out what the ACL token may not read (`X-Consul-Results-Filtered-By-ACLs: true`). */
  readonly filteredByAcls?: boolean;
}

/**
 * Sends one blocking query at `index`, waiting at most `waitSeconds`. `cancel` emits `cancel` when the
 * loop stops: the query must then end. @internal
 */
export type BlockingFetch = (index: number, waitSeconds: number, cancel: EventEmitter) => Promise<BlockingAnswer>;

/**
 * A blocking-query loop with Consul's rules: an index of 0 blocks on 1, an index that goes backwards
 * restarts at 0, a token bucket (burst, then `queriesPerSecond`) so churn degrades into polling, and
 * jittered exponential backoff after failures. The answer handler may throw to count an answer as a
 * failure (a body of the wrong shape). @internal
 */
export class BlockingLoop {
  readonly #what: string;
  readonly #settings: LoopSettings;
  readonly #fetch: BlockingFetch;
  readonly #onAnswer: (body: unknown) => void;
  readonly #onError: (error: Error) => void;
  readonly #bucket: TokenBucket;
  #index = 0;
  #failures = 0;
  #stopped = false;
  #timer: TimerHandle;
  #cancel: EventEmitter | undefined;
  #lastSuccess: number | undefined;
  #failingSince: number | undefined;

  /**
   * @param what - what is queried, for error messages (`'orders'`)
   * @param settings - pacing
   * @param fetch - sends one query
   * @param onAnswer - handles a body; throws when it cannot be used
   * @param onError - told of every failure, with the Consul URL in the message
   */
  constructor(what: string, settings: LoopSettings, fetch: BlockingFetch, onAnswer: (body: unknown) => void, onError: (error: Error) => void) {
    this.#what = what;
    this.#settings = settings;
    this.#fetch = fetch;
    this.#onAnswer = onAnswer;
    this.#onError = onError;
    this.#bucket = new TokenBucket(settings.clock, settings.burst, settings.queriesPerSecond);
  }

  /** The clock's time of the last usable answer. */
  get lastSuccess(): number | undefined {
    return this.#lastSuccess;
  }

  /** The clock's time of the first failure since the last usable answer; undefined while queries succeed. */
  get failingSince(): number | undefined {
    return this.#failingSince;
  }

  /** Sends the first query. */
  start(): void {
    this.#next(0);
  }

  /** Ends the query in flight and stops. */
  stop(): void {
    this.#stopped = true;
    this.#settings.clock.clearTimeout(this.#timer);
    this.#cancel?.emit("cancel");
  }

  #next(delay: number): void {
    if (this.#stopped) return;
    const wait = delay > 0 ? delay : this.#bucket.take();
    if (wait > 0) {
      this.#timer = this.#settings.clock.setTimeout(() => this.#next(0), wait);
      return;
    }
    void this.#query();
  }

  async #query(): Promise<void> {
    const cancel = new EventEmitter();
    this.#cancel = cancel;
    let answer: BlockingAnswer;
    try {
      // After a failure the first query does not block (index 0): Consul answers at once, so the loop
      // knows it is back (and catches what changed meanwhile) without waiting for the next change.
      answer = await this.#fetch(this.#failingSince === undefined ? this.#index : 0, this.#settings.waitSeconds, cancel);
      if (this.#stopped) return;
      if (!Number.isFinite(answer.index) || answer.index < 0) throw new Error(`Consul sent no usable X-Consul-Index (${String(answer.index)})`);
      this.#onAnswer(answer.body);
    } catch (err) {
      if (!this.#stopped) this.#fail(err);
      return;
    }
    // Consul's rules: never block on an index below 1 (0 would make every query return at once: block
    // on 1, which is always safe); an index that goes backwards restarts the loop at 0.
    this.#index = answer.index === 0 ? 1 : answer.index < this.#index ? 0 : answer.index;
    this.#lastSuccess = this.#settings.clock.now();
    this.#failingSince = undefined;
    this.#failures = 0;
    this.#next(0);
  }

  #fail(err: unknown): void {
    this.#failures++;
    this.#failingSince ??= this.#settings.clock.now();
    this.#onError(new Error(`Consul at ${this.#settings.url} failed for ${this.#what}: ${describeFailure(err)}`, { cause: err }));
    const { initialBackoffMs, maxBackoffMs, random } = this.#settings;
    const base = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (this.#failures - 1));
    // Between half and all of the delay: a fleet retrying together spreads out.
    this.#next(Math.max(1, Math.round(base * (0.5 + random.next() * 0.5))));
  }
}

function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = (err as { statusCode?: unknown }).statusCode;
  if (status === 403) return `permission denied (HTTP 403: ${err.message}); check the ACL token`;
  if (typeof status === "number") return `HTTP ${status}: ${err.message}`;
  return err.message;
}

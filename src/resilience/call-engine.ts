import type { Clock, TimerHandle } from "../core/clock.ts";
import { asArgumentError } from "../core/request-arguments.ts";
import { meshClosedError } from "../upstream/upstream-errors.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { classifyError, type FailureKind } from "./classify.ts";
import { COARSE_LIMIT_MS, coarseTimersOf, type Bucket, type CoarseTimers, type Expiring } from "./coarse-timers.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import type { BreakerTicket } from "../upstream/circuit-breaker.ts";
import type { ConcurrencyLimit } from "../upstream/concurrency-limit.ts";
import type { UpstreamGuard } from "../upstream/upstream-guard.ts";
import { backoff, budgetExhaustedError, circuitOpenError, budgetSpent, limitError, retriesFailure, retriesStatus, timeoutError } from "./retry-rules.ts";

/** What the engine says of an attempt's response: give it to the caller, read and drop it (a retry follows), or abort it. @internal */
export type Verdict = "deliver" | "discard" | "drop";

/** What the engine needs of an endpoint handle: its endpoint's id (outlier detection's key). @internal */
export interface EngineTarget {
  readonly endpoint: { readonly id: string };
  /** Its load, which counts the attempts answered with a server error. */
  readonly load: { answeredWithError(): void };
}

/** Picks the endpoint of each attempt, preferring ones not in `tried`. @internal */
export type AttemptPicker<H> = (tried: ReadonlySet<H>) => H;

/** What the engine tells the call's telemetry. @internal */
export interface EngineTrace<H> {
  ejected(handle: H): void;
  budgetExhausted(): void;
}

/** What an adapter says about its request, for the retry and hedge rules. @internal */
export interface RequestShape {
  /** It may be sent twice (an idempotent method, or an idempotency key). */
  readonly idempotent: boolean;
  /** Its body can be sent again (none, or buffered within the limit). */
  readonly replayable: boolean;
  /** A second attempt may race the first (hedging): idempotent, replayable, and not an upgrade or a stream. */
  readonly hedgeable: boolean;
  /** The caller's own limit on the call in ms from now (an incoming deadline, a gRPC deadline), if any. */
  readonly callerLimitMs: number | undefined;
  /** The policy's timeout applies even when no layer set it (HTTP: yes; gRPC: only a timeout set on purpose). */
  readonly defaultTimeout: boolean;
}

/** Why an attempt was given up by its call (lost a hedge race, the call ended, or the caller aborted). @internal */
export class AttemptCancelled extends Error {
  readonly code = "UND_ERR_ABORTED";
}

const EMPTY = new Set<never>();

/** One attempt of a call: what the engine keeps of it. Adapters extend it with their protocol's side. @internal */
export class EngineAttempt<H extends EngineTarget> implements Expiring {
  readonly handle: H;
  /** A hedge (sent beside the first attempt) rather than a retry. */
  readonly hedge: boolean;
  /** How many attempts of the call went before it. */
  readonly resend: number;
  /** When it was sent, on the mesh's clock. */
  sentAt = 0;
  /** When its time runs out, on the mesh's clock. */
  until = Infinity;
  /** The call's remaining deadline to tell the upstream, in ms, when it is told. */
  tellMs: number | undefined = undefined;
  /** Whether it still counts for its call (not given up, not done with). */
  live = true;
  /** Its time ran out (the per-try or the call's limit). */
  timedOut = false;
  timer: TimerHandle = undefined;
  bucket: Bucket | undefined = undefined;
  prev: Expiring | undefined = undefined;
  next: Expiring | undefined = undefined;
  /** Set by the engine when the attempt waits on a coarse limit: told when it expires. */
  engine: { expired(attempt: never): void } | undefined = undefined;

  constructor(handle: H, hedge: boolean, resend: number) {
    this.handle = handle;
    this.hedge = hedge;
    this.resend = resend;
  }

  expire(): void {
    (this.engine as { expired(attempt: EngineAttempt<H>): void } | undefined)?.expired(this);
  }
}

/**
 * One call, from its first attempt to the outcome the caller gets: the one engine behind `request()`,
 * `fetch()`, `mesh.dispatcher` and gRPC. It owns every rule of a call, once, on the mesh's clock:
 *
 * - the lifecycle: a closed mesh refuses (`ERR_MESH_CLOSED` wins over any other answer), the
 *   concurrency limit (a slot, held until the response ends), the caller's abort;
 * - the deadline (the policy's timeout, the caller's own limit), told downstream when set on purpose,
 *   and the per-try timeout;
 * - retries to endpoints not yet tried, with full-jitter backoff (or `Retry-After`), drawn from the
 *   retry budget; never a second send of what may not be sent twice;
 * - hedging: a second attempt after a delay, the first answer winning;
 * - reports: every attempt's outcome to outlier detection, the call's outcome (after retries) to the
 *   breaker, leaving out failures that are an ejected (or ejecting) endpoint's.
 *
 * An adapter subclass translates: it sends attempts on its protocol and reports their outcomes
 * ({@link EngineCall.responded}, {@link EngineCall.failed}), and acts on the engine's verdicts. It
 * decides nothing. @internal
 */
export abstract class EngineCall<H extends EngineTarget, A extends EngineAttempt<H>> {
  readonly state: UpstreamView;
  readonly policy: CallPolicy;
  /** The upstream's protections (budget, breaker, outlier detection, limits), read once per call. */
  readonly guard: UpstreamGuard;
  /** The mesh's clock. */
  readonly clock: Clock;
  readonly #pick: AttemptPicker<H>;
  readonly #shape: RequestShape;
  /** When the call began (a wait for the registry before it counts), on the mesh's clock. */
  readonly start: number;
  /** The call's limit in ms (Infinity: none). */
  total = Infinity;
  /** Whether the deadline is told downstream. */
  #tell = false;
  /** The call's telemetry, set by the adapter. */
  trace: EngineTrace<H> | undefined = undefined;
  /** Retries made so far. */
  retries = 0;
  #attempts = 0;
  /** Whether the budget refused a retry this call wanted (its failure is then ERR_RETRY_BUDGET_EXHAUSTED). */
  budgetDenied = false;
  /** The attempts in flight: the first, and a hedge beside it (never more than two at once). */
  #a: A | undefined;
  #b: A | undefined;
  #tried: Set<H> | undefined;
  #winner: A | undefined;
  #done = false;
  #aborted: Error | undefined;
  /** What the breaker let the call through as, until it has heard how the call went ("refused": nothing owed). */
  #ticket: BreakerTicket = "refused";
  #timer: TimerHandle;
  #discardWait = 0;
  /** The attempt whose response is being read and dropped (a retry follows), if any. */
  #discarding: A | undefined;
  /** The concurrency limit whose slot the call holds, until it ends. */
  #slot: ConcurrencyLimit | undefined;
  /** The concurrency limit the call waits in, while it is queued. */
  #queuedIn: ConcurrencyLimit | undefined;
  readonly #coarse: CoarseTimers;
  /** When the call object was made, on the mesh's clock: its first attempt's time unless it queued. */
  readonly #createdAt: number;

  /**
   * @param startedAt - when the call began, if it waited (for the registry) before: its deadline counts from then
   */
  constructor(state: UpstreamView, policy: CallPolicy, pick: AttemptPicker<H>, shape: RequestShape, startedAt: number | undefined) {
    this.state = state;
    this.policy = policy;
    this.guard = state.guard;
    const clock = (this.clock = state.env.clock);
    this.#pick = pick;
    this.#shape = shape;
    const now = (this.#createdAt = clock.now());
    this.start = startedAt ?? now;
    this.#coarse = coarseTimersOf(clock);
  }

  /** A new attempt object of the adapter's kind. */
  protected abstract attempt(handle: H, hedge: boolean, resend: number): A;
  /** Sends an attempt; its outcome comes back through responded() or failed() (perhaps before this returns). */
  protected abstract send(attempt: A): void;
  /** Gives an attempt up (lost, timed out, or the call ended): the adapter aborts its request. */
  protected abstract cancel(attempt: A, reason: Error): void;
  /** The call failed before any response was the caller's. */
  protected abstract fail(error: Error): void;

  /** Whether the call is over for the engine. */
  get done(): boolean {
    return this.#done;
  }

  /** The caller's abort, if it aborted. */
  get aborted(): Error | undefined {
    return this.#aborted;
  }

  /** Whether this attempt's response is the caller's. */
  isWinner(attempt: A): boolean {
    return this.#winner === attempt;
  }

  /** Starts the call: refused if the mesh is closed, queued for a slot if the upstream has limits. */
  run(): void {
    const state = this.state;
    if (state.closing) {
      this.#end(meshClosedError(), false, undefined);
      return;
    }
    const limit = this.guard.limit;
    if (limit === undefined) {
      this.#begin(this.#createdAt);
      return;
    }
    const slot = limit.acquire(this);
    if (slot === "granted") {
      this.#slot = limit;
      this.#begin(this.#createdAt);
      return;
    }
    if (slot === "refused") {
      this.#end(limitError(state, limit), false, undefined);
      return;
    }
    // Queued: the deadline counts the wait for a slot; an abort or the deadline leaves the queue.
    this.#queuedIn = limit;
    const ms = this.#limit();
    if (Number.isFinite(ms)) {
      const clock = this.clock;
      this.#timer = clock.setTimeout(() => {
        this.#timer = undefined;
        this.#end(timeoutError(state, ms, 0, undefined), false, undefined);
      }, Math.max(0, this.start + ms - clock.now()), true);
    }
  }

  /** A slot of the upstream's concurrency limit is this call's now (the limit, for a queued call). @internal */
  granted(): void {
    const limit = this.#queuedIn;
    this.#queuedIn = undefined;
    this.#slot = limit;
    this.#clearTimer();
    this.#begin(this.clock.now());
  }

  #limit(): number {
    const policy = this.policy;
    const own = policy.timeoutMs > 0 && (this.#shape.defaultTimeout || policy.explicitTimeout) ? policy.timeoutMs : Infinity;
    const caller = this.#shape.callerLimitMs;
    return caller === undefined ? own : Math.min(own, Math.max(0, caller));
  }

  /** @param now - the clock's time */
  #begin(now: number): void {
    if (this.#done) return;
    const state = this.state;
    if (state.closing) {
      this.#end(meshClosedError(), false, undefined);
      return;
    }
    this.total = this.#limit();
    this.#tell = this.policy.explicitTimeout || this.#shape.callerLimitMs !== undefined;
    if (this.total <= now - this.start) {
      this.#end(timeoutError(state, this.total, 0, undefined), false, undefined);
      return;
    }
    const guard = this.guard;
    const breaker = guard.breaker;
    if (breaker !== undefined) {
      const ticket = breaker.allow();
      if (ticket === "refused") {
        this.#end(circuitOpenError(state, breaker), false, undefined);
        return;
      }
      this.#ticket = ticket;
    }
    guard.budget.request(now);
    const first = this.#launch(undefined, undefined, now);
    // No hedge for a call that ended already (its first attempt failed at once).
    if (first === undefined || this.#done || !this.#shape.hedgeable) return;
    const hedging = this.policy.hedging;
    if (hedging === undefined) return;
    const delay = hedging.delayMs ?? guard.percentile(hedging.percentile ?? 95);
    if (delay !== undefined) this.#timer = this.clock.setTimeout(() => this.#hedge(first), Math.max(0, delay), true);
  }

  /** Time left of the call's deadline, in ms. */
  remaining(): number {
    return this.start + this.total - this.clock.now();
  }

  /**
   * Sends an attempt to an endpoint not yet tried; undefined when the call ended instead.
   *
   * @param handle - the endpoint (a hedge's), else one is picked
   * @param until - when the attempt's time ends (a hedge shares its first attempt's), else the per-try limit from now
   */
  #launch(handle: H | undefined, until: number | undefined, at?: number): A | undefined {
    const state = this.state;
    let chosen: H;
    try {
      chosen = handle ?? this.#pick(this.#tried ?? EMPTY);
    } catch (err) {
      this.#end(err as Error, false, undefined);
      return undefined;
    }
    const clock = this.clock;
    const now = at ?? clock.now();
    const remaining = this.start + this.total - now;
    if (remaining <= 0) {
      this.#end(timeoutError(state, this.total, this.#attempts, undefined), false, undefined);
      return undefined;
    }
    const perTryMs = this.policy.perTryTimeoutMs;
    const limit = until !== undefined ? Math.max(1, Math.min(until - now, remaining)) : perTryMs > 0 ? Math.min(perTryMs, remaining) : remaining;
    const attempt = this.attempt(chosen, handle !== undefined, this.#attempts++);
    attempt.sentAt = now;
    attempt.until = now + limit;
    if (this.#tell && Number.isFinite(remaining)) attempt.tellMs = remaining;
    if (this.#a === undefined) this.#a = attempt;
    else this.#b = attempt;
    if (Number.isFinite(limit)) {
      if (limit < COARSE_LIMIT_MS) attempt.timer = clock.setTimeout(() => this.#timedOut(attempt), Math.max(1, Math.ceil(limit)), true);
      else {
        attempt.engine = this;
        this.#coarse.add(attempt, attempt.until);
      }
    }
    try {
      this.send(attempt);
    } catch (err) {
      this.failed(attempt, err as Error);
    }
    return attempt;
  }

  /** The hedge: a second attempt to another endpoint, if the first has not answered by now. */
  #hedge(first: A): void {
    this.#timer = undefined;
    if (this.#done || this.#winner !== undefined || this.#a !== first || this.#b !== undefined) return;
    let second: H;
    try {
      second = this.#pick(new Set([first.handle]));
    } catch {
      return; // no endpoint for a hedge (the service emptied meanwhile): the first attempt carries on alone
    }
    if (second === first.handle) return; // nowhere else to go
    if (!this.guard.budget.tryRetry()) {
      this.#budgetSpent();
      return;
    }
    this.#launch(second, first.until);
  }

  /** An attempt's coarse limit expired (the coarse timers, through the attempt). @internal */
  expired(attempt: A): void {
    this.#timedOut(attempt);
  }

  #timedOut(attempt: A): void {
    attempt.timer = undefined;
    if (!attempt.live || this.#done) return;
    attempt.timedOut = true;
    const ms = Math.round(attempt.until - attempt.sentAt);
    this.failed(attempt, timeoutError(this.state, ms, this.#attempts, undefined), "timeout");
  }

  #stopTimer(attempt: A): void {
    if (attempt.timer !== undefined) {
      this.clock.clearTimeout(attempt.timer);
      attempt.timer = undefined;
    }
    if (attempt.bucket !== undefined) this.#coarse.remove(attempt);
  }

  /** Takes an attempt out of the running ones: it no longer counts. */
  #retire(attempt: A): void {
    attempt.live = false;
    this.#stopTimer(attempt);
    if (this.#a === attempt) {
      this.#a = this.#b;
      this.#b = undefined;
    } else if (this.#b === attempt) this.#b = undefined;
    (this.#tried ??= new Set()).add(attempt.handle);
  }

  /** The outlier detector hears of a failed attempt (and the call's span of an ejection). */
  #outlierFailure(handle: H): void {
    const state = this.state;
    if (this.guard.outlier?.failure(handle.endpoint.id, state.endpoints?.size ?? 1) === true) this.trace?.ejected(handle);
  }

  /** Whether the request may be sent again after this outcome. */
  #mayResend(failure: FailureKind | undefined, unprocessed: boolean): boolean {
    const shape = this.#shape;
    if (!shape.replayable) return false;
    // A connect failure (or an answer that says so) means nothing was processed: any method may go again.
    return failure === "connect-failure" || unprocessed || this.policy.retryNonIdempotent || shape.idempotent;
  }

  #budgetSpent(): void {
    budgetSpent(this.state, this.trace);
  }

  /**
   * An attempt's response began (HTTP headers, a gRPC status or first streamed message), with its status
   * (gRPC's as its HTTP equivalent). The verdict: `deliver` (the caller's; every other attempt is
   * given up), `discard` (read and drop it, then call {@link EngineCall.discarded}: a retry follows), or
   * `drop` (abort it: it lost, or the call is over).
   *
   * @param retryAfterMs - what the response asks to wait before a retry (`Retry-After`), if anything
   * @param unprocessed - the response says the request was not processed (gRPC UNAVAILABLE): any method may go again
   * @param at - when it came, on the mesh's clock, if the adapter read the clock already
   */
  responded(attempt: A, status: number, retryAfterMs?: number, unprocessed = false, at?: number): Verdict {
    if (!attempt.live || this.#done) return "drop";
    this.#stopTimer(attempt);
    const state = this.state;
    const guard = this.guard;
    const now = at ?? this.clock.now();
    const id = attempt.handle.endpoint.id;
    if (status < 500) {
      guard.observe(now - attempt.sentAt);
      guard.outlier?.success(id);
    } else {
      attempt.handle.load.answeredWithError();
      this.#outlierFailure(attempt.handle);
    }
    const policy = this.policy;
    if (retriesStatus(policy, status)) {
      if (this.#b !== undefined) {
        if (status >= 500) {
          // The other attempt of a hedge may still do better: this one is dropped.
          this.#retire(attempt);
          return "drop";
        }
      } else if (this.retries < policy.maxRetries && this.#mayResend(undefined, unprocessed)) {
        const wait = Math.max(backoff(policy, this.retries, state.env.random), retryAfterMs ?? 0);
        if (this.remaining() > wait) {
          if (guard.budget.tryRetry()) {
            this.#retire(attempt);
            this.retries++;
            this.#discardWait = wait;
            this.#clearTimer(); // no hedge while this answer is read and dropped: the retry follows it
            this.#discarding = attempt;
            // Reading it counts against the call's deadline: an answer that drips must not hold the call.
            const left = this.remaining();
            if (Number.isFinite(left)) {
              this.#timer = this.clock.setTimeout(() => {
                this.#timer = undefined;
                this.#end(timeoutError(state, this.total, this.#attempts, undefined), true, attempt.handle);
              }, Math.max(1, Math.ceil(left)), true);
            }
            return "discard";
          }
          this.budgetDenied = true;
          this.#budgetSpent();
        }
      }
    }
    // The winner: every other attempt is given up, and the caller hears this one.
    this.#winner = attempt;
    this.#clearTimer();
    this.#cancelOthers(attempt, "Another attempt answered first (hedging).");
    this.#report(status >= 500, attempt.handle, now);
    return "deliver";
  }

  /** A dropped response was read to its end (or broke): the retry goes now, after its backoff. */
  discarded(): void {
    this.#discarding = undefined;
    if (this.#done) return;
    const wait = this.#discardWait;
    this.#clearTimer();
    if (wait <= 0) {
      this.#launch(undefined, undefined);
      return;
    }
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#done) this.#launch(undefined, undefined);
    }, wait, true);
  }

  /**
   * An attempt failed before its response: retry it, wait for the hedge's other attempt, or fail the call.
   *
   * @param kind - how it failed, when the adapter knows better than the error's code (a balancer's refusal: nothing was sent)
   */
  failed(attempt: A, error: Error, kind?: FailureKind): void {
    if (!attempt.live || this.#done) return;
    this.#retire(attempt);
    const failure: FailureKind = this.#aborted !== undefined ? "aborted" : (kind ?? classifyError(error, undefined));
    if (attempt.timedOut) this.cancel(attempt, error);
    if (failure !== "other" && failure !== "aborted") this.#outlierFailure(attempt.handle);
    if (failure === "aborted") {
      if (this.#a === undefined) this.#end(this.#aborted ?? error, false, undefined);
      return;
    }
    if (this.#a !== undefined) return; // the hedge's other attempt carries on
    const policy = this.policy;
    if (retriesFailure(policy, failure) && this.retries < policy.maxRetries && this.#mayResend(failure, false)) {
      const wait = backoff(policy, this.retries, this.state.env.random);
      if (this.remaining() > wait) {
        if (this.guard.budget.tryRetry()) {
          this.retries++;
          this.#discardWait = wait;
          this.discarded();
          return;
        }
        this.budgetDenied = true;
        this.#budgetSpent();
      }
    }
    const attempts = this.#attempts;
    let reason = asArgumentError(error) as Error;
    if (this.budgetDenied) reason = budgetExhaustedError(this.state, error, attempts);
    else if (failure === "timeout") reason = timeoutError(this.state, this.remaining() <= 1 ? this.total : policy.perTryTimeoutMs || this.total, attempts, error);
    this.#end(reason, failure !== "other", attempt.handle);
  }

  /** The caller aborted: every attempt is given up; the caller hears the reason once (from the adapter, for a response under way). */
  abort(reason: Error): void {
    if (this.#done || this.#aborted !== undefined) return;
    this.#aborted = reason;
    const winner = this.#winner;
    if (winner !== undefined) {
      this.cancel(winner, reason);
      return;
    }
    this.#end(reason, false, undefined);
  }

  /** The caller's response ended (or broke): the call is over, its slot free. */
  ended(): void {
    this.#finish();
  }

  /** Tells the breaker how the call went, once: a failure only when it is the service's, not an ejected endpoint's. */
  #report(failed: boolean, handle: H | undefined, now?: number): void {
    const ticket = this.#ticket;
    if (ticket === "refused") return;
    this.#ticket = "refused";
    const breaker = this.guard.breaker;
    if (breaker === undefined) return;
    if (!failed) breaker.success(ticket, now);
    else if (handle !== undefined && this.guard.outlier?.accountable(handle.endpoint.id) === true) breaker.release(ticket);
    else breaker.failure(ticket);
  }

  #cancelOthers(keep: A, why: string): void {
    const other = this.#a === keep ? this.#b : this.#a;
    this.#a = keep;
    this.#b = undefined;
    if (other === undefined) return;
    other.live = false;
    this.#stopTimer(other);
    this.cancel(other, new AttemptCancelled(why));
  }

  /** The call failed: the breaker hears it (when it was the upstream's fault), the attempts are given up, the caller told. */
  #end(error: Error, upstreamFault: boolean, handle: H | undefined): void {
    if (this.#done) return;
    // ERR_MESH_CLOSED wins: a call that sent nothing on a closing mesh is refused as such, whatever else refused it.
    const reason = this.#attempts === 0 && this.state.closing && this.#aborted === undefined ? closedReason(error) : error;
    if (upstreamFault) this.#report(true, handle);
    const first = this.#a;
    const second = this.#b;
    this.#a = this.#b = undefined;
    const discarding = this.#discarding;
    this.#discarding = undefined;
    this.#finish();
    if (discarding !== undefined) this.cancel(discarding, reason);
    for (const attempt of [first, second]) {
      if (attempt === undefined) continue;
      attempt.live = false;
      this.#stopTimer(attempt);
      this.cancel(attempt, reason);
    }
    this.fail(reason);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    if (this.#ticket !== "refused") {
      this.guard.breaker?.release(this.#ticket);
      this.#ticket = "refused";
    }
    const slot = this.#slot;
    this.#slot = undefined;
    slot?.release();
    const queuedIn = this.#queuedIn;
    this.#queuedIn = undefined;
    queuedIn?.leave(this);
  }
}

/** A refusal on a closed mesh, as ERR_MESH_CLOSED (the refusal as its cause). */
function closedReason(error: Error): Error {
  return (error as { code?: unknown }).code === "ERR_MESH_CLOSED" ? error : meshClosedError(error);
}

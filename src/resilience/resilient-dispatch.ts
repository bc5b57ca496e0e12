import type { Duplex } from "node:stream";
import { isBulkheadRejectedError } from "cockatiel";
import { util, type Dispatcher } from "undici";
import type { ServiceState } from "../client/service-state.ts";
import { systemClock } from "../core/clock.ts";
import { asArgumentError } from "../core/request-arguments.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import { failHandler } from "../transport/http/forwarding-dispatcher.ts";
import { classifyError, retryAfterMs, type FailureKind } from "./classify.ts";
import { remainingIncomingMs } from "./deadline.ts";
import type { CallPolicy } from "./resilience-options.ts";
import type { AttemptPicker } from "./resilient-request.ts";
import type { AttemptTelemetry, CallLabel, CallTelemetry } from "../telemetry/call-telemetry.ts";
import { backoff, breakerRefusal, budgetExhaustedError, budgetSpent, COARSE_TIMEOUT_MS, hedgeDelay, limitError, mayResend, retriesFailure, retriesStatus, timeoutError, withDeadlineHeader } from "./retry-rules.ts";

/** undici's classic handler API, the one its pools call (and `fetch` implements). */
interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: object): void;
  onResponseStarted?(): void;
  onHeaders?(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | null): void;
  onError?(error: Error): void;
  onUpgrade?(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void;
}

/** undici's controller-based handler API, seen from the handler's side. */
interface ControllerHandler {
  onRequestStart?(controller: AdapterController, context: unknown): void;
  onRequestUpgrade?(controller: AdapterController, status: number, headers: Record<string, string | string[] | undefined>, socket: Duplex): void;
  onResponseStart?(controller: AdapterController, status: number, headers: Record<string, string | string[] | undefined>, statusText: string): void;
  onResponseData?(controller: AdapterController, chunk: Buffer): void;
  onResponseEnd?(controller: AdapterController, trailers: Record<string, string | string[] | undefined>): void;
  onResponseError?(controller: AdapterController | null, error: Error): void;
}

/** The controller a controller-API handler gets: pause, resume and abort of the winning attempt. */
class AdapterController {
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  readonly #abort: (reason?: Error) => void;
  resumeAttempt: (() => void) | undefined;
  rawHeaders: Buffer[] | null = null;
  rawTrailers: Buffer[] | null = null;

  constructor(abort: (reason?: Error) => void) {
    this.#abort = abort;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.resumeAttempt?.();
  }

  abort(reason?: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? null;
    this.#abort(reason);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get paused(): boolean {
    return this.#paused;
  }
}

/** Lets a controller-API handler be driven through the classic API (as undici's own pools do). */
class ControllerAdapter implements LegacyHandler {
  readonly #handler: ControllerHandler;
  #controller: AdapterController | null = null;

  constructor(handler: ControllerHandler) {
    this.#handler = handler;
  }

  onConnect(abort: (reason?: Error) => void, context?: object): void {
    this.#controller = new AdapterController(abort);
    this.#handler.onRequestStart?.(this.#controller, context);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const controller = this.#controller as AdapterController;
    controller.resumeAttempt = resume;
    controller.rawHeaders = raw;
    this.#handler.onResponseStart?.(controller, status, util.parseHeaders(raw), statusText);
    return !controller.paused;
  }

  onData(chunk: Buffer): boolean {
    const controller = this.#controller as AdapterController;
    this.#handler.onResponseData?.(controller, chunk);
    return !controller.paused;
  }

  onComplete(trailers: Buffer[] | null): void {
    const controller = this.#controller as AdapterController;
    controller.rawTrailers = trailers;
    this.#handler.onResponseEnd?.(controller, util.parseHeaders(trailers ?? []));
  }

  onError(error: Error): void {
    if (this.#handler.onResponseError === undefined) throw error;
    this.#handler.onResponseError(this.#controller, error);
  }

  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void {
    const controller = this.#controller as AdapterController;
    this.#handler.onRequestUpgrade?.(controller, status, util.parseHeaders(raw ?? []), socket);
  }
}

function classic(handler: Dispatcher.DispatchHandler): LegacyHandler {
  const h = handler as ControllerHandler & LegacyHandler;
  return typeof h.onRequestStart === "function" ? new ControllerAdapter(h) : h;
}

/** Why an attempt was given up by the call (lost a hedge race, timed out, or the caller aborted). */
class AttemptCancelled extends Error {
  readonly code = "UND_ERR_ABORTED";
}

const EMPTY = new Set<EndpointHandle>();

/**
 * A dispatch (`client.fetch()`, `mesh.dispatcher`) with the upstream's protections, the same as
 * `request()` gets: the concurrency limit, the circuit breaker, the deadline (told downstream) and the
 * per-try timeout, retries with backoff to endpoints not yet tried, drawn from the retry budget, and
 * hedging. Retries happen before the caller sees anything: a response that will be retried is read
 * and dropped, and the caller's handler only ever hears from one attempt. Traced and measured when
 * telemetry records.
 *
 * @param label - where routing sent the call, for its span (default: the service itself, no route)
 * @param startedAt - when the call began, if it waited (for the registry) before: its deadline counts from then
 * @internal
 */
export function resilientDispatch(state: ServiceState, policy: CallPolicy, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, pick: AttemptPicker, label: CallLabel = state.plainLabel, startedAt?: number): void {
  const bulkhead = state.guard.bulkhead;
  const user = classic(handler);
  const trace = state.telemetry.start(state, label, options.method, options.path, options.headers);
  if (bulkhead === undefined) {
    new DispatchCall(state, policy, options, user, pick, startedAt ?? state.env.clock.now(), false, trace).begin(undefined);
    return;
  }
  const start = startedAt ?? state.env.clock.now();
  // The caller may abort while queued for a slot: the queue entry goes, and the caller hears it once.
  const queue = new AbortController();
  let call: DispatchCall | undefined;
  let aborted: Error | undefined;
  user.onConnect?.((reason?: Error) => {
    if (call !== undefined) call.abort(reason);
    else if (aborted === undefined) {
      aborted = reason ?? new AttemptCancelled("The request was aborted.");
      queue.abort(aborted);
    }
  }, undefined);
  // The slot is held until the response has ended; the deadline counts the wait for it.
  bulkhead
    .execute(
      () =>
        new Promise<void>((release) => {
          call = new DispatchCall(state, policy, options, user, pick, start, true, trace);
          call.begin(release);
        }),
      queue.signal,
    )
    .catch((err: unknown) => {
      const error = aborted ?? (isBulkheadRejectedError(err) ? limitError(state, err) : (err as Error));
      trace?.end(undefined, error);
      if (user.onError === undefined) failHandler(handler, error);
      else user.onError(error);
    });
}

/** One call: its attempts (one at a time, or two while hedging), and what the caller hears. */
class DispatchCall {
  readonly state: ServiceState;
  readonly policy: CallPolicy;
  readonly options: Dispatcher.DispatchOptions;
  readonly user: LegacyHandler;
  readonly #pick: AttemptPicker;
  readonly start: number;
  /** The call's telemetry, when something records. */
  readonly trace: CallTelemetry | undefined;
  #total = Infinity;
  #tell = false;
  #release: (() => void) | undefined;
  #tried: Set<EndpointHandle> | undefined;
  #retries = 0;
  #running: Attempt[] = [];
  #connected = false;
  #winner: Attempt | undefined;
  #done = false;
  #aborted: Error | undefined;
  #timer: unknown;
  #reported = false;
  #budgetDenied = false;

  /**
   * @param callerConnected - whether the caller already has its abort function (given while queued for a slot)
   * @param trace - the call's telemetry
   */
  constructor(state: ServiceState, policy: CallPolicy, options: Dispatcher.DispatchOptions, user: LegacyHandler, pick: AttemptPicker, start: number, callerConnected: boolean, trace: CallTelemetry | undefined) {
    this.#connected = callerConnected;
    this.trace = trace;
    this.state = state;
    this.policy = policy;
    this.options = options;
    this.user = user;
    this.#pick = pick;
    this.start = start;
  }

  begin(release: (() => void) | undefined): void {
    this.#release = release;
    // The caller can abort from now on, during a backoff too, not only once an attempt has connected.
    this.connected();
    if (this.#done) return;
    const incoming = remainingIncomingMs();
    const limit = this.policy.timeoutMs > 0 ? this.policy.timeoutMs : Infinity;
    this.#total = incoming === undefined ? limit : Math.min(incoming, limit);
    this.#tell = this.policy.explicitTimeout || incoming !== undefined;
    if (this.#total <= this.state.env.clock.now() - this.start) {
      this.#reported = true; // the breaker was not asked: nothing to tell it
      this.#fail(timeoutError(this.state, this.#total, 0, undefined), false);
      return;
    }
    const refusal = breakerRefusal(this.state);
    if (refusal !== undefined) {
      this.#reported = true; // the breaker let nothing through: nothing to tell it
      this.#fail(refusal, false);
      return;
    }
    this.state.guard.budget.request();
    const first = this.#launch();
    if (first === undefined) return;
    const delay = this.options.upgrade === undefined || this.options.upgrade === null ? hedgeDelay(this.state, this.policy, this.options) : undefined;
    if (delay !== undefined) this.#timer = this.state.env.clock.setTimeout(() => this.#hedge(first), Math.max(0, delay), true);
  }

  /** The caller's abort: every attempt is aborted; the caller hears the reason once. */
  readonly abort = (reason?: Error): void => {
    if (this.#done || this.#aborted !== undefined) return;
    const error = reason ?? new AttemptCancelled("The request was aborted.");
    this.#aborted = error;
    // A response under way: aborting it makes undici tell the caller. Else the caller hears it now.
    if (this.#winner !== undefined) this.#winner.abortFn?.(error);
    else this.#fail(error, false);
  };

  /** The first attempt to connect tells the caller (with the call's abort). */
  connected(): void {
    if (this.#connected) return;
    this.#connected = true;
    this.user.onConnect?.(this.abort, undefined);
  }

  get aborted(): Error | undefined {
    return this.#aborted;
  }

  isWinner(attempt: Attempt): boolean {
    return this.#winner === attempt;
  }

  /** Whether an attempt still counts (not lost, timed out or abandoned). */
  isLive(attempt: Attempt): boolean {
    return !this.#done && this.#running.includes(attempt);
  }

  #remaining(): number {
    return this.start + this.#total - this.state.env.clock.now();
  }

  /**
   * Sends an attempt to an endpoint not yet tried; undefined when the call ended instead.
   *
   * @param handle - the endpoint (a hedge's), else one is picked
   * @param until - when the attempt's time ends (a hedge shares its first attempt's), else the per-try limit from now
   */
  #launch(handle?: EndpointHandle, until?: number): Attempt | undefined {
    const state = this.state;
    let chosen: EndpointHandle;
    try {
      chosen = handle ?? this.#pick(this.#tried ?? EMPTY);
    } catch (err) {
      this.#fail(err as Error, false);
      return undefined;
    }
    const remaining = this.#remaining();
    if (remaining <= 0) {
      this.#fail(timeoutError(state, this.#total, this.#retries, undefined), false);
      return undefined;
    }
    const ownLimit = this.policy.perTryTimeoutMs > 0 ? Math.min(this.policy.perTryTimeoutMs, remaining) : remaining;
    const perTry = until === undefined ? ownLimit : Math.max(1, Math.min(until - state.env.clock.now(), remaining));
    const attempt = new Attempt(this, chosen, this.trace?.attempt(chosen, handle !== undefined));
    attempt.until = state.env.clock.now() + perTry;
    this.#running.push(attempt);
    const headers = this.#tell && Number.isFinite(remaining) ? withDeadlineHeader(this.options.headers, remaining) : undefined;
    const clock = state.env.clock;
    let sent: Dispatcher.DispatchOptions;
    if (!Number.isFinite(perTry) || (perTry >= COARSE_TIMEOUT_MS && clock === systemClock)) {
      // A long limit on the real clock: undici's own headers timer (about a second's precision) enforces it.
      const limit = Math.min(perTry, state.userHeadersTimeout ?? Infinity);
      sent = { ...this.options, ...(headers === undefined ? {} : { headers }), headersTimeout: Number.isFinite(limit) ? Math.ceil(limit) : 0 };
    } else {
      sent = headers === undefined ? this.options : { ...this.options, headers };
      attempt.timer = clock.setTimeout(() => this.#timedOut(attempt, perTry), Math.max(1, Math.ceil(perTry)), true);
    }
    attempt.sentAt = clock.now();
    const traced = attempt.trace;
    try {
      if (traced === undefined) chosen.pool.dispatch(sent, attempt as Dispatcher.DispatchHandler);
      else {
        const withTrace = traced.prepare(sent);
        traced.run(() => chosen.pool.dispatch(withTrace, attempt as Dispatcher.DispatchHandler));
      }
    } catch (err) {
      this.failed(attempt, err as Error);
    }
    return attempt;
  }

  /** The hedge: a second attempt to another endpoint, if the first has not answered after `delay` ms. */
  #hedge(first: Attempt): void {
    this.#timer = undefined;
    if (this.#done || this.#winner !== undefined || this.#running.length !== 1 || this.#running[0] !== first) return;
    let second: EndpointHandle;
    try {
      second = this.#pick(new Set([first.handle]));
    } catch {
      return; // no endpoint for a hedge: the first attempt carries on alone
    }
    if (second === first.handle) return;
    if (!this.state.guard.budget.tryRetry()) {
      budgetSpent(this.state, this.trace);
      return;
    }
    this.#launch(second, first.until);
  }

  #timedOut(attempt: Attempt, perTry: number): void {
    attempt.timer = undefined;
    if (!this.isLive(attempt)) return;
    attempt.timedOut = true;
    const error = timeoutError(this.state, Math.round(perTry), this.#retries + 1, undefined);
    attempt.trace?.end(undefined, error, "timeout");
    if (attempt.abortFn !== undefined) attempt.abortFn(error);
    else {
      // Still waiting for a connection: undici cannot abort it yet, so the call lets it go.
      attempt.cancel(error);
      this.failed(attempt, error);
    }
  }

  /** Response headers of an attempt: deliver them (the winner), or read and drop them to retry. */
  headers(attempt: Attempt, status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const { guard, env } = this.state;
    guard.observe(env.clock.now() - attempt.sentAt);
    attempt.trace?.end(status, undefined);
    const id = attempt.handle.endpoint.id;
    if (status < 500) guard.outlier?.success(id);
    else if (guard.outlier?.failure(id, this.state.endpoints?.size ?? 1) === true) this.trace?.ejected(attempt.handle);
    const retriable = status >= 429 || this.policy.statusCodes.size > 0;
    if (retriable && this.#running.length === 1 && retriesStatus(this.policy, status) && this.#retries < this.policy.maxRetries && mayResend(this.policy, this.options, undefined)) {
      const headers = status === 429 ? (util.parseHeaders(raw) as Record<string, string | string[] | undefined>) : undefined;
      const wait = Math.max(backoff(this.policy, this.#retries, env.random), headers === undefined ? 0 : (retryAfterMs(headers, Date.now()) ?? 0));
      if (this.#remaining() > wait) {
        if (guard.budget.tryRetry()) {
          attempt.discardThenRetry = wait;
          this.#clearTimer(); // no hedge while this answer is read and dropped: the retry follows it
          return true;
        }
        budgetSpent(this.state, this.trace);
      }
    } else if (retriable && this.#running.length > 1 && status >= 500 && retriesStatus(this.policy, status)) {
      // The other attempt of a hedge may still do better: this one is dropped.
      this.#drop(attempt);
      return false;
    }
    // The winner: the other attempt (if any) is aborted, and the caller hears this one.
    this.#winner = attempt;
    this.#clearTimer();
    if (this.#running.length > 1) {
      for (const other of this.#running) if (other !== attempt) other.cancel(new AttemptCancelled("Another attempt answered first (hedging)."));
      this.#running = [attempt];
    }
    this.#reported = true;
    if (status >= 500) guard.breaker?.failure();
    else guard.breaker?.success();
    this.trace?.end(status, undefined);
    this.connected();
    this.user.onResponseStarted?.();
    return this.user.onHeaders?.(status, raw, resume, statusText) ?? true;
  }

  /** A dropped response was read to its end (or broke): the retry goes now, after its backoff. */
  retryAfterDiscard(attempt: Attempt, wait: number): void {
    if (!this.isLive(attempt)) return;
    for (const other of this.#running) if (other !== attempt) other.cancel(new AttemptCancelled("The call is being retried."));
    this.#running = [];
    (this.#tried ??= new Set()).add(attempt.handle);
    this.#retries++;
    this.#after(wait);
  }

  #after(wait: number): void {
    this.#clearTimer();
    if (wait <= 0) {
      this.#launch();
      return;
    }
    this.#timer = this.state.env.clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#done) this.#launch();
    }, wait, true);
  }

  /** An attempt that failed before its response headers: retry, wait for the other attempt, or fail. */
  failed(attempt: Attempt, error: Error): void {
    if (!this.isLive(attempt)) return;
    this.#running = this.#running.filter((a) => a !== attempt);
    (this.#tried ??= new Set()).add(attempt.handle);
    if (attempt.timer !== undefined) this.state.env.clock.clearTimeout(attempt.timer);
    const failure: FailureKind = this.#aborted !== undefined ? "aborted" : attempt.timedOut ? "timeout" : classifyError(error, undefined);
    attempt.trace?.end(undefined, error, failure);
    const guard = this.state.guard;
    if (failure !== "other" && failure !== "aborted" && guard.outlier?.failure(attempt.handle.endpoint.id, this.state.endpoints?.size ?? 1) === true) this.trace?.ejected(attempt.handle);
    if (failure === "aborted") {
      if (this.#running.length === 0) this.#fail(this.#aborted ?? error, false);
      return;
    }
    if (this.#running.length > 0) return; // the hedge's other attempt carries on
    if (retriesFailure(this.policy, failure) && this.#retries < this.policy.maxRetries && mayResend(this.policy, this.options, failure)) {
      const wait = backoff(this.policy, this.#retries, this.state.env.random);
      if (this.#remaining() > wait) {
        if (guard.budget.tryRetry()) {
          this.#retries++;
          this.#after(wait);
          return;
        }
        this.#budgetDenied = true;
        budgetSpent(this.state, this.trace);
      }
    }
    const attempts = this.#retries + 1;
    let reason = asArgumentError(error) as Error;
    if (failure === "timeout") reason = timeoutError(this.state, this.#remaining() <= 1 ? this.#total : this.policy.perTryTimeoutMs || this.#total, attempts, error);
    else if (this.#budgetDenied) reason = budgetExhaustedError(this.state, error, attempts);
    this.#fail(reason, failure !== "other");
  }

  #drop(attempt: Attempt): void {
    this.#running = this.#running.filter((a) => a !== attempt);
    (this.#tried ??= new Set()).add(attempt.handle);
    attempt.cancel(new AttemptCancelled("A hedged attempt failed; the other one carries on."));
  }

  /** An upgrade (WebSocket, CONNECT) went through: it is the caller's now. */
  upgraded(attempt: Attempt, status: number): void {
    attempt.trace?.end(status, undefined);
    this.#winner = attempt;
    for (const other of this.#running) if (other !== attempt) other.cancel(new AttemptCancelled("Another attempt answered first (hedging)."));
    this.#running = [attempt];
    this.#reported = true;
    this.state.guard.breaker?.success();
    this.trace?.end(status, undefined);
    this.connected();
    this.#finish();
  }

  /** The winner's response ended (or broke): the call is over. */
  ended(): void {
    this.#finish();
  }

  #fail(error: Error, upstreamFault: boolean): void {
    if (this.#done) return;
    if (!this.#reported && upstreamFault) {
      this.#reported = true;
      this.state.guard.breaker?.failure();
    }
    // The attempts' spans end before the call's: they are its children.
    for (const attempt of this.#running) attempt.trace?.end(undefined, error, "cancelled");
    this.trace?.end(undefined, error);
    // Ended first: an attempt's abort may call back into this call (undici reports it at once).
    const running = this.#running;
    this.#running = [];
    this.#finish();
    for (const attempt of running) attempt.cancel(error);
    if (this.user.onError === undefined) return;
    this.user.onError(error);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.state.env.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    if (!this.#reported) {
      this.#reported = true;
      this.state.guard.breaker?.release();
    }
    this.#release?.();
  }
}

/** One attempt: the handler undici's pool calls; it reports to its call. */
class Attempt implements LegacyHandler {
  readonly call: DispatchCall;
  readonly handle: EndpointHandle;
  /** Its telemetry, when something records. */
  readonly trace: AttemptTelemetry | undefined;
  abortFn: ((reason?: Error) => void) | undefined;
  timer: unknown;
  sentAt = 0;
  /** When its time ends, on the mesh clock. */
  until = Infinity;
  timedOut = false;
  /** Set when the response is dropped to retry: the backoff to wait once it has been read. */
  discardThenRetry: number | undefined;
  #discarded = 0;
  #cancelled: Error | undefined;

  constructor(call: DispatchCall, handle: EndpointHandle, trace: AttemptTelemetry | undefined) {
    this.call = call;
    this.handle = handle;
    this.trace = trace;
  }

  /** Gives the attempt up: aborted now if connected, else as soon as it connects. */
  cancel(reason: Error): void {
    if (this.#cancelled !== undefined) return;
    this.#cancelled = reason;
    this.trace?.end(undefined, reason, "cancelled");
    if (this.timer !== undefined) this.call.state.env.clock.clearTimeout(this.timer);
    this.abortFn?.(reason);
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abortFn = abort;
    if (this.#cancelled !== undefined) {
      abort(this.#cancelled);
      return;
    }
    this.call.connected();
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#cancelled !== undefined || !this.call.isLive(this)) return false;
    if (status < 200) return true; // informational: the final response follows
    if (this.timer !== undefined) this.call.state.env.clock.clearTimeout(this.timer);
    this.timer = undefined;
    return this.call.headers(this, status, raw, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.call.isWinner(this)) return this.call.user.onData?.(chunk) ?? true;
    if (this.discardThenRetry !== undefined) {
      this.#discarded += chunk.length;
      // A dropped response is read to keep the connection, but not without end.
      if (this.#discarded > this.call.policy.maxBufferedBodyBytes) this.abortFn?.(new AttemptCancelled("Dropped response too large to read."));
    }
    return true;
  }

  onComplete(trailers: Buffer[] | null): void {
    if (this.call.isWinner(this)) {
      this.call.ended();
      this.call.user.onComplete?.(trailers);
    } else if (this.discardThenRetry !== undefined) this.call.retryAfterDiscard(this, this.discardThenRetry);
  }

  onError(error: Error): void {
    if (this.call.isWinner(this)) {
      this.call.ended();
      if (this.call.user.onError === undefined) throw error;
      this.call.user.onError(error);
    } else if (this.discardThenRetry !== undefined) this.call.retryAfterDiscard(this, this.discardThenRetry);
    else this.call.failed(this, error);
  }

  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.#cancelled !== undefined) {
      socket.destroy();
      return;
    }
    if (this.timer !== undefined) this.call.state.env.clock.clearTimeout(this.timer);
    this.call.upgraded(this, status);
    this.call.user.onUpgrade?.(status, raw, socket);
  }
}

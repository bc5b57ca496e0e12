import type { Duplex } from "node:stream";
import { util, type Dispatcher } from "undici";
import type { UpstreamView } from "../../upstream/upstream-view.ts";
import { AttemptCancelled, EngineAttempt, EngineCall, type AttemptPicker, type RequestShape } from "../../resilience/call-engine.ts";
import { classifyError, isIdempotent, isReplayable, retryAfterMs } from "../../resilience/classify.ts";
import { remainingIncomingMs } from "../../core/incoming-deadline.ts";
import type { CallPolicy } from "../../config/resilience-options.ts";
import { withDeadlineHeader } from "../../resilience/retry-rules.ts";
import type { AttemptTelemetry, CallLabel, CallTelemetry } from "../../telemetry/call-telemetry.ts";
import { classic, type LegacyHandler } from "./controller-adapter.ts";
import type { EndpointHandle } from "./endpoint-handle.ts";
import { failHandler } from "./forwarding-dispatcher.ts";

/**
 * A dispatch (`client.request()`, `client.fetch()`, `mesh.dispatcher`) through the call engine: the
 * HTTP adapter. Attempts are undici dispatches on the endpoints' pools; a response the engine retries
 * is read and dropped before the caller sees anything, so the caller's handler only ever hears from
 * one attempt. Traced and measured when telemetry records.
 *
 * @param label - where routing sent the call, for its span (default: the service itself, no route)
 * @param startedAt - when the call began, if it waited (for the registry) before: its deadline counts from then
 * @internal
 */
export function meshDispatch(state: UpstreamView, policy: CallPolicy, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, pick: AttemptPicker<EndpointHandle>, label: CallLabel = state.plainLabel, startedAt?: number): void {
  const idempotent = isIdempotent(options);
  const replayable = isReplayable(options.body, policy.maxBufferedBodyBytes);
  const upgrade = options.upgrade !== undefined && options.upgrade !== null;
  const callerLimitMs = remainingIncomingMs();
  // The common shapes are made once; a call with a caller's limit or an upgrade gets its own.
  const shape =
    callerLimitMs === undefined && !upgrade
      ? SHAPES[idempotent ? (replayable ? 3 : 2) : replayable ? 1 : 0]
      : { idempotent, replayable, hedgeable: idempotent && replayable && !upgrade, callerLimitMs, defaultTimeout: true };
  const call = new HttpCall(state, policy, pick, options, handler, shape, startedAt);
  call.trace = state.telemetry.start(state, label, options.method, options.path, options.headers);
  // The caller can abort from now on: while queued for a slot, during a backoff, not only once an attempt connected.
  call.user.onConnect?.(call.abortCall, undefined);
  call.starting = true;
  try {
    call.run();
  } finally {
    call.starting = false;
  }
}

/** The request shapes of HTTP calls with no caller's limit and no upgrade, by idempotent (2) and replayable (1). */
const SHAPES = [shapeOf(false, false), shapeOf(false, true), shapeOf(true, false), shapeOf(true, true)] as const;

function shapeOf(idempotent: boolean, replayable: boolean): RequestShape {
  return Object.freeze({ idempotent, replayable, hedgeable: idempotent && replayable, callerLimitMs: undefined, defaultTimeout: true });
}

/** One HTTP call on the engine: what the caller's handler hears. */
class HttpCall extends EngineCall<EndpointHandle, HttpAttempt> {
  readonly options: Dispatcher.DispatchOptions;
  readonly user: LegacyHandler;
  readonly #handler: Dispatcher.DispatchHandler;
  declare trace: CallTelemetry | undefined;

  constructor(state: UpstreamView, policy: CallPolicy, pick: AttemptPicker<EndpointHandle>, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, shape: RequestShape, startedAt: number | undefined) {
    super(state, policy, pick, shape, startedAt);
    this.options = options;
    this.#handler = handler;
    this.user = classic(handler);
  }

  /** The caller's abort function. */
  readonly abortCall = (reason?: Error): void => {
    this.abort(reason ?? new AttemptCancelled("The request was aborted."));
  };

  protected attempt(handle: EndpointHandle, hedge: boolean, resend: number): HttpAttempt {
    return new HttpAttempt(this, handle, hedge, resend, this.trace?.attempt(handle, hedge));
  }

  protected send(attempt: HttpAttempt): void {
    const tell = attempt.tellMs;
    const options = this.options;
    const sent = tell === undefined ? options : { ...options, headers: withDeadlineHeader(options.headers, tell) };
    const pool = attempt.handle.pool;
    // Upgrades and CONNECT hand over a socket rather than a response: not load.
    if (options.upgrade == null && options.method !== "CONNECT") attempt.track();
    const traced = attempt.trace;
    if (traced === undefined) pool.dispatch(sent, attempt as Dispatcher.DispatchHandler);
    else {
      const withTrace = traced.prepare(sent);
      traced.run(() => pool.dispatch(withTrace, attempt as Dispatcher.DispatchHandler));
    }
  }

  protected cancel(attempt: HttpAttempt, reason: Error): void {
    attempt.cancel(reason);
  }

  /** Whether run() is still on the caller's stack: a refusal then is told on the next turn of the loop. */
  starting = false;

  protected fail(error: Error): void {
    this.trace?.end(undefined, error);
    // A call refused at once (breaker open, limit full, mesh closed, no endpoint) is told after the event
    // loop turns, not in the caller's own microtasks: a caller that retries in a tight loop would
    // otherwise never let timers and sockets run, and so never see the breaker half-open (a livelock).
    if (this.starting) setImmediate(() => this.#tell(error));
    else this.#tell(error);
  }

  #tell(error: Error): void {
    if (this.user.onError === undefined) failHandler(this.#handler, error);
    else this.user.onError(error);
  }

  /** The winner's response headers: the call's span ends, the caller hears them. */
  deliver(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    this.trace?.end(status, undefined);
    const user = this.user;
    user.onResponseStarted?.();
    return user.onHeaders?.(status, raw, resume, statusText) ?? true;
  }
}

/** Where an attempt stands in its endpoint's load: not counted (an upgrade or CONNECT), in flight with no response yet, in flight with its response headers seen, over. */
const NOT_COUNTED = 0;
const WAITING = 1;
const ANSWERED = 2;
const OVER = 3;

/**
 * One attempt: the handler undici's pool calls; it reports to its call, and keeps its endpoint's load
 * (in flight from its send until its response ends or fails; the time to response headers as a round
 * trip; a failure before any response as a penalty sample, unless the attempt was given up).
 */
class HttpAttempt extends EngineAttempt<EndpointHandle> implements LegacyHandler {
  readonly call: HttpCall;
  /** Its telemetry, when something records. */
  readonly trace: AttemptTelemetry | undefined;
  abortFn: ((reason?: Error) => void) | undefined = undefined;
  /** Its response is read to its end and dropped: a retry follows. */
  discarding = false;
  #discarded = 0;
  #cancelled: Error | undefined;
  #load = NOT_COUNTED;

  constructor(call: HttpCall, handle: EndpointHandle, hedge: boolean, resend: number, trace: AttemptTelemetry | undefined) {
    super(handle, hedge, resend);
    this.call = call;
    this.trace = trace;
  }

  /** Counts the attempt in its endpoint's load, from now (its send). */
  track(): void {
    this.#load = WAITING;
    this.handle.load.pending++;
  }

  /** Its response headers came: the round trip since its send is a sample; the time is returned. */
  #answered(): number {
    const now = this.call.clock.now();
    if (this.#load === WAITING) {
      this.#load = ANSWERED;
      this.handle.load.observe(now - this.sentAt, now);
    }
    return now;
  }

  /** The attempt is over: no longer in flight. A failure before any response is a penalty sample, unless the attempt was given up: a caller's abort gives up its attempts through the engine (one rule for every API). */
  #over(error: Error | undefined): void {
    const state = this.#load;
    if (state === NOT_COUNTED || state === OVER) return;
    this.#load = OVER;
    const load = this.handle.load;
    load.pending--;
    if (error !== undefined && state === WAITING && this.#cancelled === undefined) {
      const now = this.call.clock.now();
      load.fail(now - this.sentAt, now);
    }
  }

  /** Gives the attempt up: aborted now if connected, else as soon as it connects. */
  cancel(reason: Error): void {
    if (this.#cancelled !== undefined) return;
    this.#cancelled = reason;
    this.trace?.end(undefined, reason, this.timedOut ? "timeout" : "cancelled");
    this.abortFn?.(reason);
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abortFn = abort;
    if (this.#cancelled !== undefined) abort(this.#cancelled);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const now = this.#answered();
    if (this.#cancelled !== undefined) return false;
    if (status < 200) return true; // informational: the final response follows
    const call = this.call;
    const wait = status === 429 ? retryAfterMs(util.parseHeaders(raw), Date.now()) : undefined;
    const verdict = call.responded(this, status, wait, false, now);
    this.trace?.end(status, undefined);
    if (verdict === "deliver") return call.deliver(status, raw, resume, statusText);
    if (verdict === "discard") {
      this.discarding = true;
      return true;
    }
    this.cancel(new AttemptCancelled("A hedged attempt failed; the other one carries on."));
    return false;
  }

  onData(chunk: Buffer): boolean {
    const call = this.call;
    if (call.isWinner(this)) return call.user.onData?.(chunk) ?? true;
    if (this.discarding) {
      this.#discarded += chunk.length;
      // A dropped response is read to keep the connection, but not without end.
      if (this.#discarded > call.policy.maxBufferedBodyBytes) this.abortFn?.(new AttemptCancelled("Dropped response too large to read."));
    }
    return true;
  }

  onComplete(trailers: Buffer[] | null): void {
    this.#over(undefined);
    const call = this.call;
    if (call.isWinner(this)) {
      call.ended();
      call.user.onComplete?.(trailers);
    } else if (this.discarding) call.discarded();
  }

  onError(error: Error): void {
    this.#over(error);
    const call = this.call;
    if (call.isWinner(this)) {
      call.ended();
      if (call.user.onError === undefined) throw error;
      call.user.onError(error);
      return;
    }
    if (this.discarding) {
      call.discarded();
      return;
    }
    if (this.#cancelled !== undefined) return;
    this.trace?.end(undefined, error, call.aborted === undefined ? classifyError(error, undefined) : "cancelled");
    call.failed(this, error);
  }

  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: Duplex): void {
    const call = this.call;
    if (this.#cancelled !== undefined || call.responded(this, status) !== "deliver") {
      socket.destroy();
      return;
    }
    this.trace?.end(status, undefined);
    call.trace?.end(status, undefined);
    call.ended();
    call.user.onUpgrade?.(status, raw, socket);
  }
}

import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import type { Dispatcher } from "undici";
import { headerValue, withoutHeaders } from "../core/headers.ts";
import type { Clock } from "../core/clock.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";
import { ATTR, errorType, methodName, redactedUrl } from "./attributes.ts";
import { diag, type RequestEndMessage } from "./channels.ts";
import type { Instruments } from "./instruments.ts";
import { withTraceHeaders } from "./inject.ts";
import type { BreakerStateEvent } from "./mesh-events.ts";

/** Where routing sent a call, for its span: the service called, the route and the subset. @internal */
export interface CallLabel {
  /** The service the caller named. */
  readonly service: string;
  /** The index of the route that matched; undefined for the default route or no routing. */
  readonly route: number | undefined;
  /** The subset routing chose, if any. */
  readonly subset: string | undefined;
}

/**
 * What a call's telemetry reads of the upstream service it calls: its name, its balancer, its clock
 * and its breaker's state. The engine's per-service state has them; telemetry names only what it reads,
 * so that it imports nothing from the floors above it. @internal
 */
export interface CallTarget {
  /** The service called (after routing). */
  readonly service: string;
  /** The balancer in force. */
  readonly policy: string;
  /** The clock the call is timed on. */
  readonly env: { readonly clock: Clock };
  /** The service's circuit breaker, if it has one. */
  readonly guard: { readonly breaker: { readonly state: BreakerStateEvent["state"] } | undefined };
}

/** What an attempt's telemetry reads of the endpoint it went to. @internal */
export interface AttemptTarget {
  /** The endpoint. */
  readonly endpoint: Endpoint;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The telemetry of one call (exists only when something records: a tracer, a meter, or a
 * diagnostics_channel subscriber). Each attempt has a CLIENT span, as the HTTP conventions ask (a span
 * per physical request). The call has an INTERNAL span of its own, their parent, only with
 * `telemetry.callSpans`; otherwise the attempts' spans are children of the caller's span, and what
 * the call span would have carried goes to the metrics (ejections, the budget, the breaker) or to the
 * attempts' spans (the route and subset). @internal
 */
export class CallTelemetry {
  readonly state: CallTarget;
  readonly label: CallLabel;
  readonly method: string;
  /** `http.request.method`: the method, or `_OTHER`. */
  readonly methodName: string;
  readonly path: string;
  /** `url.full` of the attempts: the service's URL, as the caller named it, with the query's values redacted. */
  readonly url: string;
  /** The call's span (with `callSpans` only), and the attempts' parent context: the call span's, else the caller's. */
  readonly span: Span | undefined;
  readonly context: Context | undefined;
  readonly tracer: Tracer | undefined;
  readonly meters: Instruments | undefined;
  /** Whether `@opentelemetry/instrumentation-undici` traces the attempts (then the mesh makes no attempt spans and injects nothing). */
  readonly undiciTraces: boolean;
  /** With undici tracing: the caller set `traceparent` by hand, which the attempts drop (undici's instrumentation sends its own). */
  readonly handSetTrace: boolean;
  readonly start: number;
  attempts = 0;
  /** What the last attempt got (a status code, or the failure's kind): the next one's retry reason. */
  lastOutcome: string | undefined;
  #message: Mutable<RequestEndMessage> | undefined;
  #ended = false;
  readonly #breakerBefore: string | undefined;

  /**
   * @param headers - the caller's request headers: a `traceparent` the caller set by hand is the parent
   *   when no span is active (the mesh replaces the header, and must not break the caller's trace)
   * @param callSpan - whether the call gets an INTERNAL span of its own (`telemetry.callSpans`)
   */
  constructor(state: CallTarget, label: CallLabel, method: string, path: string, headers: unknown, tracer: Tracer | undefined, meters: Instruments | undefined, undiciTraces: boolean, callSpan: boolean) {
    this.state = state;
    this.label = label;
    this.method = method;
    this.methodName = methodName(method);
    this.path = path;
    this.url = tracer === undefined ? "" : redactedUrl(label.service, path);
    this.tracer = tracer;
    this.meters = meters;
    this.undiciTraces = undiciTraces;
    this.handSetTrace = undiciTraces && headerValue(headers, "traceparent") !== undefined;
    this.start = state.env.clock.now();
    this.#breakerBefore = state.guard.breaker?.state;
    if (tracer !== undefined && !callSpan) this.context = parentContext(headers);
    else if (tracer !== undefined) {
      const parent = parentContext(headers);
      // Few attributes: the SDK checks each one, at a cost that adds up per call. The URL and the
      // peer are on the attempts' spans (the conventions' CLIENT spans).
      const attributes: Attributes = {
        [ATTR.method]: this.methodName,
        [ATTR.serverAddress]: label.service,
        [ATTR.balancer]: state.policy,
      };
      if (state.service !== label.service) attributes[ATTR.target] = state.service;
      if (label.route !== undefined) attributes[ATTR.route] = label.route;
      if (label.subset !== undefined) attributes[ATTR.subset] = label.subset;
      if (this.methodName === "_OTHER") attributes[ATTR.methodOriginal] = method;
      this.span = tracer.startSpan(`${this.methodName === "_OTHER" ? "HTTP" : this.methodName} ${label.service}`, { kind: SpanKind.INTERNAL, attributes }, parent);
      this.context = trace.setSpan(parent, this.span);
    }
    if (diag.requestStart.hasSubscribers || diag.requestEnd.hasSubscribers) {
      this.#message = { service: label.service, target: state.service, method, path, startedAt: this.start, statusCode: undefined, error: undefined, attempts: 0, durationMs: 0 };
      diag.requestStart.publish(this.#message);
    }
  }

  /** Starts an attempt on the endpoint picked for it. */
  attempt(handle: AttemptTarget, hedge: boolean): AttemptTelemetry {
    const resend = this.attempts++;
    const meters = this.meters;
    // Attempts are counted by http.client.request.duration (one point per attempt); retries and hedges here.
    if (meters !== undefined && resend > 0) {
      const attrs = meters.service(this.label.service);
      if (hedge) meters.hedges.add(1, attrs);
      else meters.retries.add(1, { ...attrs, [ATTR.retryReason]: this.lastOutcome ?? "unknown" });
    }
    if (diag.pick.hasSubscribers) diag.pick.publish({ service: this.state.service, endpoint: handle.endpoint, policy: this.state.policy, resendCount: resend, hedge });
    return new AttemptTelemetry(this, handle, resend, hedge);
  }

  /** Adds an event to the call's span. */
  event(name: string, attributes?: Attributes): void {
    this.span?.addEvent(name, attributes);
  }

  /** Outlier detection ejected an endpoint because of this call's attempt. */
  ejected(handle: AttemptTarget): void {
    this.span?.addEvent("proxyless.endpoint_ejected", { [ATTR.endpoint]: handle.endpoint.id });
  }

  /** The retry budget refused a retry or hedge of this call. */
  budgetExhausted(): void {
    this.span?.addEvent("proxyless.retry_budget_exhausted");
    this.meters?.budgetExhausted.add(1, this.meters.service(this.label.service));
  }

  /** The call is over: the caller got response headers (`status`) or an error. Idempotent. */
  end(status: number | undefined, error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const now = this.state.env.clock.now();
    const failure = status === undefined ? errorType(error) : status >= 400 ? String(status) : undefined;
    const breaker = this.state.guard.breaker?.state;
    const span = this.span;
    if (span !== undefined) {
      if (breaker !== this.#breakerBefore && breaker !== undefined) span.addEvent("proxyless.circuit_breaker.state_changed", { [ATTR.breakerState]: breaker });
      if (span.isRecording()) {
        if (status !== undefined) span.setAttribute(ATTR.status, status);
        if (this.attempts > 1) span.setAttribute(ATTR.resendCount, this.attempts - 1);
        if (failure !== undefined) {
          span.setAttribute(ATTR.errorType, failure);
          span.setStatus({ code: SpanStatusCode.ERROR, ...(status === undefined ? { message: (error as Error | undefined)?.message ?? String(error) } : {}) });
        }
      }
      span.end();
    }
    this.meters?.callDuration.record((now - this.start) / 1000, this.meters.outcome(this.label.service, this.methodName, status, failure));
    const message = this.#message;
    if (message !== undefined) {
      message.statusCode = status;
      message.error = status === undefined ? (error instanceof Error ? error : new Error(String(error))) : undefined;
      message.attempts = this.attempts;
      message.durationMs = now - this.start;
      diag.requestEnd.publish(message);
    }
  }

  /** Ends the call when a `request()` promise settles, passing its outcome through. */
  track<T extends { readonly statusCode: number }>(promise: Promise<T>): Promise<T> {
    return promise.then(
      (res) => {
        this.end(res.statusCode, undefined);
        return res;
      },
      (err: unknown) => {
        this.end(undefined, err);
        throw err;
      },
    );
  }
}

/** The telemetry of one attempt: its CLIENT span, the trace headers it sends, its duration. @internal */
export class AttemptTelemetry {
  readonly call: CallTelemetry;
  readonly handle: AttemptTarget;
  readonly resend: number;
  readonly hedge: boolean;
  readonly span: Span | undefined;
  readonly #start: number;
  #ended = false;

  constructor(call: CallTelemetry, handle: AttemptTarget, resend: number, hedge: boolean) {
    this.call = call;
    this.handle = handle;
    this.resend = resend;
    this.hedge = hedge;
    this.#start = call.state.env.clock.now();
    const tracer = call.tracer;
    if (tracer !== undefined && !call.undiciTraces) {
      const endpoint = handle.endpoint;
      const method = call.methodName;
      const attributes: Attributes = {
        [ATTR.method]: method,
        [ATTR.urlFull]: call.url,
        [ATTR.serverAddress]: call.label.service,
        [ATTR.serverPort]: 80,
        [ATTR.peerAddress]: endpoint.address,
        [ATTR.peerPort]: endpoint.port,
        [ATTR.endpoint]: endpoint.id,
      };
      if (call.state.service !== call.label.service) attributes[ATTR.target] = call.state.service;
      if (call.span === undefined) {
        // No call span: where routing sent the call goes on each attempt (only when routing chose).
        if (call.label.route !== undefined) attributes[ATTR.route] = call.label.route;
        if (call.label.subset !== undefined) attributes[ATTR.subset] = call.label.subset;
      }
      if (resend > 0) attributes[ATTR.resendCount] = resend;
      if (hedge) attributes[ATTR.hedge] = true;
      else if (resend > 0 && call.lastOutcome !== undefined) attributes[ATTR.retryReason] = call.lastOutcome;
      if (method === "_OTHER") attributes[ATTR.methodOriginal] = call.method;
      this.span = tracer.startSpan(method === "_OTHER" ? "HTTP" : method, { kind: SpanKind.CLIENT, attributes }, call.context);
    }
  }

  /**
   * The options to send: with this attempt's trace context in the headers (the global propagator's
   * `traceparent`, `tracestate`, `baggage`). Unchanged when the mesh does not trace attempts.
   */
  prepare<T extends { readonly headers?: Dispatcher.DispatchOptions["headers"] }>(options: T): T {
    const span = this.span;
    if (span === undefined) {
      // undici's instrumentation injects its own traceparent: a hand-set one would go out beside it (the
      // call's context already continues its trace).
      return this.call.handSetTrace ? { ...options, headers: withoutHeaders(options.headers, TRACE_HEADERS) } : options;
    }
    const parent = this.call.context ?? context.active();
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, span), carrier);
    return { ...options, headers: withTraceHeaders(options.headers, carrier) };
  }

  /**
   * Runs the send in the call's context, so that `@opentelemetry/instrumentation-undici` makes its span
   * a child of the call's span, or of the caller's (it injects the trace headers itself).
   */
  run<R>(send: () => R): R {
    const ctx = this.call.context;
    return this.call.undiciTraces && ctx !== undefined ? context.with(ctx, send) : send();
  }

  /**
   * The attempt is over: response headers (`status`), a failure (`error`), or given up (`cancelled`:
   * another attempt won, or the call ended). Idempotent.
   *
   * @param kind - the failure's kind as the retry rules name it (`connect-failure`, `reset`, ...: the
   *   next attempt's retry reason), or `cancelled` when another attempt won or the call gave it up
   */
  end(status: number | undefined, error: unknown, kind?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    const call = this.call;
    const cancelled = kind === "cancelled";
    const failure = status === undefined ? (cancelled ? "cancelled" : errorType(error)) : status >= 400 ? String(status) : undefined;
    if (!cancelled) call.lastOutcome = status === undefined ? (kind ?? failure) : String(status);
    const span = this.span;
    if (span !== undefined) {
      if (span.isRecording()) {
        if (status !== undefined) span.setAttribute(ATTR.status, status);
        if (failure !== undefined) span.setAttribute(ATTR.errorType, failure);
        if (failure !== undefined && !cancelled) span.setStatus({ code: SpanStatusCode.ERROR, ...(status === undefined ? { message: (error as Error | undefined)?.message ?? String(error) } : {}) });
      }
      span.end();
    }
    // Every attempt is a point (cancelled ones too, `error.type` cancelled): the histogram's count is the attempts.
    const meters = call.meters;
    if (meters !== undefined && !call.undiciTraces) {
      meters.attemptDuration.record((call.state.env.clock.now() - this.#start) / 1000, meters.outcome(call.label.service, call.methodName, status, failure));
    }
  }
}

/** The W3C trace context headers, which the trace's instrumentation writes once per request. */
const TRACE_HEADERS: ReadonlySet<string> = new Set(["traceparent", "tracestate"]);

/**
 * The parent of a call's span: the active context, or, when no span is active there, the trace the
 * caller's own `traceparent` header names (extracted with the global propagator).
 */
function parentContext(headers: unknown): Context {
  const active = context.active();
  if (trace.getSpan(active) !== undefined) return active;
  const traceparent = headerValue(headers, "traceparent");
  if (traceparent === undefined) return active;
  const carrier: Record<string, string> = { traceparent };
  const state = headerValue(headers, "tracestate");
  if (state !== undefined) carrier.tracestate = state;
  const baggage = headerValue(headers, "baggage");
  if (baggage !== undefined) carrier.baggage = baggage;
  return propagation.extract(active, carrier);
}

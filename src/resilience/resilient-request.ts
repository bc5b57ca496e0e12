import type { Dispatcher } from "undici";
import { isBulkheadRejectedError, type BulkheadPolicy } from "cockatiel";
import type { ServiceState } from "../client/service-state.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import { classifyError, retryAfterMs, type FailureKind } from "./classify.ts";
import { remainingIncomingMs } from "./deadline.ts";
import { backoff, breakerRefusal, budgetExhaustedError, budgetSpent, COARSE_TIMEOUT_MS, hedgeDelay, limitError, mayResend, retriesFailure, retriesStatus, timeoutError, withDeadlineHeader } from "./retry-rules.ts";
import type { CallPolicy } from "./resilience-options.ts";
import { sleep, systemClock } from "../core/clock.ts";
import { asArgumentError } from "../core/request-arguments.ts";
import type { AttemptTelemetry, CallLabel, CallTelemetry } from "../telemetry/call-telemetry.ts";

/** Picks the endpoint of each attempt. @internal */
export type AttemptPicker = (tried: ReadonlySet<EndpointHandle>) => EndpointHandle;

const EMPTY = new Set<EndpointHandle>();

/**
 * Sends a request with the upstream's protections: the concurrency limit, the circuit breaker (open:
 * fail at once, no I/O), a total deadline (until response headers, across attempts, told downstream in
 * `x-envoy-expected-rq-timeout-ms` and capped by an incoming one), a per-try timeout, and retries with
 * full-jitter exponential backoff to endpoints not yet tried, drawn from the retry budget. Nothing is
 * sent twice that must not be: only idempotent requests (or ones with an `Idempotency-Key`, or when
 * the caller opts in) are retried, except after a connect failure, when the request provably was not
 * sent; and only bodies that are buffered and small enough. Traced and measured when telemetry records.
 *
 * @param label - where routing sent the call, for its span (default: the service itself, no route)
 * @param startedAt - when the call began, if it waited (for the registry) before: its deadline counts from then
 * @internal
 */
export function resilientRequest(state: ServiceState, policy: CallPolicy, options: Dispatcher.RequestOptions, pick: AttemptPicker, label: CallLabel = state.plainLabel, startedAt?: number): Promise<Dispatcher.ResponseData> {
  const bulkhead = state.guard.bulkhead;
  const call = state.telemetry.start(state, label, options.method, options.path, options.headers);
  // No async frame of its own: without limits, the call is the attempts' promise (which ends the call's telemetry).
  if (bulkhead === undefined) return attempts(state, policy, options, pick, startedAt, call);
  // A call refused a slot ends here; one that got a slot ended already (ending twice does nothing).
  return call === undefined ? limited(state, bulkhead, policy, options, pick, undefined, startedAt) : call.track(limited(state, bulkhead, policy, options, pick, call, startedAt));
}

async function limited(state: ServiceState, bulkhead: BulkheadPolicy, policy: CallPolicy, options: Dispatcher.RequestOptions, pick: AttemptPicker, call: CallTelemetry | undefined, startedAt: number | undefined): Promise<Dispatcher.ResponseData> {
  // The deadline counts the wait for a slot (and for the registry, before); the slot is held until the response body is done.
  const start = startedAt ?? state.env.clock.now();
  return new Promise<Dispatcher.ResponseData>((resolve, reject) => {
    bulkhead
      .execute(
        () =>
          attempts(state, policy, options, pick, start, call).then(
            (res) => {
              resolve(res);
              return new Promise<void>((done) => {
                if (res.body.closed) done();
                res.body.once("close", done);
              });
            },
            (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
          ),
        (options.signal as AbortSignal | undefined) ?? undefined,
      )
      .catch((err: unknown) => {
        if (!isBulkheadRejectedError(err)) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        reject(limitError(state, err));
      });
  });
}

function attempts(state: ServiceState, policy: CallPolicy, options: Dispatcher.RequestOptions, pick: AttemptPicker, startedAt: number | undefined, call: CallTelemetry | undefined): Promise<Dispatcher.ResponseData> {
  const { clock } = state.env;
  const start = startedAt ?? clock.now();
  const incoming = remainingIncomingMs();
  const limit = policy.timeoutMs > 0 ? policy.timeoutMs : Infinity;
  const total = incoming === undefined ? limit : Math.min(incoming, limit);
  if (startedAt !== undefined && total <= clock.now() - start) return refuse(timeoutError(state, total, 0, undefined), call);
  const refusal = breakerRefusal(state);
  if (refusal !== undefined) return refuse(refusal, call);
  const guard = state.guard;
  if (
    startedAt !== undefined ||
    incoming !== undefined ||
    policy.explicitTimeout ||
    policy.hedging !== undefined ||
    policy.perTryTimeoutMs > 0 ||
    clock !== systemClock ||
    total > state.poolHeadersTimeout ||
    total <= state.poolHeadersTimeout - 1000
  ) {
    guard.budget.request();
    const loop = attemptLoop(state, policy, options, pick, start, total, incoming !== undefined, undefined, call);
    return call === undefined ? loop : call.track(loop);
  }
  // The common call: the pool's own headers timer is its limit, and an answer that cannot be retried
  // goes straight back; anything else continues in the loop with this first outcome.
  let handle: EndpointHandle;
  try {
    handle = pick(EMPTY);
  } catch (err) {
    guard.breaker?.release();
    return refuse(err instanceof Error ? err : new Error(String(err)), call);
  }
  guard.budget.request();
  if (call === undefined) {
    return handle.pool.request(options).then(
      (res) => {
        if (res.statusCode < 429 && policy.statusCodes.size === 0) {
          guard.observe(clock.now() - start);
          guard.outlier?.success(handle.endpoint.id);
          guard.breaker?.success();
          return res;
        }
        return attemptLoop(state, policy, options, pick, start, total, false, { handle, res }, undefined);
      },
      (err: unknown) => attemptLoop(state, policy, options, pick, start, total, false, { handle, error: err, failure: classifyError(err, options.signal as AbortSignal | undefined) }, undefined),
    );
  }
  // The same, traced: the attempt's span around the request, the call's ended with the answer.
  const attempt = call.attempt(handle, false);
  return send(handle, options, attempt).then(
    (res) => {
      attempt.end(res.statusCode, undefined);
      if (res.statusCode < 429 && policy.statusCodes.size === 0) {
        guard.observe(clock.now() - start);
        guard.outlier?.success(handle.endpoint.id);
        guard.breaker?.success();
        call.end(res.statusCode, undefined);
        return res;
      }
      return call.track(attemptLoop(state, policy, options, pick, start, total, false, { handle, res }, call));
    },
    (err: unknown) => {
      const failure = classifyError(err, options.signal as AbortSignal | undefined);
      attempt.end(undefined, err, failure);
      return call.track(attemptLoop(state, policy, options, pick, start, total, false, { handle, error: err, failure }, call));
    },
  );
}

/** A call refused before any attempt: its telemetry ends with the error. */
function refuse(error: Error, call: CallTelemetry | undefined): Promise<never> {
  call?.end(undefined, error);
  return Promise.reject(error);
}

/** The attempts of one call. */
async function attemptLoop(
  state: ServiceState,
  policy: CallPolicy,
  options: Dispatcher.RequestOptions,
  pick: AttemptPicker,
  start: number,
  total: number,
  inherited: boolean,
  first: AttemptOutcome | undefined,
  call: CallTelemetry | undefined,
): Promise<Dispatcher.ResponseData> {
  const guard = state.guard;
  const breaker = guard.breaker;
  // Whatever happens below, a breaker that let this call through hears how it went (or that it did not say).
  let reported = false;
  try {
    const { clock, random } = state.env;
    const deadline = start + total;
    const callerSignal = options.signal as AbortSignal | undefined;
    let tried: Set<EndpointHandle> | undefined;
    let budgetDenied = false;
    for (let retry = 0; ; retry++) {
      const handle = retry === 0 && first !== undefined ? first.handle : pick(tried ?? EMPTY);
      const now = retry === 0 && first !== undefined ? start : clock.now();
      const remaining = deadline - now;
      if (remaining <= 0) throw timeoutError(state, total, retry, undefined);
      const perTry = policy.perTryTimeoutMs > 0 ? Math.min(policy.perTryTimeoutMs, remaining) : remaining;
      const hedge = retry === 0 ? hedgeDelay(state, policy, options) : undefined;
      const tell = policy.explicitTimeout || inherited;
      let outcome: AttemptOutcome | undefined;
      let res: Dispatcher.ResponseData | undefined;
      let error: unknown;
      let failure: FailureKind | undefined;
      if (retry === 0 && first !== undefined) {
        // The first attempt was sent by the caller's fast path: its outcome is here already.
        ({ res, error, failure } = first);
      } else if (hedge === undefined && !tell && perTry <= state.poolHeadersTimeout && perTry > state.poolHeadersTimeout - 1000 && clock === systemClock) {
        // The common call: the pool's own headers timer is this attempt's limit; no option, no timer, no extra promise.
        const attempt = call?.attempt(handle, false);
        try {
          res = await (attempt === undefined ? handle.pool.request(options) : send(handle, options, attempt));
          attempt?.end(res.statusCode, undefined);
        } catch (err) {
          error = err;
          failure = classifyError(err, callerSignal);
          attempt?.end(undefined, err, failure);
        }
      } else {
        outcome =
          hedge === undefined
            ? await sendAttempt(state, handle, options, perTry, tell ? remaining : Infinity, callerSignal, undefined, call?.attempt(handle, false))
            : await hedged(state, handle, options, perTry, remaining, callerSignal, hedge, pick, call);
        ({ res, error, failure } = outcome);
      }
      const used = outcome?.handle ?? handle;
      if (used !== handle) (tried ??= new Set()).add(handle);
      const outlier = guard.outlier;
      const endpoints = outlier === undefined ? 1 : (state.endpoints?.size ?? 1);
      if (res !== undefined) {
        const status = res.statusCode;
        guard.observe(clock.now() - now);
        if (status < 500) outlier?.success(used.endpoint.id);
        else if (outlier?.failure(used.endpoint.id, endpoints) === true) call?.ejected(used);
        if (retriesStatus(policy, status) && retry < policy.maxRetries && mayResend(policy, options, undefined)) {
          const wait = status === 429 ? Math.max(backoff(policy, retry, random), retryAfterMs(res.headers, Date.now()) ?? 0) : backoff(policy, retry, random);
          // The deadline first: a retry that could not finish in time must not spend the budget.
          if (clock.now() + wait < deadline) {
            if (guard.budget.tryRetry()) {
              await res.body.dump();
              (tried ??= new Set()).add(used);
              if (wait > 0) await sleep(clock, wait, callerSignal);
              if (callerSignal?.aborted === true) throw callerSignal.reason;
              continue;
            }
            budgetSpent(state, call);
          }
        }
        reported = true;
        if (status >= 500) breaker?.failure();
        else breaker?.success();
        return res;
      }
      if (failure === "aborted") throw error;
      if (failure !== "other" && outlier?.failure(used.endpoint.id, endpoints) === true) call?.ejected(used);
      if (retriesFailure(policy, failure) && retry < policy.maxRetries && mayResend(policy, options, failure)) {
        const wait = backoff(policy, retry, random);
        if (clock.now() + wait < deadline) {
          if (guard.budget.tryRetry()) {
            (tried ??= new Set()).add(used);
            if (wait > 0) await sleep(clock, wait, callerSignal);
            if (callerSignal?.aborted === true) throw callerSignal.reason;
            continue;
          }
          budgetDenied = true;
          budgetSpent(state, call);
        }
      }
      // Only the upstream's failures count for the breaker; the caller's own errors (a bad header) do not.
      if (failure !== "other") {
        reported = true;
        breaker?.failure();
      }
      if (failure === "timeout" && clock.now() >= deadline - 1) throw timeoutError(state, total, retry + 1, error);
      if (failure === "timeout") throw timeoutError(state, perTry, retry + 1, error);
      if (budgetDenied) {
        throw budgetExhaustedError(state, error, retry + 1);
      }
      throw asArgumentError(error);
    }
  } finally {
    if (!reported) breaker?.release();
  }
}

/** What one attempt gave: a response, or an error and its kind. */
interface AttemptOutcome {
  readonly handle: EndpointHandle;
  readonly res?: Dispatcher.ResponseData;
  readonly error?: unknown;
  readonly failure?: FailureKind;
}

/** Sends an attempt's request, traced: with its trace headers, in its context. */
function send(handle: EndpointHandle, options: Dispatcher.RequestOptions, attempt: AttemptTelemetry): Promise<Dispatcher.ResponseData> {
  try {
    return attempt.run(() => handle.pool.request(attempt.prepare(options)));
  } catch (err) {
    // A propagator that throws fails this attempt, as a rejection, like any other send error.
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * Sends one attempt, within `perTry` ms until its response headers (on the mesh's clock); `cancel` aborts it (a lost hedge).
 *
 * @param attempt - its telemetry, ended here
 */
async function sendAttempt(
  state: ServiceState,
  handle: EndpointHandle,
  options: Dispatcher.RequestOptions,
  perTry: number,
  remaining: number,
  callerSignal: AbortSignal | undefined,
  cancel: AbortSignal | undefined,
  attempt: AttemptTelemetry | undefined,
): Promise<AttemptOutcome> {
  const clock = state.env.clock;
  if (cancel === undefined && (!Number.isFinite(perTry) || (perTry >= COARSE_TIMEOUT_MS && clock === systemClock))) {
    // A long limit on the real clock: undici's own headers timer (armed for every request anyway, with
    // about a second's precision) enforces it, so the common call needs no timer of its own. No limit
    // (timeoutMs 0) turns that timer off too, unless the pool options set one.
    const headers = Number.isFinite(remaining) ? withDeadlineHeader(options.headers, remaining) : undefined;
    const own = state.userHeadersTimeout;
    const limit = Math.min(perTry, own ?? Infinity);
    const sent = { ...options, headersTimeout: Number.isFinite(limit) ? Math.ceil(limit) : 0, ...(headers === undefined ? {} : { headers }) };
    try {
      const res = await (attempt === undefined ? handle.pool.request(sent) : send(handle, sent, attempt));
      attempt?.end(res.statusCode, undefined);
      return { handle, res };
    } catch (err) {
      const failure = classifyError(err, callerSignal);
      attempt?.end(undefined, err, failure);
      return { handle, error: err, failure };
    }
  }
  const timer = new AbortController();
  const timeout = Number.isFinite(perTry) ? clock.setTimeout(() => timer.abort(), Math.max(1, Math.ceil(perTry)), true) : undefined;
  const signals = [timer.signal, ...(callerSignal === undefined ? [] : [callerSignal]), ...(cancel === undefined ? [] : [cancel])];
  const signal = signals.length === 1 ? timer.signal : AbortSignal.any(signals);
  try {
    const headers = Number.isFinite(remaining) ? withDeadlineHeader(options.headers, remaining) : options.headers;
    const sent = { ...options, signal, ...(headers === undefined ? {} : { headers }) };
    const res = await (attempt === undefined ? handle.pool.request(sent) : send(handle, sent, attempt));
    attempt?.end(res.statusCode, undefined);
    return { handle, res };
  } catch (err) {
    if (cancel?.aborted === true) {
      attempt?.end(undefined, err, "cancelled");
      return { handle, error: err, failure: "aborted" };
    }
    const failure = timer.signal.aborted && callerSignal?.aborted !== true ? "timeout" : classifyError(err, callerSignal);
    attempt?.end(undefined, err, failure);
    return { handle, error: err, failure };
  } finally {
    clock.clearTimeout(timeout);
  }
}


/**
 * The first attempt with a hedge: if it has not answered after `delay` ms, a second goes to another
 * endpoint (drawn from the retry budget). The first response wins and the other attempt is aborted; if
 * both fail, the later failure is returned.
 */
async function hedged(
  state: ServiceState,
  first: EndpointHandle,
  options: Dispatcher.RequestOptions,
  perTry: number,
  remaining: number,
  callerSignal: AbortSignal | undefined,
  delay: number,
  pick: AttemptPicker,
  call: CallTelemetry | undefined,
): Promise<AttemptOutcome> {
  const clock = state.env.clock;
  const cancelFirst = new AbortController();
  const cancelSecond = new AbortController();
  const firstTrace = call?.attempt(first, false);
  let secondTrace: AttemptTelemetry | undefined;
  return new Promise<AttemptOutcome>((resolve) => {
    let settled = false;
    let started = false;
    let running = 1;
    const finish = (outcome: AttemptOutcome, other: AbortController, otherTrace: AttemptTelemetry | undefined): void => {
      running--;
      if (settled) {
        void outcome.res?.body.dump().catch(() => undefined);
        return;
      }
      if (outcome.res !== undefined) {
        settled = true;
        clock.clearTimeout(timer);
        // The loser's span ends now, before the call's, not when undici gets round to the abort.
        otherTrace?.end(undefined, undefined, "cancelled");
        other.abort();
        resolve(outcome);
      } else if (running === 0) {
        settled = true;
        resolve(outcome);
      }
    };
    void sendAttempt(state, first, options, perTry, remaining, callerSignal, cancelFirst.signal, firstTrace).then((o) => {
      if (!started && o.res === undefined) {
        // Failed before the hedge went: the normal retry path takes over.
        settled = true;
        clock.clearTimeout(timer);
        resolve(o);
        return;
      }
      finish(o, cancelSecond, secondTrace);
    });
    const timer = clock.setTimeout(() => {
      if (settled) return;
      let second: EndpointHandle;
      try {
        second = pick(new Set([first]));
      } catch {
        return; // no endpoint for a hedge (the service emptied meanwhile): the first attempt carries on alone
      }
      if (second === first) return; // nowhere else to go
      if (!state.guard.budget.tryRetry()) {
        budgetSpent(state, call);
        return;
      }
      started = true;
      running++;
      // The hedge gets what is left of the call's time, not a fresh allowance.
      secondTrace = call?.attempt(second, true);
      void sendAttempt(state, second, options, Math.max(1, Math.min(perTry, remaining) - delay), remaining - delay, callerSignal, cancelSecond.signal, secondTrace).then((o) => finish(o, cancelFirst, firstTrace));
    }, Math.max(0, delay), true);
  });
}



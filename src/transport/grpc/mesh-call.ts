import { InterceptingCall, Metadata, status as Status, type InterceptingListener, type Interceptor, type InterceptorOptions, type NextCall, type StatusObject } from "@grpc/grpc-js";
import type { Context } from "@opentelemetry/api";
import { isBulkheadRejectedError } from "cockatiel";
import type { PickContext } from "../../balancer/picker.ts";
import type { ServiceState } from "../../client/service-state.ts";
import { meshClosedError } from "../../client/service-state.ts";
import { sleep, systemClock, type Clock } from "../../core/clock.ts";
import { MeshError } from "../../core/errors.ts";
import type { HeaderChanges } from "../../config/route-config.ts";
import { pickUntried } from "../../resilience/pick-untried.ts";
import { remainingIncomingMs } from "../../resilience/deadline.ts";
import type { CallPolicy } from "../../resilience/resilience-options.ts";
import { backoff, breakerRefusal, limitError, retriesFailure, retriesStatus } from "../../resilience/retry-rules.ts";
import { decideRoute, type RouteDecision } from "../../routing/route-decision.ts";
import { RequestView } from "../../routing/request-view.ts";
import { selectEndpoints, selectWaiting, type Selection } from "../../routing/select-endpoints.ts";
import type { EndpointHandle } from "../http/endpoint-handle.ts";
import { isRefused, PICK_KEY, type Binding } from "./binding.ts";
import { activeContext, GrpcCallTelemetry, type GrpcAttemptTelemetry } from "./grpc-telemetry.ts";
import { recordLoad } from "./record-load.ts";
import { ERROR_CODE_KEY, grpcStatusOf, httpEquivalent } from "./status-map.ts";

/** The caller's metadata until start() gives it (never read or changed before that). */
const NO_METADATA = new Metadata();

/** The listener until start() gives one. */
const NO_LISTENER: Listener = Object.freeze({});

/** The pick context of a service without a hash policy. */
const NO_HASH: PickContext = Object.freeze({ hash: undefined });

/** grpc-js's interface of an intercepting call (not exported by name). */
type CallInterface = ConstructorParameters<typeof InterceptingCall>[0];
type MessageContext = Parameters<CallInterface["sendMessageWithContext"]>[0];
type Listener = Partial<InterceptingListener>;

/** What the mesh's interceptor for one service needs. @internal */
export interface GrpcCallSettings {
  readonly binding: Binding;
  /** The service the client calls. */
  readonly service: string;
  /** Whether a method (`/package.Service/Method`) may be sent twice: hedged, or retried on any retryable status. */
  readonly idempotent: (method: string) => boolean;
}

/**
 * The mesh's grpc-js interceptor for calls to one service: each call is routed, then sent with the
 * service's protections (see {@link MeshCall}). @internal
 */
export function meshInterceptor(settings: GrpcCallSettings): Interceptor {
  const plain = plainDecision(settings.service);
  // grpc-js uses what an interceptor returns only through InterceptingCallInterface, which MeshCall
  // implements; wrapping it in an InterceptingCall would add a layer (three bound listeners and two
  // objects per call) that does nothing here. The type says InterceptingCall, hence the cast.
  return (options, nextCall) => new MeshCall(settings, plain, options, nextCall, activeContext()) as unknown as InterceptingCall;
}

/** The decision for a service whose config routes nothing (no routes, splits, redirects, default subset or failover). */
function plainDecision(service: string): RouteDecision {
  return Object.freeze({ service, route: undefined, splits: [], redirects: [], target: Object.freeze({ service, subset: undefined }), path: "", requestHeaders: [], responseHeaders: [] });
}

/** Metadata as headers for routing (text values only), read only if a route or hash policy asks. */
class MetadataHeaders implements Iterable<[string, string]> {
  readonly #metadata: Metadata;
  constructor(metadata: Metadata) {
    this.#metadata = metadata;
  }
  *[Symbol.iterator](): Iterator<[string, string]> {
    for (const [key, value] of Object.entries(this.#metadata.getMap())) if (typeof value === "string") yield [key, value];
  }
}

function metadataHeaders(metadata: Metadata): Iterable<[string, string]> {
  return new MetadataHeaders(metadata);
}

function applyChanges(metadata: Metadata, changes: readonly HeaderChanges[]): void {
  for (const change of changes) {
    for (const name of change.remove ?? []) metadata.remove(name.toLowerCase());
    for (const [name, value] of Object.entries(change.set ?? {})) metadata.set(name.toLowerCase(), value);
    for (const [name, value] of Object.entries(change.add ?? {})) metadata.add(name.toLowerCase(), value);
  }
}

/** Asks an attempt for its responses, once. */
function startRead(attempt: Attempt): void {
  if (attempt.readStarted) return;
  attempt.readStarted = true;
  attempt.call.startRead();
}

function deadlineMs(deadline: InterceptorOptions["deadline"]): number {
  if (deadline === undefined) return Infinity;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/** Where an attempt's status goes, when not to the call's fast path. */
type AttemptDone = (attempt: Attempt, status: StatusObject) => void;

/**
 * One attempt: its grpc-js call, what it received while not yet the caller's, and the listener that
 * grpc-js tells (the attempt itself, so an attempt is one object and no closures).
 */
class Attempt {
  readonly owner: MeshCall;
  readonly call: CallInterface;
  readonly handle: EndpointHandle;
  readonly trace: GrpcAttemptTelemetry | undefined;
  /** When it was sent, on the mesh's clock. */
  readonly sentAt: number;
  /** Where its status goes; undefined: to the call's fast path ({@link MeshCall.firstEnded}). */
  readonly done: AttemptDone | undefined;
  metadata: Metadata | undefined = undefined;
  /** The first message it received and held back, if `held` is 1 or more; the others in `more`. */
  first: unknown = undefined;
  held = 0;
  more: unknown[] | undefined = undefined;
  /** Its responses go to the caller as they come (a streaming response started, or a streaming request). */
  committed: boolean;
  readStarted = false;
  /** The balancer refused it: nothing was sent. */
  refused = false;

  constructor(owner: MeshCall, call: CallInterface, handle: EndpointHandle, trace: GrpcAttemptTelemetry | undefined, sentAt: number, committed: boolean, done: AttemptDone | undefined) {
    this.owner = owner;
    this.call = call;
    this.handle = handle;
    this.trace = trace;
    this.sentAt = sentAt;
    this.committed = committed;
    this.done = done;
  }

  onReceiveMetadata(metadata: Metadata): void {
    this.owner.attemptMetadata(this, metadata);
  }

  onReceiveMessage(message: unknown): void {
    this.owner.attemptMessage(this, message);
  }

  onReceiveStatus(status: StatusObject): void {
    this.owner.attemptStatus(this, status);
  }

  /** Holds a message back until the attempt is the caller's. */
  hold(message: unknown): void {
    if (this.held++ === 0) this.first = message;
    else (this.more ??= []).push(message);
  }
}

interface Outcome {
  readonly attempt: Attempt;
  readonly status: StatusObject;
}

/** Where {@link MeshCall.#begin} left a call: its first attempt's outcome, and the deadlines it was sent with. */
interface Resumed {
  readonly outcome: Outcome;
  readonly deadline: number;
  readonly attemptDeadline: number;
}

/** What the fast path's first attempt was sent with, for the general path to go on from its outcome. */
interface FirstAttempt {
  readonly state: ServiceState;
  readonly policy: CallPolicy;
  readonly decision: RouteDecision;
  readonly first: Selection;
  readonly context: PickContext;
  readonly deadline: number;
  readonly attemptDeadline: number;
}

/**
 * One gRPC call through the mesh, below the caller's interceptors and above grpc-js's channel:
 *
 * - routes on the method (`/package.Service/Method`, as the path) and metadata (as headers), with the
 *   route model and weighted splits HTTP calls use; route header changes apply to the metadata;
 * - picks each attempt's endpoint with the target's balancer, and tells the `proxyless_mesh` balancer
 *   through a metadata key that never leaves the process;
 * - refuses at once when the breaker is open; holds a concurrency slot when limits are set;
 * - sends requests that are one message (unary, server streaming) again after a retryable outcome, to
 *   an endpoint not tried yet, within the call's deadline (the caller's, the route's timeout, an
 *   incoming one) and the shared retry budget; hedges idempotent unary methods;
 * - reports every attempt to outlier detection and the call to the breaker;
 * - traces the call and its attempts, with trace context in each attempt's metadata.
 *
 * A unary response is held until its status; a streaming response goes to the caller from its first
 * message (no retry after that). Calls with a streaming request are routed, balanced and guarded, but
 * not retried. @internal
 */
class MeshCall implements CallInterface {
  readonly #s: GrpcCallSettings;
  readonly #plain: RouteDecision;
  readonly #options: InterceptorOptions;
  readonly #nextCall: NextCall;
  readonly #parent: Context;
  readonly #path: string;
  readonly #requestStream: boolean;
  readonly #responseStream: boolean;
  #listener: Listener = NO_LISTENER;
  #metadata = NO_METADATA;
  #message: unknown;
  #hasMessage = false;
  #halfClosed = false;
  #readWanted = false;
  /** A one-message request waits for halfClose() to start. */
  #awaitingHalfClose = false;
  #committed: Attempt | undefined;
  /** The attempt in flight, while it is the only one (the common case: no set). */
  #one: Attempt | undefined;
  /** The attempts in flight, once a second one ran beside the first (a hedge). */
  #many: Set<Attempt> | undefined;
  /** The fast path's first attempt, for {@link MeshCall.firstEnded}. */
  #firstAttempt: FirstAttempt | undefined;
  /** A streaming request's calls before its attempt exists. */
  #pending: ((call: CallInterface) => void)[] | undefined;
  #finished = false;
  #cancelled = false;
  #telemetry: GrpcCallTelemetry | undefined;
  #changes: readonly HeaderChanges[] = [];
  #started = false;
  /** A status that came before start() (a cancel): given to the listener when it comes. */
  #early: StatusObject | undefined;
  /** The deadline known when the call started (the caller's, a parent's, an incoming one), on the wall clock. */
  #startDeadline = Infinity;
  /** Ends the wait for a slot when the call is cancelled or its deadline passes first (made only for that wait). */
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The mesh's clock, for the endpoints' load. */
  #clock: Clock = systemClock;
  /** Inside the caller's start() or halfClose(): a status now must wait for the next tick. */
  #inside = false;

  constructor(settings: GrpcCallSettings, plain: RouteDecision, options: InterceptorOptions, nextCall: NextCall, parent: Context) {
    this.#s = settings;
    this.#plain = plain;
    this.#options = options;
    this.#nextCall = nextCall;
    this.#parent = parent;
    this.#path = options.method_definition.path;
    this.#requestStream = options.method_definition.requestStream;
    this.#responseStream = options.method_definition.responseStream;
  }

  start(metadata: Metadata, listener?: Listener): void {
    this.#metadata = metadata;
    this.#listener = listener ?? NO_LISTENER;
    this.#started = true;
    if (this.#early !== undefined) {
      this.#deliver(this.#early, undefined);
      return;
    }
    this.#startDeadline = this.#callerDeadline();
    // A request that is one message starts once it is complete (grpc-js sends it and half-closes at once).
    if (!this.#requestStream) {
      this.#awaitingHalfClose = true;
      return;
    }
    this.#inside = true;
    try {
      this.#start();
    } finally {
      this.#inside = false;
    }
  }

  #start(): void {
    try {
      const running = this.#run();
      if (running !== undefined) running.catch((err: unknown) => this.#fail(err));
    } catch (err) {
      this.#fail(err);
    }
  }

  sendMessageWithContext(context: MessageContext, message: unknown): void {
    if (this.#requestStream) {
      this.#forward((call) => call.sendMessageWithContext(context, message));
      return;
    }
    this.#message = message;
    this.#hasMessage = true;
    context.callback?.();
  }

  sendMessage(message: unknown): void {
    this.sendMessageWithContext({}, message);
  }

  halfClose(): void {
    if (this.#requestStream) {
      this.#forward((call) => call.halfClose());
      return;
    }
    this.#halfClosed = true;
    if (!this.#awaitingHalfClose) return;
    this.#awaitingHalfClose = false;
    this.#inside = true;
    try {
      this.#start();
    } finally {
      this.#inside = false;
    }
  }

  startRead(): void {
    const committed = this.#committed;
    if (committed !== undefined) {
      committed.call.startRead();
      return;
    }
    this.#readWanted = true;
    if (this.#one !== undefined) startRead(this.#one);
    for (const attempt of this.#many ?? []) startRead(attempt);
  }

  cancelWithStatus(code: Status, details: string): void {
    this.#cancelled = true;
    this.#abort?.abort();
    const attempts = this.#inFlight();
    if (attempts.length === 0) {
      this.#finish({ code, details, metadata: new Metadata() });
      return;
    }
    for (const attempt of attempts) attempt.call.cancelWithStatus(code, details);
  }

  getPeer(): string {
    const attempt = this.#committed ?? this.#anyInFlight();
    return attempt?.call.getPeer() ?? "";
  }

  getAuthContext(): ReturnType<CallInterface["getAuthContext"]> {
    const attempt = this.#committed ?? this.#anyInFlight();
    return attempt?.call.getAuthContext() ?? null;
  }

  #track(attempt: Attempt): void {
    if (this.#many !== undefined) this.#many.add(attempt);
    else if (this.#one === undefined) this.#one = attempt;
    else {
      this.#many = new Set([this.#one, attempt]);
      this.#one = undefined;
    }
  }

  #untrack(attempt: Attempt): void {
    if (this.#one === attempt) this.#one = undefined;
    else this.#many?.delete(attempt);
  }

  /** The attempts in flight, as a list (safe to change the set while going through it). */
  #inFlight(): Attempt[] {
    if (this.#many !== undefined) return [...this.#many];
    return this.#one === undefined ? [] : [this.#one];
  }

  #anyInFlight(): Attempt | undefined {
    return this.#one ?? this.#many?.values().next().value;
  }

  #forward(op: (call: CallInterface) => void): void {
    const committed = this.#committed;
    if (committed !== undefined) op(committed.call);
    else (this.#pending ??= []).push(op);
  }

  /** Routes the call and sends its attempts; undefined when it ended at once. */
  #run(): Promise<void> | undefined {
    if (this.#finished) return undefined;
    const { binding, service } = this.#s;
    const mesh = binding.mesh;
    if (mesh.closed()) throw meshClosedError();
    const stateOf = mesh.stateOf;
    // As HTTP calls: no routing work when the service's config routes nothing.
    const own = stateOf(service);
    const picker = own.picker;
    if (!own.routing.active && picker !== undefined) return this.#send(this.#plain, { state: own, target: this.#plain.target, picker, targets: own.targets, skipped: [] });
    const decision = decideRoute(service, new RequestView({ method: "POST", path: this.#path, headers: metadataHeaders(this.#metadata) }), (s) => stateOf(s).routing, true);
    this.#changes = decision.requestHeaders;
    const now = selectEndpoints(decision, stateOf, false);
    if (now.kind === "wait") {
      // The registry has not answered for a service yet: wait for it (up to the discovery timeout, or the call's deadline).
      this.#armDeadline();
      return selectWaiting(decision, stateOf).then((outcome) => {
        if (outcome.kind === "fail") throw outcome.error;
        if (this.#finished) return undefined;
        return this.#send(decision, outcome.selection);
      });
    }
    if (now.kind === "fail") throw now.error;
    return this.#send(decision, now.selection);
  }

  #send(decision: RouteDecision, first: Selection): Promise<void> | undefined {
    const mesh = this.#s.binding.mesh;
    const state = first.state;
    this.#clock = state.env.clock;
    const policy = state.policyFor(decision.route?.config.destination);
    const hasher = state.hasher;
    const context: PickContext = hasher === undefined ? NO_HASH : { hash: hasher({ path: this.#path, headers: metadataHeaders(this.#metadata) }) };
    this.#telemetry = GrpcCallTelemetry.start(mesh.telemetry, this.#path, state, decision, this.#parent);
    const refusal = breakerRefusal(state);
    if (refusal !== undefined) throw refusal;
    const bulkhead = state.guard.bulkhead;
    if (bulkhead === undefined) return this.#begin(state, policy, decision, first, context);
    this.#armDeadline();
    this.#abort = new AbortController();
    return bulkhead.execute(() => this.#attempts(state, policy, decision, first, context), this.#abort.signal).catch((err: unknown) => {
      if (this.#finished) return; // cancelled, or its deadline passed, while it waited for a slot
      if (!isBulkheadRejectedError(err)) throw err;
      state.guard.breaker?.release();
      throw limitError(state, err);
    });
  }

  /** The deadline known at start, on the wall clock (grpc-js's): the caller's, a parent call's, an incoming request's. */
  #callerDeadline(): number {
    let deadline = deadlineMs(this.#options.deadline);
    const parent = this.#options.parent as { getDeadline?: () => Date | number } | undefined;
    if (parent?.getDeadline !== undefined) deadline = Math.min(deadline, deadlineMs(parent.getDeadline()));
    const incoming = remainingIncomingMs();
    if (incoming !== undefined) deadline = Math.min(deadline, Date.now() + Math.max(0, incoming));
    return deadline;
  }

  /**
   * Ends the call at its deadline if it is still waiting to send (for the registry, or a slot); armed
   * only on those paths, so the common call pays for no timer.
   */
  #armDeadline(): void {
    const deadline = this.#startDeadline;
    if (!Number.isFinite(deadline) || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      if (this.#anyInFlight() !== undefined || this.#finished) return; // an attempt is out: grpc-js enforces the deadline
      this.#abort?.abort();
      this.#expire();
    }, Math.max(0, deadline - Date.now()));
    // Not unref'd: the call waits on it (for the registry or a slot), and a pending call keeps the process alive.
  }

  /** The deadline passed before anything was sent: DEADLINE_EXCEEDED, and no endpoint is blamed. */
  #expire(): void {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_KEY, "ERR_TIMEOUT");
    this.#finish({ code: Status.DEADLINE_EXCEEDED, details: `A call to '${this.#s.service}' reached its deadline before it could be sent.`, metadata });
  }

  /** The call's deadline: the one known at start, and a timeout configured on purpose. */
  #deadline(policy: CallPolicy): number {
    const deadline = this.#startDeadline;
    // Only a timeout set on purpose (the route's, the upstream's, service-defaults): gRPC calls have no
    // deadline unless someone gives one, and a deadline costs timers on both sides of every call.
    return policy.timeoutMs > 0 && policy.explicitTimeout ? Math.min(deadline, Date.now() + policy.timeoutMs) : deadline;
  }

  /**
   * The call's attempts, from the first (or, `resumed`, from the first's outcome, which the fast path in
   * {@link #begin} sent and the budget already counted) until one is the caller's.
   */
  async #attempts(state: ServiceState, policy: CallPolicy, decision: RouteDecision, first: Selection, context: PickContext, resumed?: Resumed): Promise<void> {
    const { binding } = this.#s;
    const stateOf = binding.mesh.stateOf;
    const guard = state.guard;
    const breaker = guard.breaker;
    const { clock, random } = state.env;
    const deadline = resumed?.deadline ?? this.#deadline(policy);
    const replayable = !this.#requestStream;
    const idempotent = this.#s.idempotent(this.#path);
    let selection = first;
    const tried = new Set<EndpointHandle>();
    let reported = false;
    if (resumed === undefined) guard.budget.request();
    try {
      for (let retry = 0; ; retry++) {
        let outcome: Outcome;
        let attemptDeadline: number;
        if (retry === 0 && resumed !== undefined) {
          outcome = resumed.outcome;
          attemptDeadline = resumed.attemptDeadline;
        } else {
          if (this.#finished) return;
          if (Date.now() >= deadline) {
            this.#expire();
            return;
          }
          if (retry > 0) {
            const again = selectEndpoints(decision, stateOf, true);
            if (again.kind === "ready") selection = again.selection;
          }
          const handle = pickUntried(selection.picker, context, tried);
          const now = Date.now();
          attemptDeadline = policy.perTryTimeoutMs > 0 ? Math.min(deadline, now + policy.perTryTimeoutMs) : deadline;
          const sendBy = attemptDeadline;
          const hedge = retry === 0 && !this.#responseStream && replayable && idempotent ? this.#hedgeDelay(state, policy) : undefined;
          outcome =
            hedge === undefined
              ? await new Promise<Outcome>((resolve) => {
                  this.#attempt(handle, selection.state.service, sendBy, retry, false, (attempt, status) => resolve({ attempt, status }));
                })
              : await this.#hedged(state, handle, selection.state.service, sendBy, hedge, selection, context, (lost) => {
                  // A hedged attempt that failed while the other went on: outlier detection hears of it, and a retry avoids it.
                  tried.add(lost.attempt.handle);
                  if (lost.status.code !== Status.CANCELLED && (lost.attempt.refused || httpEquivalent(lost.status.code) >= 500)) guard.outlier?.failure(lost.attempt.handle.endpoint.id, state.endpoints?.size ?? 1);
                });
        }
        const service = selection.state.service;
        const attempt = outcome.attempt;
        const code = outcome.status.code;
        tried.add(attempt.handle);
        if (this.#cancelled || this.#finished) {
          this.#finish(outcome.status, attempt);
          return;
        }
        const http = httpEquivalent(code);
        const failure = attempt.refused ? "connect-failure" : code === Status.DEADLINE_EXCEEDED && attemptDeadline < deadline ? "timeout" : undefined;
        const outlier = guard.outlier;
        if (failure !== undefined || http >= 500) {
          if (outlier?.failure(attempt.handle.endpoint.id, state.endpoints?.size ?? 1) === true) this.#telemetry?.ejected(attempt.handle);
        } else {
          outlier?.success(attempt.handle.endpoint.id);
          if (code === Status.OK) guard.observe(clock.now() - attempt.sentAt);
        }
        if (code !== Status.OK && !attempt.committed && replayable && retry < policy.maxRetries) {
          const retryable = failure === undefined ? retriesStatus(policy, http) : retriesFailure(policy, failure);
          // UNAVAILABLE says the request was not processed (gRPC's own retry policy resends it for any method).
          const resend = failure === "connect-failure" || code === Status.UNAVAILABLE || idempotent || policy.retryNonIdempotent;
          if (retryable && resend) {
            const wait = backoff(policy, retry, random);
            if (Date.now() + wait < deadline) {
              if (guard.budget.tryRetry()) {
                this.#telemetry?.retried(service, failure ?? (STATUS_REASON[code] ?? String(code)));
                if (wait > 0) await sleep(clock, wait);
                if (this.#finished) return;
                continue;
              }
              state.events.emit("retry_budget_exhausted", { service: state.service });
              this.#telemetry?.budgetExhausted(state.service);
              reported = true;
              if (failure !== undefined || http >= 500) breaker?.failure();
              else breaker?.success();
              this.#finish(withErrorCode(outcome.status, "ERR_RETRY_BUDGET_EXHAUSTED"), attempt);
              return;
            }
          }
        }
        reported = true;
        if (failure !== undefined || http >= 500) breaker?.failure();
        else breaker?.success();
        this.#finish(outcome.status, attempt);
        return;
      }
    } finally {
      if (!reported) breaker?.release();
    }
  }

  /**
   * The common call (no limits), without a promise: the first attempt goes out at once, and an OK answer
   * goes to the caller from grpc-js's own callback. Anything else (a failure, a hedged method, a call
   * already past its deadline) continues in {@link #attempts}, from where this left off.
   */
  #begin(state: ServiceState, policy: CallPolicy, decision: RouteDecision, first: Selection, context: PickContext): Promise<void> | undefined {
    if (policy.hedging !== undefined && !this.#responseStream && !this.#requestStream && this.#s.idempotent(this.#path)) return this.#attempts(state, policy, decision, first, context);
    const deadline = this.#deadline(policy);
    if (this.#finished || (deadline !== Infinity && Date.now() >= deadline)) return this.#attempts(state, policy, decision, first, context);
    const guard = state.guard;
    const handle = first.picker.pick(context);
    const attemptDeadline = policy.perTryTimeoutMs > 0 ? Math.min(deadline, Date.now() + policy.perTryTimeoutMs) : deadline;
    guard.budget.request();
    this.#firstAttempt = { state, policy, decision, first, context, deadline, attemptDeadline };
    try {
      this.#attempt(handle, first.state.service, attemptDeadline, 0, false, undefined);
    } catch (err) {
      guard.breaker?.release();
      throw err;
    }
    return undefined;
  }

  /**
   * The status of the fast path's first attempt: an OK answer goes to the caller from here; anything
   * else goes on in {@link #attempts}. @internal
   */
  firstEnded(attempt: Attempt, status: StatusObject, now: number): void {
    const first = this.#firstAttempt;
    if (first === undefined) return;
    if (status.code === Status.OK && !this.#cancelled && !this.#finished) {
      const guard = first.state.guard;
      guard.outlier?.success(attempt.handle.endpoint.id);
      guard.observe(now - attempt.sentAt);
      guard.breaker?.success();
      this.#finish(status, attempt, true);
      return;
    }
    const resumed: Resumed = { outcome: { attempt, status }, deadline: first.deadline, attemptDeadline: first.attemptDeadline };
    this.#attempts(first.state, first.policy, first.decision, first.first, first.context, resumed).catch((err: unknown) => this.#fail(err));
  }

  #hedgeDelay(state: ServiceState, policy: CallPolicy): number | undefined {
    const hedging = policy.hedging;
    if (hedging === undefined) return undefined;
    return hedging.delayMs ?? state.guard.percentile(hedging.percentile ?? 95);
  }

  /**
   * Sends one attempt to `handle`; `done` gets its status (and what it received, unless it went to the
   * caller), or, undefined, {@link firstEnded}. Throws, before anything is counted, when the client was
   * closed meanwhile.
   */
  #attempt(handle: EndpointHandle, service: string, deadline: number, resend: number, hedge: boolean, done: AttemptDone | undefined): void {
    const binding = this.#s.binding;
    // The caller's options as they are when the deadline is theirs (the common call: a copy less).
    const options = this.#options;
    // Throws when the client was closed meanwhile: before anything is counted.
    const call = this.#nextCall(deadline === deadlineMs(options.deadline) ? options : { ...options, deadline });
    const metadata = this.#metadata.clone();
    if (this.#changes.length > 0) applyChanges(metadata, this.#changes);
    metadata.set(PICK_KEY, binding.tokenFor(handle, service));
    const trace = this.#telemetry?.attempt(handle, service, resend, hedge);
    try {
      trace?.inject(metadata);
    } catch {
      // A propagator that throws costs the trace context, not the call.
    }
    // The endpoint's load (least_request, peak_ewma) counts the attempt from now to its status.
    const attempt = new Attempt(this, call, handle, trace, this.#clock.now(), this.#requestStream, done);
    handle.load.pending++;
    binding.attemptStarted();
    if (attempt.committed) this.#committed = attempt;
    this.#track(attempt);
    call.start(metadata, attempt);
    if (this.#requestStream) {
      for (const op of this.#pending ?? []) op(call);
      this.#pending = undefined;
      if (this.#readWanted) {
        attempt.readStarted = true;
        call.startRead();
      }
      return;
    }
    if (this.#hasMessage) call.sendMessage(this.#message);
    if (this.#halfClosed) call.halfClose();
    if (this.#readWanted) {
      attempt.readStarted = true;
      call.startRead();
    }
  }

  /** An attempt's response metadata (grpc-js, through {@link Attempt}). @internal */
  attemptMetadata(attempt: Attempt, received: Metadata): void {
    if (attempt.committed) this.#listener.onReceiveMetadata?.(received);
    else attempt.metadata = received;
  }

  /** An attempt's response message (grpc-js, through {@link Attempt}). @internal */
  attemptMessage(attempt: Attempt, message: unknown): void {
    if (attempt.committed) {
      this.#listener.onReceiveMessage?.(message);
    } else if (this.#responseStream && !this.#finished) {
      // A streaming response's first message: from now on the caller has it, and it is not retried.
      this.#commit(attempt);
      this.#listener.onReceiveMessage?.(message);
    } else {
      attempt.hold(message);
    }
  }

  /** An attempt's status (grpc-js, through {@link Attempt}): its endpoint's load, then where its status goes. @internal */
  attemptStatus(attempt: Attempt, status: StatusObject): void {
    const load = attempt.handle.load;
    load.pending--;
    const now = this.#clock.now();
    recordLoad(load, status.code, now - attempt.sentAt, now, this.#responseStream);
    this.#s.binding.attemptEnded();
    this.#untrack(attempt);
    // The balancer refused it: nothing was sent.
    if (status.code === Status.UNAVAILABLE && isRefused(status.metadata)) attempt.refused = true;
    attempt.trace?.end(status.code, status.details);
    const done = attempt.done;
    if (done === undefined) this.firstEnded(attempt, status, now);
    else done(attempt, status);
  }

  #commit(attempt: Attempt): void {
    attempt.committed = true;
    this.#committed = attempt;
    for (const other of this.#inFlight()) if (other !== attempt) other.call.cancelWithStatus(Status.CANCELLED, "Another attempt answered first");
    if (attempt.metadata !== undefined) this.#listener.onReceiveMetadata?.(attempt.metadata);
  }

  /**
   * The first attempt with a hedge: if it has no status after `delay` ms, a second goes to another
   * endpoint (drawn from the retry budget). The first OK wins and the other is cancelled; if both fail,
   * the later failure is the outcome.
   */
  #hedged(state: ServiceState, first: EndpointHandle, service: string, deadline: number, delay: number, selection: Selection, context: PickContext, report: (lost: Outcome) => void): Promise<Outcome> {
    const clock = state.env.clock;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let running = 1;
      let hedgeSent = false;
      const finish = (attempt: Attempt, status: StatusObject): void => {
        const outcome: Outcome = { attempt, status };
        running--;
        if (settled) {
          if (outcome.status.code !== Status.CANCELLED) report(outcome);
          return;
        }
        if (outcome.status.code === Status.OK || running === 0 || this.#cancelled) {
          settled = true;
          clock.clearTimeout(timer);
          for (const other of this.#inFlight()) other.call.cancelWithStatus(Status.CANCELLED, "Another attempt answered first");
          resolve(outcome);
        } else {
          report(outcome);
        }
      };
      const timer = clock.setTimeout(() => {
        if (settled || this.#finished) return;
        const other = pickUntried(selection.picker, context, new Set([first]));
        if (other === first) return; // nowhere else to go
        if (!state.guard.budget.tryRetry()) {
          state.events.emit("retry_budget_exhausted", { service: state.service });
          this.#telemetry?.budgetExhausted(state.service);
          return;
        }
        running++;
        try {
          this.#attempt(other, service, deadline, 1, true, finish);
        } catch {
          running--;
          return; // the client was closed meanwhile: no hedge
        }
        hedgeSent = true;
        this.#telemetry?.hedged(service);
      }, Math.max(0, delay), true);
      this.#attempt(first, service, deadline, 0, false, (attempt, status) => {
        if (!hedgeSent && status.code !== Status.OK) {
          // Failed before the hedge went: the retry path takes over.
          settled = true;
          clock.clearTimeout(timer);
          resolve({ attempt, status });
          return;
        }
        finish(attempt, status);
      });
    });
  }

  /** The mesh refused the call (or routing failed): the caller gets a status that says why. */
  #fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const code: Status = error instanceof MeshError ? grpcStatusOf(error) : Status.INTERNAL;
    const metadata = new Metadata();
    if (error instanceof MeshError) metadata.set(ERROR_CODE_KEY, error.code);
    this.#finish({ code, details: error.message, metadata });
  }

  /**
   * Gives the caller the outcome: what the attempt held back, then its status. Once.
   *
   * @param direct - called from grpc-js's own status callback (not from a promise chain): delivered at
   *   once, as a plain client would, unless that callback came inside the caller's own start()/halfClose()
   */
  #finish(status: StatusObject, attempt?: Attempt, direct = false): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#awaitingHalfClose = false;
    clearTimeout(this.#timer);
    this.#telemetry?.end(status.code, status.details);
    if (!this.#started) {
      this.#early = status;
      return;
    }
    // Never from inside the caller's own start()/halfClose(), and outside any promise chain (as grpc-js
    // does), where an exception the caller's callback throws would be lost.
    if (direct && !this.#inside) this.#deliver(status, attempt);
    else process.nextTick(() => this.#deliver(status, attempt));
  }

  #deliver(status: StatusObject, attempt: Attempt | undefined): void {
    if (attempt !== undefined && !attempt.committed) {
      const listener = this.#listener;
      if (attempt.metadata !== undefined) listener.onReceiveMetadata?.(attempt.metadata);
      if (attempt.held > 0) listener.onReceiveMessage?.(attempt.first);
      for (const message of attempt.more ?? []) listener.onReceiveMessage?.(message);
    }
    this.#listener.onReceiveStatus?.(status);
  }
}

const STATUS_REASON: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(Status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v as number, k]));

function withErrorCode(status: StatusObject, code: string): StatusObject {
  const metadata = status.metadata.clone();
  metadata.set(ERROR_CODE_KEY, code);
  return { ...status, metadata };
}

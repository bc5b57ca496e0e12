import { InterceptingCall, Metadata, status as Status, type InterceptingListener, type Interceptor, type InterceptorOptions, type NextCall, type StatusObject } from "@grpc/grpc-js";
import type { Context } from "@opentelemetry/api";
import type { PickContext } from "../balancer/picker.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { meshClosedError } from "../upstream/upstream-errors.ts";
import type { Clock, TimerHandle } from "../core/clock.ts";
import { MeshError } from "../core/errors.ts";
import type { CompiledHeaderChanges } from "../config/header-rules.ts";
import { AttemptCancelled, EngineAttempt, EngineCall, type RequestShape } from "../resilience/call-engine.ts";
import { pickUntried } from "../resilience/pick-untried.ts";
import { remainingIncomingMs } from "../core/incoming-deadline.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import { decideRoute, type RouteDecision } from "../routing/route-decision.ts";
import { RequestView } from "../routing/request-view.ts";
import { selectEndpoints, selectWaiting, type Selection } from "../routing/select-endpoints.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import { refusalOf, type Binding } from "../transport/grpc/binding.ts";
import { activeContext, GrpcCallTelemetry, type GrpcAttemptTelemetry } from "./grpc-telemetry.ts";
import { recordLoad } from "../transport/grpc/record-load.ts";
import { ERROR_CODE_KEY, grpcStatusOf, httpEquivalent } from "../transport/grpc/status-map.ts";

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

function applyChanges(metadata: Metadata, changes: readonly CompiledHeaderChanges[]): void {
  for (const change of changes) {
    for (const name of change.drop) metadata.remove(name);
    for (const [name, value] of change.set) metadata.set(name, value);
    for (const [name, value] of change.add) metadata.add(name, value);
  }
}

/** Asks an attempt for its responses, once. */
function startRead(attempt: Attempt): void {
  if (attempt.readStarted) return;
  attempt.readStarted = true;
  attempt.call?.startRead();
}

/** A wall-clock deadline (grpc-js's: a Date or ms since the epoch) as ms from now; Infinity for none. */
function msUntil(deadline: InterceptorOptions["deadline"] | Date | number | undefined): number {
  if (deadline === undefined) return Infinity;
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  // The one place the wall clock is read: the caller's deadline is a wall-clock time; from here on the
  // call runs on the mesh's clock.
  return Number.isFinite(at) ? at - Date.now() : Infinity;
}

/**
 * One attempt: its grpc-js call, what it received while not yet the caller's, and the listener that
 * grpc-js tells (the attempt itself).
 */
class Attempt extends EngineAttempt<EndpointHandle> {
  readonly owner: MeshCall;
  call: CallInterface | undefined = undefined;
  trace: GrpcAttemptTelemetry | undefined = undefined;
  /** The service the endpoint belongs to (routing may have sent the call elsewhere). */
  readonly service: string;
  metadata: Metadata | undefined = undefined;
  /** The first message it received and held back, if `held` is 1 or more; the others in `more`. */
  first: unknown = undefined;
  held = 0;
  more: unknown[] | undefined = undefined;
  /** Its responses go to the caller as they come (a streaming response started, or a streaming request). */
  committed = false;
  readStarted = false;
  /** When its load was counted, on the mesh's clock. */
  loadFrom = 0;

  constructor(owner: MeshCall, handle: EndpointHandle, hedge: boolean, resend: number, service: string) {
    super(handle, hedge, resend);
    this.owner = owner;
    this.service = service;
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

/** The engine's side of a gRPC call: attempts are grpc-js calls below the caller's interceptors. */
class GrpcEngineCall extends EngineCall<EndpointHandle, Attempt> {
  readonly #owner: MeshCall;
  readonly #telemetry: GrpcCallTelemetry | undefined;
  /** Why the last attempt failed, for the retries metric. */
  lastReason = "unknown";

  constructor(owner: MeshCall, state: UpstreamView, policy: CallPolicy, pick: (tried: ReadonlySet<EndpointHandle>) => EndpointHandle, shape: RequestShape, telemetry: GrpcCallTelemetry | undefined, startedAt: number | undefined) {
    super(state, policy, pick, shape, startedAt);
    this.#owner = owner;
    this.#telemetry = telemetry;
    if (telemetry !== undefined) {
      const service = state.service;
      this.trace = { ejected: (handle) => telemetry.ejected(handle), budgetExhausted: () => telemetry.budgetExhausted(service) };
    }
  }

  protected attempt(handle: EndpointHandle, hedge: boolean, resend: number): Attempt {
    const service = this.#owner.targetService;
    if (resend > 0) {
      if (hedge) this.#telemetry?.hedged(service);
      else this.#telemetry?.retried(service, this.lastReason);
    }
    const attempt = new Attempt(this.#owner, handle, hedge, resend, service);
    attempt.trace = this.#telemetry?.attempt(handle, service, resend, hedge);
    return attempt;
  }

  protected send(attempt: Attempt): void {
    this.#owner.sendAttempt(attempt);
  }

  protected cancel(attempt: Attempt, reason: Error): void {
    attempt.call?.cancelWithStatus(Status.CANCELLED, reason.message);
  }

  protected fail(error: Error): void {
    this.#owner.failWith(error);
  }
}

/**
 * One gRPC call through the mesh, below the caller's interceptors and above grpc-js's channel: the gRPC
 * adapter onto the call engine. It routes on the method (`/package.Service/Method`, as the path) and
 * metadata (as headers), with the route model and weighted splits HTTP calls use (route header changes
 * apply to the metadata); each attempt's endpoint goes to the `proxyless_mesh` balancer in a metadata key
 * that never leaves the process; trace context goes in each attempt's metadata. The engine decides the
 * rest (deadline, retries, hedging, budget, breaker, outlier reports, limits).
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
  /** The attempts in flight. */
  #x: Attempt | undefined;
  #y: Attempt | undefined;
  /** A streaming request's calls before its attempt exists. */
  #pending: ((call: CallInterface) => void)[] | undefined;
  #finished = false;
  #cancelled = false;
  #engine: GrpcEngineCall | undefined;
  #changes: readonly CompiledHeaderChanges[] = [];
  #started = false;
  /** A status that came before start() (a cancel): given to the listener when it comes. */
  #early: StatusObject | undefined;
  /** The caller's limit known when the call started (its deadline, a parent's, an incoming one), in ms from then. */
  #callerLimit = Infinity;
  /** The wait for the registry's end (the caller's deadline), on the mesh's clock. */
  #timer: TimerHandle;
  #clock: Clock | undefined;
  /** When routing began, on the mesh's clock. */
  #routedAt: number | undefined;
  /** The service the current selection is of (the attempts' tokens name it). */
  targetService: string;
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
    this.targetService = settings.service;
  }

  start(metadata: Metadata, listener?: Listener): void {
    this.#metadata = metadata;
    this.#listener = listener ?? NO_LISTENER;
    this.#started = true;
    if (this.#early !== undefined) {
      this.#deliver(this.#early, undefined);
      return;
    }
    this.#callerLimit = this.#callerDeadline();
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
      if (running !== undefined) running.catch((err: unknown) => this.failWith(err as Error));
    } catch (err) {
      this.failWith(err as Error);
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
      committed.call?.startRead();
      return;
    }
    this.#readWanted = true;
    for (const attempt of this.#inFlight()) startRead(attempt);
  }

  cancelWithStatus(code: Status, details: string): void {
    if (this.#cancelled || this.#finished) return;
    this.#cancelled = true;
    // The caller hears its own status, once; then the engine gives every attempt up.
    this.#finish({ code, details, metadata: new Metadata() });
    this.#engine?.abort(new AttemptCancelled(details));
    for (const attempt of this.#inFlight()) attempt.call?.cancelWithStatus(code, details);
  }

  /** The mesh was destroyed: the caller hears why (ERR_MESH_CLOSED), and every attempt is cancelled. @internal */
  destroy(error: Error): void {
    if (this.#finished) return;
    this.failWith(error);
    this.#engine?.abort(error);
    for (const attempt of this.#inFlight()) attempt.call?.cancelWithStatus(Status.CANCELLED, error.message);
  }

  getPeer(): string {
    const attempt = this.#committed ?? this.#x ?? this.#y;
    return attempt?.call?.getPeer() ?? "";
  }

  getAuthContext(): ReturnType<CallInterface["getAuthContext"]> {
    const attempt = this.#committed ?? this.#x ?? this.#y;
    return attempt?.call?.getAuthContext() ?? null;
  }

  /** The attempts in flight (at most two: the first and a hedge), as a list safe to change while going through it. */
  #inFlight(): Attempt[] {
    const x = this.#x;
    const y = this.#y;
    return x === undefined ? (y === undefined ? [] : [y]) : y === undefined ? [x] : [x, y];
  }

  #forward(op: (call: CallInterface) => void): void {
    const committed = this.#committed;
    if (committed?.call !== undefined) op(committed.call);
    else (this.#pending ??= []).push(op);
  }

  /** Routes the call and hands it to the engine; a promise only when it waits for the registry. */
  #run(): Promise<void> | undefined {
    if (this.#finished) return undefined;
    const { binding, service } = this.#s;
    const mesh = binding.mesh;
    if (mesh.closed()) throw meshClosedError();
    const stateOf = mesh.stateOf;
    // As HTTP calls: no routing work when the service's config routes nothing.
    const own = stateOf(service);
    this.#clock = own.env.clock;
    this.#routedAt = own.env.clock.now();
    const picker = own.picker;
    if (!own.routing.active && picker !== undefined) {
      this.#send(this.#plain, { state: own, target: this.#plain.target, picker, targets: own.targets, skipped: [] });
      return undefined;
    }
    const decision = decideRoute(service, new RequestView({ method: "POST", path: this.#path, headers: metadataHeaders(this.#metadata) }), (s) => stateOf(s).routing, true);
    this.#changes = decision.requestHeaders;
    const now = selectEndpoints(decision, stateOf, false);
    if (now.kind === "wait") {
      // The registry has not answered for a service yet: wait for it (up to the discovery timeout, or the call's deadline).
      this.#armDeadline();
      return selectWaiting(decision, stateOf).then((outcome) => {
        if (outcome.kind === "fail") throw outcome.error;
        if (this.#finished) return;
        this.#clearDeadline();
        this.#send(decision, outcome.selection);
      });
    }
    if (now.kind === "fail") throw now.error;
    this.#send(decision, now.selection);
    return undefined;
  }

  #send(decision: RouteDecision, first: Selection<EndpointHandle>): void {
    const mesh = this.#s.binding.mesh;
    const state = first.state;
    const policy = state.policyFor(decision.route?.config.destination);
    const hasher = state.hasher;
    const context: PickContext = hasher === undefined ? NO_HASH : { hash: hasher({ path: this.#path, headers: metadataHeaders(this.#metadata) }) };
    const telemetry = GrpcCallTelemetry.start(mesh.telemetry, this.#path, state, decision, this.#parent);
    let selection = first;
    this.targetService = first.state.service;
    const pick = (tried: ReadonlySet<EndpointHandle>): EndpointHandle => {
      if (tried.size > 0) {
        // A retry re-selects: it sees ejections and failover since the first attempt.
        const again = selectEndpoints(decision, mesh.stateOf, true);
        if (again.kind === "ready") selection = again.selection;
        this.targetService = selection.state.service;
      }
      return pickUntried(selection.picker, context, tried);
    };
    const idempotent = this.#s.idempotent(this.#path);
    const replayable = !this.#requestStream;
    const shape: RequestShape = {
      idempotent,
      replayable,
      hedgeable: replayable && !this.#responseStream && idempotent,
      callerLimitMs: Number.isFinite(this.#callerLimit) ? this.#callerLimit : undefined,
      defaultTimeout: false,
    };
    // The deadline counts from when the call was routed (a wait for the registry included).
    this.#s.binding.callStarted(this);
    const engine = (this.#engine = new GrpcEngineCall(this, state, policy, pick, shape, telemetry, this.#routedAt));
    this.#telemetryOf = telemetry;
    engine.run();
  }

  #telemetryOf: GrpcCallTelemetry | undefined;

  /** The caller's limit at start in ms: its deadline, a parent call's, an incoming request's. */
  #callerDeadline(): number {
    let limit = msUntil(this.#options.deadline);
    const parent = this.#options.parent as { getDeadline?: () => Date | number } | undefined;
    if (parent?.getDeadline !== undefined) limit = Math.min(limit, msUntil(parent.getDeadline()));
    const incoming = remainingIncomingMs();
    if (incoming !== undefined) limit = Math.min(limit, Math.max(0, incoming));
    return limit;
  }

  /** Ends the call at its deadline while it waits for the registry (on the mesh's clock). */
  #armDeadline(): void {
    const limit = this.#callerLimit;
    const clock = this.#clock;
    if (!Number.isFinite(limit) || clock === undefined || this.#timer !== undefined) return;
    // A pending call keeps the process alive: the timer is one the call waits on.
    this.#timer = clock.setTimeout(() => {
      if (this.#finished || this.#engine !== undefined) return;
      const metadata = new Metadata();
      metadata.set(ERROR_CODE_KEY, "ERR_TIMEOUT");
      this.#finish({ code: Status.DEADLINE_EXCEEDED, details: `A call to '${this.#s.service}' reached its deadline before it could be sent.`, metadata });
    }, Math.max(0, limit), true);
  }

  #clearDeadline(): void {
    if (this.#timer !== undefined) this.#clock?.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Sends one attempt (the engine's). Throws, before anything is counted, when the client was closed meanwhile. */
  sendAttempt(attempt: Attempt): void {
    const binding = this.#s.binding;
    const options = this.#options;
    // The attempt's limit goes to grpc-js (and the server) as a deadline; none when it has none.
    const limit = attempt.until - attempt.sentAt;
    const call = this.#nextCall(Number.isFinite(limit) ? { ...options, deadline: new Date(Date.now() + limit) } : options);
    attempt.call = call;
    const metadata = this.#metadata.clone();
    if (this.#changes.length > 0) applyChanges(metadata, this.#changes);
    // The endpoint goes to the balancer beside the metadata, never in it (a caller could write that).
    binding.markPick(metadata, attempt.handle, attempt.service);
    try {
      attempt.trace?.inject(metadata);
    } catch {
      // A propagator that throws costs the trace context, not the call.
    }
    // The endpoint's load (least_request, peak_ewma) counts the attempt from now to its status.
    const handle = attempt.handle;
    attempt.loadFrom = this.#clock?.now() ?? 0;
    handle.load.pending++;
    binding.attemptStarted();
    if (this.#x === undefined) this.#x = attempt;
    else this.#y = attempt;
    if (this.#requestStream) {
      attempt.committed = true;
      this.#committed = attempt;
    }
    call.start(metadata, attempt);
    if (this.#requestStream) {
      for (const op of this.#pending ?? []) op(call);
      this.#pending = undefined;
      if (this.#readWanted) startRead(attempt);
      return;
    }
    if (this.#hasMessage) call.sendMessage(this.#message);
    if (this.#halfClosed) call.halfClose();
    if (this.#readWanted) startRead(attempt);
  }

  /** An attempt's response metadata (grpc-js, through {@link Attempt}). @internal */
  attemptMetadata(attempt: Attempt, received: Metadata): void {
    if (!attempt.committed) {
      attempt.metadata = received;
      return;
    }
    // A streaming request's attempt is the caller's from the start; its response headers are the
    // upstream's answer (the breaker's probe, outlier detection hear it now, not when the stream ends).
    if (this.#engine?.isWinner(attempt) === false && attempt.live) this.#engine.responded(attempt, 200);
    this.#listener.onReceiveMetadata?.(received);
  }

  /** An attempt's response message (grpc-js, through {@link Attempt}). @internal */
  attemptMessage(attempt: Attempt, message: unknown): void {
    if (attempt.committed) {
      if (this.#committed === attempt && !this.#finished) this.#listener.onReceiveMessage?.(message);
      return;
    }
    if (this.#responseStream) {
      // A streaming response's first message: from now on the caller has it, and it is not retried.
      if (this.#finished || this.#engine?.responded(attempt, 200) !== "deliver") return;
      attempt.committed = true;
      this.#committed = attempt;
      if (attempt.metadata !== undefined) this.#listener.onReceiveMetadata?.(attempt.metadata);
      this.#listener.onReceiveMessage?.(message);
      return;
    }
    attempt.hold(message);
  }

  /** An attempt's status (grpc-js, through {@link Attempt}): its endpoint's load, then the engine's verdict. @internal */
  attemptStatus(attempt: Attempt, status: StatusObject): void {
    const load = attempt.handle.load;
    load.pending--;
    const now = this.#clock?.now() ?? 0;
    recordLoad(load, status.code, now - attempt.loadFrom, now, this.#responseStream);
    this.#s.binding.attemptEnded();
    if (this.#x === attempt) this.#x = undefined;
    else if (this.#y === attempt) this.#y = undefined;
    attempt.trace?.end(status.code, status.details);
    const engine = this.#engine;
    if (engine === undefined) return;
    const code = status.code;
    if (engine.isWinner(attempt)) {
      // A response the caller already has (a stream, or a streaming request): its status ends the call.
      engine.ended();
      this.#finish(status, attempt, true);
      return;
    }
    if (!attempt.live) return; // given up: lost a hedge, timed out, or the call ended
    const refusal = code === Status.UNAVAILABLE ? refusalOf(status.metadata) : undefined;
    if (refusal !== undefined) {
      // The balancer refused it: nothing was sent. The endpoint failed to connect (outlier detection hears it), and the caller hears why.
      engine.lastReason = "connect-failure";
      engine.failed(attempt, refusal, "connect-failure");
      return;
    }
    if (code === Status.DEADLINE_EXCEEDED) {
      engine.lastReason = "timeout";
      attempt.timedOut = true;
      engine.failed(attempt, Object.assign(new Error(status.details), { grpcStatus: status }), "timeout");
      return;
    }
    if (code === Status.CANCELLED && this.#cancelled) return;
    if (code === Status.INTERNAL && status.details.startsWith(SERIALIZATION_FAILURE)) {
      // grpc-js could not serialize the caller's message: nothing was sent, nothing is the upstream's fault.
      engine.failed(attempt, Object.assign(new Error(status.details), { grpcStatus: status }), "other");
      return;
    }
    engine.lastReason = STATUS_REASON[code] ?? String(code);
    const verdict = engine.responded(attempt, code === Status.OK ? 200 : httpEquivalent(code));
    if (verdict === "discard") {
      engine.discarded();
      return;
    }
    if (verdict !== "deliver") return;
    engine.ended();
    this.#finish(engine.budgetDenied && code !== Status.OK ? withErrorCode(status, "ERR_RETRY_BUDGET_EXHAUSTED") : status, attempt, true);
  }

  /** The mesh refused the call (or routing failed, or the engine gave up): the caller gets a status that says why. @internal */
  failWith(error: Error): void {
    const grpcStatus = (error as { grpcStatus?: StatusObject }).grpcStatus;
    const mesh = error instanceof MeshError ? error : undefined;
    const code: Status = mesh !== undefined ? grpcStatusOf(mesh) : (grpcStatus?.code ?? Status.INTERNAL);
    const metadata = grpcStatus?.metadata.clone() ?? new Metadata();
    if (mesh !== undefined) metadata.set(ERROR_CODE_KEY, mesh.code);
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
    this.#s.binding.callEnded(this);
    this.#awaitingHalfClose = false;
    this.#clearDeadline();
    this.#telemetryOf?.end(status.code, status.details);
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

/** How grpc-js's own status for a request message it could not serialize begins (client-interceptors.js). */
const SERIALIZATION_FAILURE = "Request message serialization failure";

const STATUS_REASON: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(Status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v as number, k]));

function withErrorCode(status: StatusObject, code: string): StatusObject {
  const metadata = status.metadata.clone();
  metadata.set(ERROR_CODE_KEY, code);
  return { ...status, metadata };
}

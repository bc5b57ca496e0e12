import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import { status as Status, type Metadata } from "@grpc/grpc-js";
import type { MeshTelemetry } from "../telemetry/mesh-telemetry.ts";
import type { Instruments } from "../telemetry/instruments.ts";
import { ATTR } from "../telemetry/attributes.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import type { RouteDecision } from "../routing/route-decision.ts";

/** The RPC semantic conventions' attribute names. @internal */
export const RPC = {
  system: "rpc.system",
  service: "rpc.service",
  method: "rpc.method",
  statusCode: "rpc.grpc.status_code",
} as const;

const STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(Status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v as number, k]));

/** `/package.Service/Method` as its service and method parts. @internal */
export function splitMethod(path: string): { readonly service: string; readonly method: string } {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? { service: path.replace(/^\//, ""), method: "" } : { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

const setter = {
  set(carrier: Metadata, key: string, value: string): void {
    carrier.set(key, value);
  },
};

/** Where routing sent a call, for its span. @internal */
export interface GrpcCallLabel {
  readonly service: string;
  readonly route: number | undefined;
  readonly subset: string | undefined;
  readonly balancer: string;
}

/**
 * One gRPC call's telemetry: an INTERNAL span for the logical call (as gRPC's own tracing, gRFC A72 and A45, has one) and a CLIENT span
 * per attempt, named `package.Service/Method` with the RPC conventions' attributes; trace context goes
 * out in each attempt's metadata; `rpc.client.call.duration` gets one point per call. @internal
 */
export class GrpcCallTelemetry {
  readonly #tracer: Tracer | undefined;
  readonly #meters: Instruments | undefined;
  readonly #span: Span | undefined;
  readonly #context: Context;
  readonly #base: Attributes;
  readonly #start = performance.now();
  #ended = false;

  /**
   * The telemetry of a new call to `state`'s service, sent there by `decision`, or undefined when nothing
   * would record it (an untraced call allocates nothing here).
   */
  static start(telemetry: MeshTelemetry, path: string, state: UpstreamView, decision: RouteDecision, parent: Context): GrpcCallTelemetry | undefined {
    const tracer = telemetry.tracer();
    const meters = telemetry.instruments();
    if (tracer === undefined && meters === undefined) return undefined;
    return new GrpcCallTelemetry(tracer, meters, path, { service: state.service, route: decision.route?.index, subset: decision.target.subset, balancer: state.policy }, parent);
  }

  constructor(tracer: Tracer | undefined, meters: Instruments | undefined, path: string, label: GrpcCallLabel, parent: Context) {
    this.#tracer = tracer;
    this.#meters = meters;
    const { service, method } = splitMethod(path);
    this.#base = { [RPC.system]: "grpc", [RPC.service]: service, [RPC.method]: method, [ATTR.serverAddress]: label.service };
    if (tracer === undefined) {
      this.#context = parent;
      return;
    }
    const attributes: Attributes = { ...this.#base, [ATTR.balancer]: label.balancer };
    if (label.route !== undefined) attributes[ATTR.route] = label.route;
    if (label.subset !== undefined) attributes[ATTR.subset] = label.subset;
    this.#span = tracer.startSpan(`${service}/${method}`, { kind: SpanKind.INTERNAL, attributes }, parent);
    this.#context = trace.setSpan(parent, this.#span);
  }

  /** An attempt's telemetry; `resend` counts the attempts before it. */
  attempt(handle: EndpointHandle, service: string, resend: number, hedge: boolean): GrpcAttemptTelemetry {
    return new GrpcAttemptTelemetry(this.#tracer, this.#base, this.#context, handle, service, resend, hedge);
  }

  /** Outlier detection ejected the endpoint an attempt of this call failed on. */
  ejected(handle: EndpointHandle): void {
    this.#span?.addEvent("proxyless.endpoint.ejected", { [ATTR.endpoint]: handle.endpoint.id });
  }

  /** The retry budget refused a retry or hedge of this call. */
  budgetExhausted(service: string): void {
    this.#span?.addEvent("proxyless.retry_budget.exhausted");
    this.#meters?.budgetExhausted.add(1, this.#meters.service(service));
  }

  /** A retry goes out, after an attempt that got `reason`. */
  retried(service: string, reason: string): void {
    this.#meters?.retries.add(1, { [ATTR.serverAddress]: service, [ATTR.retryReason]: reason });
  }

  /** A hedge goes out. */
  hedged(service: string): void {
    this.#meters?.hedges.add(1, this.#meters.service(service));
  }

  /** The call ended with `code` (idempotent). */
  end(code: Status, details: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#meters?.rpcDuration.record((performance.now() - this.#start) / 1000, { ...this.#base, [RPC.statusCode]: code });
    if (this.#span !== undefined) endSpan(this.#span, code, details);
  }
}

/** One attempt's CLIENT span. @internal */
export class GrpcAttemptTelemetry {
  readonly #span: Span | undefined;
  readonly #context: Context;
  #ended = false;

  constructor(tracer: Tracer | undefined, base: Attributes, parent: Context, handle: EndpointHandle, service: string, resend: number, hedge: boolean) {
    const endpoint = handle.endpoint;
    if (tracer === undefined) {
      this.#context = parent;
      return;
    }
    const attributes: Attributes = {
      ...base,
      [ATTR.serverAddress]: service,
      [ATTR.peerAddress]: endpoint.address,
      [ATTR.peerPort]: endpoint.port,
      [ATTR.endpoint]: endpoint.id,
    };
    if (resend > 0) attributes[ATTR.resendCount] = resend;
    if (hedge) attributes[ATTR.hedge] = true;
    this.#span = tracer.startSpan(`${String(base[RPC.service])}/${String(base[RPC.method])}`, { kind: SpanKind.CLIENT, attributes }, parent);
    this.#context = trace.setSpan(parent, this.#span);
  }

  /** Writes the attempt's trace context (W3C `traceparent`, baggage) into its metadata. */
  inject(metadata: Metadata): void {
    if (this.#span === undefined) return;
    propagation.inject(this.#context, metadata, setter);
  }

  /** The attempt ended with `code` (idempotent). */
  end(code: Status, details: string): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#span !== undefined) endSpan(this.#span, code, details);
  }
}

/** Ends a call's or attempt's span with its status: the code, and for a failure the status name and an error status. */
function endSpan(span: Span, code: Status, details: string): void {
  span.setAttribute(RPC.statusCode, code);
  if (code !== Status.OK) {
    span.setAttribute(ATTR.errorType, STATUS_NAMES[code] ?? String(code));
    span.setStatus({ code: SpanStatusCode.ERROR, message: details });
  }
  span.end();
}

/** The active context when the call was made (the caller's span is the call's parent). @internal */
export function activeContext(): Context {
  return context.active();
}

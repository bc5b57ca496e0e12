import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import { invalidConfig } from "../core/errors.ts";
import { expectOptions } from "../core/validate.ts";

/**
 * OpenTelemetry settings (docs/observability.md). By default the mesh uses the global tracer and
 * meter providers, whatever SDK registered them, and records nothing when none did.
 */
export interface TelemetryOptions {
  /** The tracer provider to use instead of the global one. */
  readonly tracerProvider?: TracerProvider;
  /** The meter provider to use instead of the global one. */
  readonly meterProvider?: MeterProvider;
  /**
   * Who makes each attempt's CLIENT span and injects its trace context:
   * - `"mesh"`: the mesh;
   * - `"undici"`: `@opentelemetry/instrumentation-undici` (the mesh makes no attempt spans, and runs each
   *   attempt in the call's context, its call span's with `callSpans`, else the caller's, so undici's span
   *   is a child of it);
   * - `"auto"` (default): `"undici"` when something subscribes to undici's `undici:request:create`
   *   diagnostics channel (as that instrumentation does), else `"mesh"`, so that no attempt is traced
   *   twice. (`"mesh"` with that instrumentation active traces each attempt twice.)
   */
  readonly attempts?: "auto" | "mesh" | "undici";
  /**
   * Whether each HTTP call gets an INTERNAL span of its own, the parent of its attempts' spans, carrying
   * the route, subset and balancer and the events of the call (an ejection, the retry budget, the
   * breaker). Default `false`: as the HTTP conventions ask, a span per physical request (each attempt's
   * CLIENT span, a child of the caller's span, with `http.request.resend_count` on retries and hedges),
   * and no logical span, which would double the SDK's work for the calls that are never retried. gRPC
   * calls keep their call span either way (gRPC's own tracing design has a call and attempt spans).
   */
  readonly callSpans?: boolean;
}

/** Validated telemetry settings; `false` turns telemetry off. @internal */
export type ResolvedTelemetry =
  | false
  | { readonly tracerProvider: TracerProvider | undefined; readonly meterProvider: MeterProvider | undefined; readonly attempts: "auto" | "mesh" | "undici"; readonly callSpans: boolean };

/** Validates the `telemetry` option. @internal */
export function resolveTelemetry(raw: TelemetryOptions | false | undefined): ResolvedTelemetry {
  if (raw === false) return false;
  if (raw === undefined) return { tracerProvider: undefined, meterProvider: undefined, attempts: "auto", callSpans: false };
  const o = expectOptions(raw, "telemetry", ["tracerProvider", "meterProvider", "attempts", "callSpans"]) as TelemetryOptions;
  if (o.tracerProvider !== undefined && typeof (o.tracerProvider as { getTracer?: unknown }).getTracer !== "function") {
    throw invalidConfig("telemetry.tracerProvider", "expected an OpenTelemetry TracerProvider (with getTracer)");
  }
  if (o.meterProvider !== undefined && typeof (o.meterProvider as { getMeter?: unknown }).getMeter !== "function") {
    throw invalidConfig("telemetry.meterProvider", "expected an OpenTelemetry MeterProvider (with getMeter)");
  }
  const attempts = o.attempts ?? "auto";
  if (attempts !== "auto" && attempts !== "mesh" && attempts !== "undici") {
    throw invalidConfig("telemetry.attempts", `expected "auto", "mesh" or "undici", got ${JSON.stringify(attempts)}`);
  }
  const callSpans = o.callSpans ?? false;
  if (typeof callSpans !== "boolean") throw invalidConfig("telemetry.callSpans", `expected true or false, got ${JSON.stringify(callSpans)}`);
  return { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider, attempts, callSpans };
}

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
   * - `"undici"`: `@opentelemetry/instrumentation-undici` (the mesh makes the call's span only, and runs
   *   each attempt in its context so undici's span is its child);
   * - `"auto"` (default): `"undici"` when something subscribes to undici's `undici:request:create`
   *   diagnostics channel (as that instrumentation does), else `"mesh"`, so that no attempt is traced
   *   twice. (`"mesh"` with that instrumentation active traces each attempt twice.)
   */
  readonly attempts?: "auto" | "mesh" | "undici";
}

/** Validated telemetry settings; `false` turns telemetry off. @internal */
export type ResolvedTelemetry = false | { readonly tracerProvider: TracerProvider | undefined; readonly meterProvider: MeterProvider | undefined; readonly attempts: "auto" | "mesh" | "undici" };

/** Validates the `telemetry` option. @internal */
export function resolveTelemetry(raw: TelemetryOptions | false | undefined): ResolvedTelemetry {
  if (raw === false) return false;
  if (raw === undefined) return { tracerProvider: undefined, meterProvider: undefined, attempts: "auto" };
  const o = expectOptions(raw, "telemetry", ["tracerProvider", "meterProvider", "attempts"]) as TelemetryOptions;
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
  return { tracerProvider: o.tracerProvider, meterProvider: o.meterProvider, attempts };
}

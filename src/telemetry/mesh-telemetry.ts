import diagnostics from "node:diagnostics_channel";
import type { EventEmitter } from "node:events";
// ProxyTracerProvider is deprecated for removal in API 2.0; within 1.x it is the one public way to
// tell "no SDK registered" (the global proxy delegates to the no-op provider) from a real provider.
import { createNoopMeter, diag as otelDiag, metrics, trace, ProxyTracerProvider, type MeterProvider, type Tracer, type TracerProvider } from "@opentelemetry/api";
import type { MeshEvents } from "./mesh-events.ts";
import { ATTR, SCOPE, SCOPE_VERSION } from "./attributes.ts";
import { CallTelemetry, type CallLabel, type CallTarget } from "./call-telemetry.ts";
import { diag } from "./channels.ts";
import { Instruments, type ServiceGaugeReading } from "./instruments.ts";
import type { ResolvedTelemetry } from "./telemetry-options.ts";

/** The API's no-op tracer provider: what the global proxy delegates to until an SDK registers. */
// eslint-disable-next-line @typescript-eslint/no-deprecated
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();
const NOOP_METER = createNoopMeter();
const UNDICI_REQUEST_CREATE = diagnostics.channel("undici:request:create");

/**
 * The mesh's OpenTelemetry and diagnostics_channel output. Looks the providers up on every call (a
 * global read), so an SDK registered after the mesh was made is used from then on; when nothing
 * records, a call gets no telemetry object at all. @internal
 */
export class MeshTelemetry {
  readonly #settings: ResolvedTelemetry;
  readonly #read: () => Iterable<ServiceGaugeReading>;
  #tracerSeen: TracerProvider | undefined;
  #tracer: Tracer | undefined;
  #meterSeen: MeterProvider | undefined;
  #instruments: Instruments | undefined;
  #closed = false;
  #undiciMode: boolean | undefined;

  /**
   * @param settings - the validated `telemetry` option
   * @param events - the mesh's events, turned into channel messages and counters
   * @param read - the live state of every upstream, for the gauges
   */
  constructor(settings: ResolvedTelemetry, events: EventEmitter<MeshEvents>, read: () => Iterable<ServiceGaugeReading>) {
    this.#settings = settings;
    this.#read = read;
    events.on("endpoint_ejected", (e) => {
      this.instruments()?.ejections.add(1, { [ATTR.serverAddress]: e.service, [ATTR.ejectionReason]: e.reason });
      if (diag.endpointEjected.hasSubscribers) diag.endpointEjected.publish(e);
    });
    events.on("endpoints_changed", (e) => {
      if (diag.endpointAdded.hasSubscribers) for (const endpoint of e.diff.added) diag.endpointAdded.publish({ service: e.service, endpoint });
      if (diag.endpointRemoved.hasSubscribers) for (const endpoint of e.diff.removed) diag.endpointRemoved.publish({ service: e.service, endpoint });
    });
    events.on("config_applied", (e) => {
      if (diag.configApplied.hasSubscribers) diag.configApplied.publish(e);
    });
    events.on("config_rejected", (e) => {
      if (diag.configRejected.hasSubscribers) diag.configRejected.publish(e);
    });
    events.on("registry_error", (e) => {
      if (diag.registryError.hasSubscribers) diag.registryError.publish(e);
    });
    // Gauges exist from the start when a meter provider is there already.
    this.instruments();
  }

  /** The tracer in force, or undefined when no SDK records spans. */
  tracer(): Tracer | undefined {
    const s = this.#settings;
    if (s === false || this.#closed) return undefined;
    let provider = s.tracerProvider ?? trace.getTracerProvider();
    // The global proxy (of this copy of the API or another): what it delegates to now.
    const proxy = provider as { getDelegate?: () => TracerProvider };
    if (typeof proxy.getDelegate === "function") provider = proxy.getDelegate();
    if (provider !== this.#tracerSeen) {
      this.#tracerSeen = provider;
      this.#tracer = provider === NOOP_TRACER_PROVIDER ? undefined : provider.getTracer(SCOPE, SCOPE_VERSION);
    }
    return this.#tracer;
  }

  /** The instruments in force, or undefined when no SDK records metrics. */
  instruments(): Instruments | undefined {
    const s = this.#settings;
    if (s === false || this.#closed) return undefined;
    const provider = s.meterProvider ?? metrics.getMeterProvider();
    if (provider !== this.#meterSeen) {
      this.#meterSeen = provider;
      this.#instruments?.close();
      const meter = provider.getMeter(SCOPE, SCOPE_VERSION);
      this.#instruments = meter === NOOP_METER ? undefined : new Instruments(meter, this.#read);
    }
    return this.#instruments;
  }

  /**
   * The telemetry of a new call, or undefined when nothing would record it (the common case without an
   * SDK: the call then pays for two global reads).
   */
  start(state: CallTarget, label: CallLabel, method: string, path: string, headers: unknown): CallTelemetry | undefined {
    const tracer = this.tracer();
    const meters = this.instruments();
    if (tracer === undefined && meters === undefined && !diag.requestStart.hasSubscribers && !diag.requestEnd.hasSubscribers && !diag.pick.hasSubscribers) return undefined;
    const settings = this.#settings;
    return new CallTelemetry(state, label, method, path, headers, tracer, meters, this.#undiciTraces(), settings !== false && settings.callSpans);
  }

  #undiciTraces(): boolean {
    const s = this.#settings;
    if (s === false || s.attempts === "mesh") return false;
    const undici = s.attempts === "undici" || UNDICI_REQUEST_CREATE.hasSubscribers;
    if (undici !== this.#undiciMode && s.attempts === "auto") {
      // A subscriber that is not a tracer would leave attempts untraced: say so, once per change.
      otelDiag.debug(undici ? `proxyless: a subscriber to undici:request:create is present; attempts are left to @opentelemetry/instrumentation-undici (set telemetry.attempts to "mesh" if that is not it)` : "proxyless: attempts are traced by the mesh");
    }
    this.#undiciMode = undici;
    return undici;
  }

  /** Stops the gauges; later calls record nothing. */
  close(): void {
    this.#closed = true;
    this.#instruments?.close();
    this.#instruments = undefined;
  }
}

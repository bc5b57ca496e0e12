import { ValueType, type Attributes, type BatchObservableResult, type Counter, type Histogram, type Meter, type ObservableGauge } from "@opentelemetry/api";
import { ATTR, DURATION_BUCKETS } from "./attributes.ts";

/** What the observable gauges read about one upstream service, at collection time. @internal */
export interface ServiceGaugeReading {
  readonly service: string;
  /** The breaker's state, or undefined without a breaker. */
  readonly breaker: "closed" | "open" | "half-open" | undefined;
  /** Endpoints by state: their registry health, or `ejected`. */
  readonly endpoints: Readonly<Record<"passing" | "warning" | "critical" | "ejected", number>>;
  /** How long the registry has been failing for the service, in ms (0 while it answers). */
  readonly stalenessMs: number;
  /** Open connections to its endpoints. */
  readonly connections: number;
}

const BREAKER_STATES = ["closed", "open", "half-open"] as const;
const ENDPOINT_STATES = ["passing", "warning", "critical", "ejected"] as const;

/**
 * The mesh's metric instruments on one meter: made once per meter provider, recorded from the request
 * path with attribute sets cached per service, method and outcome. @internal
 */
export class Instruments {
  /** `http.client.request.duration`: one per attempt (a physical request), in seconds. */
  readonly attemptDuration: Histogram;
  /** `proxyless.client.call.duration`: one per call, retries and hedges included, in seconds. */
  readonly callDuration: Histogram;
  /** `rpc.client.call.duration`: one per gRPC call, retries and hedges included, in seconds (the RPC conventions). */
  readonly rpcDuration: Histogram;
  /** Retries sent, by reason. */
  readonly retries: Counter;
  /** Hedges sent. */
  readonly hedges: Counter;
  /** Endpoints ejected by outlier detection, by reason. */
  readonly ejections: Counter;
  /** Retries and hedges the budget refused. */
  readonly budgetExhausted: Counter;
  readonly #gauges: ObservableGauge[];
  readonly #meter: Meter;
  readonly #read: () => Iterable<ServiceGaugeReading>;
  readonly #outcomes = new Map<string, Attributes>();
  readonly #services = new Map<string, Attributes>();
  readonly #observe = (batch: BatchObservableResult): void => {
    const [breaker, endpoints, staleness, connections] = this.#gauges as [ObservableGauge, ObservableGauge, ObservableGauge, ObservableGauge];
    for (const r of this.#read()) {
      const service = r.service;
      if (r.breaker !== undefined) {
        for (const state of BREAKER_STATES) batch.observe(breaker, r.breaker === state ? 1 : 0, { [ATTR.serverAddress]: service, [ATTR.breakerState]: state });
      }
      for (const state of ENDPOINT_STATES) batch.observe(endpoints, r.endpoints[state], { [ATTR.serverAddress]: service, [ATTR.endpointState]: state });
      batch.observe(staleness, r.stalenessMs / 1000, this.service(service));
      batch.observe(connections, r.connections, this.service(service));
    }
  };

  /**
   * @param meter - the meter to make the instruments on
   * @param read - the live state of every upstream, for the gauges
   */
  constructor(meter: Meter, read: () => Iterable<ServiceGaugeReading>) {
    this.#meter = meter;
    this.#read = read;
    const advice = { explicitBucketBoundaries: [...DURATION_BUCKETS] };
    this.attemptDuration = meter.createHistogram("http.client.request.duration", { unit: "s", description: "Duration of HTTP client requests (one per attempt).", advice });
    this.callDuration = meter.createHistogram("proxyless.client.call.duration", { unit: "s", description: "Duration of calls through the mesh, retries and hedges included, until response headers.", advice });
    this.rpcDuration = meter.createHistogram("rpc.client.call.duration", { unit: "s", description: "Duration of gRPC client calls through the mesh, retries and hedges included.", advice });
    this.retries = meter.createCounter("proxyless.client.retries", { unit: "{retry}", description: "Retries sent, by what the attempt before got.", valueType: ValueType.INT });
    this.hedges = meter.createCounter("proxyless.client.hedges", { unit: "{hedge}", description: "Hedged attempts sent.", valueType: ValueType.INT });
    this.ejections = meter.createCounter("proxyless.endpoint.ejections", { unit: "{ejection}", description: "Endpoints taken out of rotation by outlier detection.", valueType: ValueType.INT });
    this.budgetExhausted = meter.createCounter("proxyless.retry_budget.exhausted", { unit: "{retry}", description: "Retries and hedges not sent because the retry budget was spent.", valueType: ValueType.INT });
    this.#gauges = [
      meter.createObservableGauge("proxyless.circuit_breaker.state", { unit: "1", description: "1 for the circuit breaker's current state, 0 for the others.", valueType: ValueType.INT }),
      meter.createObservableGauge("proxyless.endpoints", { unit: "{endpoint}", description: "Endpoints per service, by state: passing, warning, critical (registry health) or ejected.", valueType: ValueType.INT }),
      meter.createObservableGauge("proxyless.registry.staleness", { unit: "s", description: "How long the registry has been failing for the service, since its first error after its last good answer (0 while it answers)." }),
      meter.createObservableGauge("proxyless.connections.open", { unit: "{connection}", description: "Open connections to the service's endpoints.", valueType: ValueType.INT }),
    ];
    meter.addBatchObservableCallback(this.#observe, this.#gauges);
  }

  /** `{ server.address: service }`, cached. */
  service(service: string): Attributes {
    let attrs = this.#services.get(service);
    if (attrs === undefined) {
      attrs = Object.freeze({ [ATTR.serverAddress]: service });
      // Bounded: services may be named by request data (mesh.dispatcher URLs).
      if (this.#services.size < 4096) this.#services.set(service, attrs);
    }
    return attrs;
  }

  /** The attributes of a duration: service, method, and the status code or error type, cached. */
  outcome(service: string, method: string, status: number | undefined, error: string | undefined): Attributes {
    const key = `${service} ${method} ${status ?? error ?? ""}`;
    let attrs = this.#outcomes.get(key);
    if (attrs === undefined) {
      attrs = Object.freeze({
        [ATTR.serverAddress]: service,
        [ATTR.serverPort]: 80,
        [ATTR.method]: method,
        ...(status === undefined ? {} : { [ATTR.status]: status }),
        ...(error === undefined ? {} : { [ATTR.errorType]: error }),
      });
      // Bounded: services, methods (normalised) and statuses are few.
      if (this.#outcomes.size < 4096) this.#outcomes.set(key, attrs);
    }
    return attrs;
  }

  /** Stops the gauges' callback (the mesh closed). */
  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, this.#gauges);
  }
}

/** Connection and request limits toward an upstream (Consul's `Limits`). */
export interface UpstreamLimits {
  /** Connections per endpoint. */
  readonly maxConnections?: number;
  /** Requests waiting for a connection. */
  readonly maxPendingRequests?: number;
  /** Requests in flight. */
  readonly maxConcurrentRequests?: number;
}

/** Passive outlier detection toward an upstream (Consul's `PassiveHealthCheck`). */
export interface PassiveHealthCheck {
  /** How often ejections are reviewed, in ms. */
  readonly intervalMs?: number;
  /** Consecutive failures that eject an endpoint. */
  readonly maxFailures?: number;
  /** Percent chance an ejection on consecutive 5xx is enforced. */
  readonly enforcingConsecutive5xx?: number;
  /** Most endpoints ejected at once, in percent. */
  readonly maxEjectionPercent?: number;
  /** Base ejection time, in ms; it grows with repeated ejections. */
  readonly baseEjectionTimeMs?: number;
}

/** How a service calls one upstream, or all of them (Consul's `UpstreamConfig` item). */
export interface UpstreamPolicy {
  /** Limits toward the upstream. */
  readonly limits?: UpstreamLimits;
  /** Outlier detection toward the upstream. */
  readonly passiveHealthCheck?: PassiveHealthCheck;
  /** Time allowed to connect, in ms. */
  readonly connectTimeoutMs?: number;
}

/** A service's defaults (Consul's `service-defaults`). */
export interface ServiceDefaultsConfig {
  /** The service's protocol: `tcp` (Consul's default), `http`, `http2` or `grpc`. */
  readonly protocol?: "tcp" | "http" | "http2" | "grpc";
  /** How this service calls its upstreams, unless overridden. */
  readonly upstreamDefaults?: UpstreamPolicy;
  /** How this service calls particular upstreams, by upstream name. */
  readonly upstreamOverrides?: Readonly<Record<string, UpstreamPolicy>>;
}

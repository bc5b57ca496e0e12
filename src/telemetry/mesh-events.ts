import type { EndpointSet, EndpointSetDiff } from "../endpoint/endpoint-set.ts";
import type { MeshError } from "../core/errors.ts";
import type { InboundDeniedEvent } from "../security/inbound-denied.ts";

/** Sent when a service's endpoint set changed and its new picker is in force. */
export interface EndpointsChangedEvent {
  /** The upstream service. */
  readonly service: string;
  /** The new set. */
  readonly endpoints: EndpointSet;
  /** What changed from the previous set. */
  readonly diff: EndpointSetDiff;
}

/** Sent when a service's configuration was accepted and is in force from the next request. */
export interface ConfigAppliedEvent {
  /** The upstream service. */
  readonly service: string;
  /** The balancer now in use. */
  readonly policy: string;
  /** How many configurations the mesh has accepted for this service, this one included. */
  readonly version: number;
}

/** Sent when a service's configuration was refused; the previous one keeps serving. */
export interface ConfigRejectedEvent {
  /** The upstream service. */
  readonly service: string;
  /** `ERR_INVALID_CONFIG`, naming the field at fault in `details.field`. */
  readonly error: MeshError;
}

/** Sent when the registry reported a failure for a service; the last good state keeps serving. */
export interface RegistryErrorEvent {
  /** The upstream service. */
  readonly service: string;
  /** What the registry reported. */
  readonly error: Error;
}

/** Sent when outlier detection takes an endpoint out of rotation. */
export interface EndpointEjectedEvent {
  /** The upstream service. */
  readonly service: string;
  /** The endpoint's id. */
  readonly endpoint: string;
  /** Consecutive failures that ejected it, or its failures in the interval (`success-rate`). */
  readonly failures: number;
  /** How long it stays out, in ms. */
  readonly durationMs: number;
  /** What ejected it: `consecutive-failures`, or `success-rate` (the statistical detector). */
  readonly reason: "consecutive-failures" | "success-rate";
  /** Its success rate in the interval (`success-rate` only). */
  readonly successRate?: number;
  /** The rate it fell under: mean - stdevFactor x standard deviation (`success-rate` only). */
  readonly threshold?: number;
}

/** Sent when an ejected endpoint is back in rotation. */
export interface EndpointReturnedEvent {
  /** The upstream service. */
  readonly service: string;
  /** The endpoint's id. */
  readonly endpoint: string;
}

/** Sent when an upstream's circuit breaker changes state. */
export interface BreakerStateEvent {
  /** The upstream service. */
  readonly service: string;
  /** `open` (calls fail at once), `half-open` (one probe goes through) or `closed`. */
  readonly state: "open" | "half-open" | "closed";
}

/** Sent when a retry or hedge was not sent because the upstream's retry budget is spent. */
export interface RetryBudgetExhaustedEvent {
  /** The upstream service. */
  readonly service: string;
}

/** The events a mesh emits, by name, for `mesh.on(name, listener)`. */
export interface MeshEvents {
  /** A service's endpoints changed. */
  endpoints_changed: [EndpointsChangedEvent];
  /** A service's configuration is in force. */
  config_applied: [ConfigAppliedEvent];
  /** A service's configuration was refused. */
  config_rejected: [ConfigRejectedEvent];
  /** The registry reported a failure. */
  registry_error: [RegistryErrorEvent];
  /** Outlier detection ejected an endpoint. */
  endpoint_ejected: [EndpointEjectedEvent];
  /** An ejected endpoint is back. */
  endpoint_returned: [EndpointReturnedEvent];
  /** A circuit breaker changed state. */
  breaker_state_changed: [BreakerStateEvent];
  /** The retry budget stopped a retry or hedge. */
  retry_budget_exhausted: [RetryBudgetExhaustedEvent];
  /** `mesh.inbound()`'s handler answered a request itself (400, 403 or 503); the reason is here, not in the body. */
  inbound_denied: [InboundDeniedEvent];
}

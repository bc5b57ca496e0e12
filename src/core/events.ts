import type { EndpointSet, EndpointSetDiff } from "../endpoint/endpoint-set.ts";
import type { MeshError } from "./errors.ts";

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
}

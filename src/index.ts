/**
 * proxyless: a service mesh inside each Node.js process.
 *
 * @module proxyless
 */
export { createMesh, Mesh, type MeshOptions, type ServiceInspection } from "./mesh.ts";
export { ServiceClient, type ServiceRequestOptions, type ServiceResponseData } from "./client/service-client.ts";
export { MeshError, isMeshError, type MeshErrorCode, type MeshErrorDetails, type MeshErrorOptions } from "./core/errors.ts";
export type {
  MeshEvents,
  EndpointsChangedEvent,
  ConfigAppliedEvent,
  ConfigRejectedEvent,
  RegistryErrorEvent,
} from "./core/events.ts";
export { systemClock, type Clock, type TimerHandle } from "./core/clock.ts";
export { systemRandom, type Random } from "./core/random.ts";
export { isValidServiceName, assertServiceName } from "./core/service-name.ts";
export {
  createEndpoint,
  withHealth,
  isReady,
  isEndpoint,
  type Endpoint,
  type EndpointInput,
  type EndpointWeights,
  type HealthStatus,
} from "./endpoint/endpoint.ts";
export { EndpointSet, sameEndpoint, type EndpointSetDiff } from "./endpoint/endpoint-set.ts";
export type {
  Registry,
  RegistryListener,
  RegistryUpdate,
  RegistryWatch,
  EndpointsUpdate,
  MissingUpdate,
  ConfigUpdate,
  ErrorUpdate,
} from "./registry/registry.ts";
export type { ServiceConfig, LoadBalancerConfig } from "./registry/service-config.ts";
export { StaticRegistry } from "./registry/static-registry.ts";
export type { ServiceMap } from "./registry/in-memory-registry.ts";
export type { BalancerPlugin, BalancerEnv, Picker, PickContext, PickTarget } from "./balancer/picker.ts";
export { roundRobin, type RoundRobinConfig } from "./balancer/round-robin.ts";
export type { PoolOptions } from "./transport/http/pool-options.ts";

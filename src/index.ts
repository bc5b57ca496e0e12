/**
 * proxyless: a service mesh inside each Node.js process.
 *
 * @module proxyless
 */
export {
  createMesh,
  Mesh,
  type MeshOptions,
  type InboundOptions,
  type ServiceInspection,
  type TargetInspection,
  type ExplainOptions,
  type SlowStartOptions,
} from "./mesh.ts";
export { ServiceClient, type ServiceRequestOptions, type ServiceResponseData } from "./client/service-client.ts";
export { MeshError, isMeshError, meshErrorOf, invalidConfig, type FetchMeshError, type MeshErrorWithCode, type MeshErrorCode, type MeshErrorDetails, type MeshErrorOptions } from "./core/errors.ts";
export type {
  MeshEvents,
  EndpointsChangedEvent,
  ConfigAppliedEvent,
  ConfigRejectedEvent,
  RegistryErrorEvent,
  EndpointEjectedEvent,
  EndpointReturnedEvent,
  BreakerStateEvent,
  RetryBudgetExhaustedEvent,
} from "./telemetry/mesh-events.ts";
export type { DynamicServicesOptions } from "./upstream/dynamic-services.ts";
export { withIncomingDeadline, DEADLINE_HEADER } from "./core/incoming-deadline.ts";
export type { ResilienceOptions, RetryOptions, RetryCondition, RetryBudgetOptions, OutlierOptions, SuccessRateOptions, BreakerOptions, LimitOptions, HedgingOptions } from "./config/resilience-options.ts";
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
export type { ServiceConfig } from "./config/service-config.ts";
export type { LoadBalancerConfig } from "./balancer/load-balancer-config.ts";
export type { RouterConfig, RouteConfig, RouteMatch, RouteDestination, HeaderMatch, QueryMatch, HeaderChanges, MirrorPolicy, FaultPolicy, FaultDelay, FaultAbort } from "./config/route-config.ts";
export type { SplitterConfig, SplitConfig, StickySplit } from "./config/split-config.ts";
export type { ResolverConfig, SubsetConfig, FailoverConfig, TargetRef } from "./config/resolver-config.ts";
export type { ServiceDefaultsConfig, UpstreamPolicy, UpstreamLimits, PassiveHealthCheck } from "./config/defaults-config.ts";
export { decodeConsulEntry, decodeConsulEntries, CONSUL_ENTRY_KINDS, type ConsulEntryKind, type DecodedConsulEntry } from "./config/decode-consul.ts";
export { validateServiceConfig } from "./config/compile-config.ts";
export type { RouteExplanation, CandidateEndpoint, RouteTimeouts, RetryPlan, SkippedTarget, MatchedRoute, ExplainedError, ExplainedRequest } from "./routing/explain.ts";
export type { RouteTarget, ChosenSplit } from "./routing/route-decision.ts";
export type { ServiceRegistration, CheckDefinition, Registration } from "./registry/registration.ts";
export { StaticRegistry } from "./registry/static-registry.ts";
export { ConsulRegistry, type ConsulRegistryOptions, type ConsulTlsOptions } from "./registry/consul/consul-registry.ts";
export { decodeHealth, ConsulDecodeError, type DecodedHealth } from "./registry/consul/decode-health.ts";
export { compileFilter, type FilterPredicate } from "./config/filter-expression.ts";
export type { ServiceMap } from "./registry/in-memory-registry.ts";
export type { BalancerPlugin, BalancerEnv, Picker, PickContext, PickTarget } from "./balancer/picker.ts";
export { roundRobin, type RoundRobinConfig } from "./balancer/round-robin.ts";
export { weightedRoundRobin, type WeightedRoundRobinConfig } from "./balancer/weighted-round-robin.ts";
export { leastRequest, type LeastRequestConfig } from "./balancer/least-request.ts";
export { peakEwma, type PeakEwmaConfig } from "./balancer/peak-ewma.ts";
export { random, type RandomConfig } from "./balancer/random.ts";
export { ringHash, type RingHashConfig } from "./balancer/ring-hash.ts";
export { maglev, type MaglevConfig } from "./balancer/maglev.ts";
export { builtinBalancers } from "./balancer/balancer-registry.ts";
export { EndpointLoad } from "./balancer/load.ts";
export { hash32 } from "./balancer/hash.ts";
export type { HashPolicy, HashableRequest, RequestHasher } from "./balancer/hash-policy.ts";
export type { ServiceFetchInit } from "./client/service-client.ts";
export type { PoolOptions } from "./transport/http/pool-options.ts";
export type { MeshTlsOptions } from "./security/tls-options.ts";
export { parseIdentity, parseSpiffeId, type Identity, type SpiffeParts } from "./security/identity.ts";
export type { IdentitySource, IdentityListener, ReadyOptions } from "./security/identity-source.ts";
export { fileIdentity, type FileIdentityOptions } from "./security/file-identity.ts";
export { Inbound, callerIdentity, type MtlsServerOptions, type InboundRequest, type InboundResponse } from "./security/inbound.ts";
export type { InboundDeniedEvent } from "./security/inbound-denied.ts";
export type { PathNormalization, EscapedSlashes } from "./security/path-normalization.ts";
export type { CallerIdentity, AuthorizationRequest, AuthorizationDecision, LocalPolicy, Authorizer, IntentionPermission, IntentionHttpMatch, IntentionHeaderMatch } from "./security/authorization.ts";
export type { ConnectAuthority, IntentionSource } from "./security/consul-authorizer.ts";
export { pemIdentity, type PemIdentity, type PemIdentityOptions } from "./security/pem-identity.ts";
export type { TelemetryOptions } from "./telemetry/telemetry-options.ts";
export {
  channels,
  type RequestStartMessage,
  type RequestEndMessage,
  type PickMessage,
  type EndpointMessage,
  type EndpointEjectedMessage,
  type ConfigAppliedMessage,
  type ConfigRejectedMessage,
  type RegistryErrorMessage,
} from "./telemetry/channels.ts";
export type { MeshSnapshot, ServiceSnapshot, ConfigSnapshot, RegistrySnapshot, EndpointSnapshot, BudgetSnapshot } from "./telemetry/snapshot.ts";

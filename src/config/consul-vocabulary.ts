/** HTTP methods a route may match (Consul's list). @internal */
export const ROUTE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"]);

/** Retry conditions a route may name (Consul's list, Envoy's names). @internal */
export const RETRY_CONDITIONS: ReadonlySet<string> = new Set([
  "5xx",
  "gateway-error",
  "reset",
  "connect-failure",
  "envoy-ratelimited",
  "retriable-4xx",
  "refused-stream",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
]);

/** Load-balancer policies a service-resolver may name; empty means the default. @internal */
export const RESOLVER_POLICIES: ReadonlySet<string> = new Set(["", "random", "round_robin", "least_request", "ring_hash", "maglev"]);

/** Service protocols of service-defaults. @internal */
export const PROTOCOLS: ReadonlySet<string> = new Set(["tcp", "http", "http2", "grpc"]);

/** A subset name: a DNS label. @internal */
export const SUBSET_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

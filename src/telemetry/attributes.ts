/**
 * Attribute names: OpenTelemetry's HTTP semantic conventions (stable), and the mesh's own under
 * `proxyless.`. One place, so spans, metrics and docs agree. @internal
 */
export const ATTR = {
  method: "http.request.method",
  methodOriginal: "http.request.method_original",
  status: "http.response.status_code",
  errorType: "error.type",
  resendCount: "http.request.resend_count",
  urlFull: "url.full",
  serverAddress: "server.address",
  serverPort: "server.port",
  peerAddress: "network.peer.address",
  peerPort: "network.peer.port",
  target: "proxyless.target",
  route: "proxyless.route",
  subset: "proxyless.subset",
  balancer: "proxyless.balancer",
  endpoint: "proxyless.endpoint",
  retryReason: "proxyless.retry.reason",
  hedge: "proxyless.hedge",
  ejectionReason: "proxyless.ejection.reason",
  endpointState: "proxyless.endpoint.state",
  breakerState: "proxyless.circuit_breaker.state",
} as const;

/** The instrumentation scope's name, for tracers and meters. @internal */
export const SCOPE = "proxyless";

/** The instrumentation scope's version (the package's). @internal */
export const SCOPE_VERSION = "0.1.0";

/** The HTTP semantic conventions' histogram buckets for request durations, in seconds. @internal */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);

/**
 * `error.type` for a failure: the mesh's or undici's error code (`ERR_TIMEOUT`, `ECONNREFUSED`,
 * `UND_ERR_SOCKET`), else the error's class name, else `_OTHER`, as the conventions ask. @internal
 */
export function errorType(error: unknown): string {
  // undici rejects with an aborted signal's reason: a DOMException named TimeoutError or AbortError.
  if (error instanceof DOMException) return error.name;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.length > 0) return code;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  if (typeof cause === "string" && cause.length > 0) return cause;
  const name = (error as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === "string" && name !== "" && name !== "Object" ? name : "_OTHER";
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

/** `http.request.method`: a known method, else `_OTHER`, as the conventions ask. @internal */
export function methodName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : "_OTHER";
}

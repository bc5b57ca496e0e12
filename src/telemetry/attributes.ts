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

/**
 * `url.full` of a call: the service's URL with the query's keys and every value replaced by `REDACTED`
 * (`?token=REDACTED&page=REDACTED`), and no fragment. The HTTP conventions ask to redact the values of
 * known signing keys (`AWSAccessKeyId`, `Signature`, `sig`, `X-Goog-Signature`); the mesh cannot know
 * which of an app's parameters are secret (`?token=`, `?api_key=`, a pre-signed URL's), so it redacts
 * them all. A parameter with no `=` is redacted whole (it may be a bare token); an empty value stays
 * empty. The URL is built from the service name and the path only, so no user name or password can
 * appear in it. @internal
 */
export function redactedUrl(service: string, path: string): string {
  const hash = path.indexOf("#");
  const target = hash === -1 ? path : path.slice(0, hash);
  const mark = target.indexOf("?");
  if (mark === -1) return `http://${service}${target}`;
  const params = target.slice(mark + 1).split("&");
  for (let i = 0; i < params.length; i++) {
    const param = params[i] as string;
    const eq = param.indexOf("=");
    if (eq === -1) params[i] = param === "" ? "" : "REDACTED";
    else if (eq < param.length - 1) params[i] = `${param.slice(0, eq)}=REDACTED`;
  }
  return `http://${service}${target.slice(0, mark)}?${params.join("&")}`;
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

/** `http.request.method`: a known method, else `_OTHER`, as the conventions ask. @internal */
export function methodName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : "_OTHER";
}

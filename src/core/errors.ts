/**
 * Stable error codes. Code is the contract: messages may be reworded, codes never change meaning.
 */
export type MeshErrorCode =
  /** The service is known to the registry but has no endpoint that can take traffic. */
  | "ERR_NO_ENDPOINTS"
  /** The registry says no service of that name exists. */
  | "ERR_UNKNOWN_SERVICE"
  /** The name is not a valid DNS label (lower case letters, digits and `-`, at most 63 characters). */
  | "ERR_INVALID_SERVICE_NAME"
  /** The mesh was closed; create a new mesh to send more requests. */
  | "ERR_MESH_CLOSED"
  /** A configuration value (mesh option, service config, balancer config) is invalid. */
  | "ERR_INVALID_CONFIG"
  /** An endpoint record given to a registry is invalid. */
  | "ERR_INVALID_ENDPOINT"
  /** An argument to a request method (URL, path, service host) is invalid. */
  | "ERR_INVALID_ARGUMENT"
  /** The registry gave no answer for the service within the discovery timeout. */
  | "ERR_DISCOVERY_TIMEOUT"
  /** The registry failed before it ever answered for the service. */
  | "ERR_REGISTRY_UNAVAILABLE"
  /**
   * The routing config sends the request where it cannot go: a subset the target's resolver does not
   * define, a redirect loop, or a datacenter, namespace or peer the registry cannot reach.
   */
  | "ERR_NO_ROUTE"
  /** The upstream's circuit breaker is open: the call failed at once, with no network I/O. Retry after `details.retryAfterMs`. */
  | "ERR_CIRCUIT_OPEN"
  /** The upstream's concurrency limit and queue are full: the call failed at once. */
  | "ERR_LIMIT_EXCEEDED"
  /** The call's deadline passed before a response arrived (across its attempts). */
  | "ERR_TIMEOUT"
  /** The call failed and a retry was not sent because the upstream's retry budget is spent. */
  | "ERR_RETRY_BUDGET_EXHAUSTED"
  /** mTLS is required and the endpoint only speaks plaintext: nothing was sent. Fix the endpoint, or use `tls.mode: "permissive"`. */
  | "ERR_TLS_REQUIRED"
  /** The peer's certificate did not prove the expected identity (wrong SPIFFE ID, untrusted CA, expired): nothing was sent. */
  | "ERR_PEER_IDENTITY"
  /** A certificate, key or trust bundle given as the mesh's identity is unusable; the last good identity stays. */
  | "ERR_INVALID_IDENTITY"
  /** The mesh's own identity (certificate) is not available yet, or could not be obtained in time. */
  | "ERR_IDENTITY_UNAVAILABLE"
  /** A `client.fetch()` was redirected to another service that the caller did not list in `allowRedirectsTo`: nothing was sent there. */
  | "ERR_REDIRECT_REFUSED"
  /** The mesh watches as many services named by request data (`mesh.dispatcher` URLs) as `dynamicServices.max` allows: nothing was sent. */
  | "ERR_TOO_MANY_SERVICES";

/** Extra, machine-readable facts about an error (the service, the field at fault, ...). */
export interface MeshErrorDetails {
  /** The upstream service the error concerns. */
  readonly service?: string;
  /** The configuration field at fault, as a dotted path such as `loadBalancer.policy`. */
  readonly field?: string;
  /** Any other facts worth logging. */
  readonly [key: string]: unknown;
}

/** Options for {@link MeshError}. */
export interface MeshErrorOptions {
  /** The error that led to this one. */
  readonly cause?: unknown;
  /** Machine-readable facts about the error. */
  readonly details?: MeshErrorDetails;
}

/**
 * The one error type proxyless throws. Switch on {@link MeshError.code}, never on the message.
 *
 * Every API rejects with it, except fetch-shaped calls, which follow fetch's convention (a `TypeError`
 * whose `cause` is the MeshError: {@link FetchMeshError}). {@link isMeshError} and {@link meshErrorOf}
 * see through that.
 *
 * @example
 * ```ts
 * try { await orders.request({ path: "/v1/orders" }); }
 * catch (err) { if (isMeshError(err, "ERR_NO_ENDPOINTS")) { ... } }
 * ```
 */
export class MeshError extends Error {
  /** The stable code. */
  readonly code: MeshErrorCode;
  /** Machine-readable facts about the error. */
  readonly details: MeshErrorDetails;

  /**
   * @param code - the stable code
   * @param message - what happened and what to do about it
   * @param options - cause and details
   */
  constructor(code: MeshErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MeshError";
    this.code = code;
    this.details = Object.freeze({ ...options.details });
  }
}

/**
 * How fetch reports a failure the mesh caused: fetch's own `TypeError` ("fetch failed", as for any
 * network failure) with the {@link MeshError} as its `cause`. `client.fetch()` and any `fetch` given
 * `mesh.dispatcher` reject this way; every other API rejects with the MeshError itself.
 */
export interface FetchMeshError<C extends MeshErrorCode = MeshErrorCode> extends TypeError {
  /** The mesh's error. */
  readonly cause: MeshErrorWithCode<C>;
}

/** A {@link MeshError} known to have one code (what {@link meshErrorOf} and {@link isMeshError} narrow to). */
export type MeshErrorWithCode<C extends MeshErrorCode> = MeshError & {
  /** The code, known. */
  readonly code: C;
};

/**
 * The {@link MeshError} behind a failure: `err` itself, or the one that fetch's `TypeError` carries as
 * its `cause`; undefined when the mesh did not cause it, or when `code` is given and it has another.
 *
 * @param err - any thrown value
 * @param code - the code to match; any code when omitted
 *
 * @example
 * ```ts
 * try { await mesh.client("orders").fetch("/v1/orders"); }
 * catch (err) {
 *   const open = meshErrorOf(err, "ERR_CIRCUIT_OPEN");
 *   if (open !== undefined) console.log(`retry in ${String(open.details.retryAfterMs)} ms`);
 * }
 * ```
 */
export function meshErrorOf<C extends MeshErrorCode = MeshErrorCode>(err: unknown, code?: C): MeshErrorWithCode<C> | undefined {
  const found = err instanceof MeshError ? err : err instanceof TypeError && err.cause instanceof MeshError ? err.cause : undefined;
  return found !== undefined && (code === undefined || found.code === code) ? (found as MeshErrorWithCode<C>) : undefined;
}

/** A MeshError as fetch-shaped APIs report it (see {@link FetchMeshError}); anything else as it is. @internal */
export function asFetchFailure(err: unknown): unknown {
  return err instanceof MeshError ? new TypeError("fetch failed", { cause: err }) : err;
}

/**
 * Tells whether the mesh caused `err`, optionally with the given code: true for a {@link MeshError},
 * and for fetch's `TypeError` that carries one as its `cause` (see {@link FetchMeshError}), so one
 * check serves every API. {@link meshErrorOf} gives the MeshError itself.
 *
 * @param err - any thrown value
 * @param code - the code to match; any code when omitted
 *
 * @example
 * ```ts
 * try { await mesh.client("orders").fetch("/v1/orders"); }
 * catch (err) { if (isMeshError(err, "ERR_NO_ENDPOINTS")) { ... } }
 * ```
 */
export function isMeshError<C extends MeshErrorCode = MeshErrorCode>(err: unknown, code?: C): err is MeshErrorWithCode<C> | FetchMeshError<C> {
  return meshErrorOf(err, code) !== undefined;
}

/**
 * Builds an `ERR_INVALID_CONFIG` error naming the field at fault: for balancer plugins' `parseConfig`.
 *
 * @param field - the config path, such as `loadBalancer.config.tag`
 * @param problem - what is wrong and what is expected
 * @param options - the underlying error, if any
 */
export function invalidConfig(field: string, problem: string, options: { readonly cause?: unknown } = {}): MeshError {
  return new MeshError("ERR_INVALID_CONFIG", `Invalid configuration at '${field}': ${problem}`, {
    cause: options.cause,
    details: { field },
  });
}

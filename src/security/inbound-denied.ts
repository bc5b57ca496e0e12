/**
 * Sent (`inbound_denied`) when `mesh.inbound()`'s handler answered a request itself instead of passing it
 * to the app: 400 for a request target it refuses (fragment, absolute form, malformed or, with
 * `pathNormalization: "reject"`, not normalized), 403 for a caller the authorizer refused, 503 when the
 * authorizer failed. The caller only gets the status; the detail is here.
 */
export interface InboundDeniedEvent {
  /** The status the caller got. */
  readonly status: 400 | 403 | 503;
  /**
   * Why, in full: the authorizer's reason (intention, permission, policy entry) or the path problem.
   * Where it quotes the request's query, the query is replaced by `?<query>`.
   */
  readonly reason: string;
  /** The caller's SPIFFE ID, when it presented one. */
  readonly caller: string | undefined;
  /** The request method. */
  readonly method: string;
  /**
   * The path as authorized (normalized), or as received when it was refused before that; without the
   * query (it may carry secrets). Undefined for a target that is not a path (absolute form).
   */
  readonly path: string | undefined;
  /** The authorizer's failure, for 503. */
  readonly error?: Error;
}

/** The response part the handler writes. @internal */
export interface DenialResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: string): unknown;
}

const BODIES: Readonly<Record<InboundDeniedEvent["status"], string>> = {
  400: "Bad Request: the request target is not a path the server accepts\n",
  403: "Forbidden\n",
  503: "Service Unavailable\n",
};

/**
 * Answers a request the handler does not pass on: the status and a fixed body that says nothing about
 * the server (no intention, policy, address or identity); the detail goes to the `inbound_denied` event.
 * @internal
 */
export function deny(res: DenialResponse, status: InboundDeniedEvent["status"]): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-proxyless-denied": "1" });
  res.end(BODIES[status]);
}

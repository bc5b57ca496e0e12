/**
 * Header changes made to a request (or a response) on its way: Consul's `RequestHeaders` /
 * `ResponseHeaders`. `add` appends a value, `set` replaces it, `remove` deletes the header.
 */
export interface HeaderChanges {
  /** Headers to append to (values may contain no CR or LF). */
  readonly add?: Readonly<Record<string, string>>;
  /** Headers to replace. */
  readonly set?: Readonly<Record<string, string>>;
  /** Header names to delete. */
  readonly remove?: readonly string[];
}

/**
 * One header condition of a route. Exactly one of `present`, `exact`, `prefix`, `suffix` and `regex`
 * (or none, which means *present*); `invert` negates the result.
 */
export interface HeaderMatch {
  /** The header name (case-insensitive). */
  readonly name: string;
  /** True: the header must be present, whatever its value. */
  readonly present?: boolean;
  /** The whole value. */
  readonly exact?: string;
  /** The value starts with this. */
  readonly prefix?: string;
  /** The value ends with this. */
  readonly suffix?: string;
  /** The whole value matches this regular expression (anchored). */
  readonly regex?: string;
  /** Negates the condition: a route with `{ name: "x-debug", invert: true }` matches requests without `x-debug`. */
  readonly invert?: boolean;
}

/** One query-parameter condition of a route: exactly one of `present`, `exact` and `regex` (none means *present*). */
export interface QueryMatch {
  /** The parameter name (case-sensitive). */
  readonly name: string;
  /** True: the parameter must be present. */
  readonly present?: boolean;
  /** The whole value. */
  readonly exact?: string;
  /** The whole value matches this regular expression (anchored). */
  readonly regex?: string;
}

/**
 * When a route applies: Consul's `Match.HTTP`. Every condition given must hold; an empty match
 * matches every request. At most one of `pathExact`, `pathPrefix` and `pathRegex`.
 */
export interface RouteMatch {
  /** The path (without query) equals this; starts with `/`. */
  readonly pathExact?: string;
  /** The path starts with this; starts with `/`. */
  readonly pathPrefix?: string;
  /** The whole path matches this regular expression. */
  readonly pathRegex?: string;
  /** Compare the path case-insensitively. */
  readonly caseInsensitive?: boolean;
  /** Header conditions, all of which must hold. */
  readonly headers?: readonly HeaderMatch[];
  /** Query-parameter conditions, all of which must hold. */
  readonly query?: readonly QueryMatch[];
  /** The request method is one of these (upper case). */
  readonly methods?: readonly string[];
}

/**
 * Where a matching request goes and how: Consul's route `Destination`. The timeouts and retry settings
 * are carried for the resilience layer.
 */
export interface RouteDestination {
  /** The service; default the routed service itself. */
  readonly service?: string;
  /** A subset defined by that service's resolver. */
  readonly subset?: string;
  /** Replaces the matched `pathExact`/`pathPrefix` part of the path. */
  readonly prefixRewrite?: string;
  /** Total time allowed for the request, in ms. */
  readonly requestTimeoutMs?: number;
  /** How long a stream may stay idle, in ms. */
  readonly idleTimeoutMs?: number;
  /** Retries allowed (not counting the first attempt). */
  readonly numRetries?: number;
  /** Retry when a connection cannot be made. */
  readonly retryOnConnectFailure?: boolean;
  /** Retry on these response status codes. */
  readonly retryOnStatusCodes?: readonly number[];
  /** Retry on these conditions, in Envoy's names (`5xx`, `gateway-error`, `reset`, `connect-failure`, ...). */
  readonly retryOn?: readonly string[];
  /** Changes to the request's headers. */
  readonly requestHeaders?: HeaderChanges;
  /** Changes to the response's headers. */
  readonly responseHeaders?: HeaderChanges;
}

/**
 * Traffic mirroring (a proxyless extension): a copy of a share of the route's requests goes to another
 * service or subset. The copy's response and failure never reach the caller; requests with a streamed
 * body are not copied.
 */
export interface MirrorPolicy {
  /** The service that gets the copies; default the routed service. */
  readonly service?: string;
  /** A subset of it. */
  readonly subset?: string;
  /** Share of requests copied, in percent (0 to 100). */
  readonly percent: number;
}

/** Delay injected into a share of requests. */
export interface FaultDelay {
  /** How long, in ms. */
  readonly ms: number;
  /** Share of requests delayed, in percent; default 100. */
  readonly percent?: number;
  /** Only requests carrying this header (any value) are delayed. */
  readonly header?: string;
}

/** Abort injected into a share of requests: they get this status without being sent. */
export interface FaultAbort {
  /** The status code answered, such as 503. */
  readonly status: number;
  /** Share of requests aborted, in percent; default 100. */
  readonly percent?: number;
  /** Only requests carrying this header (any value) are aborted. */
  readonly header?: string;
}

/** Fault injection (a proxyless extension), for testing how callers cope: delays and aborts. */
export interface FaultPolicy {
  /** Delay a share of requests. */
  readonly delay?: FaultDelay;
  /** Answer a share of requests with an error status, without sending them. */
  readonly abort?: FaultAbort;
}

/** One route: a match and a destination (Consul's `Routes[]` item), and proxyless's mirror and fault options. */
export interface RouteConfig {
  /** When the route applies; left out, it matches every request. */
  readonly match?: RouteMatch;
  /** Where matching requests go; left out, to the routed service's splitter or resolver. */
  readonly destination?: RouteDestination;
  /** Copy a share of the requests elsewhere. */
  readonly mirror?: MirrorPolicy;
  /** Delay or abort a share of the requests. */
  readonly fault?: FaultPolicy;
}

/** A service's routes, tried in order; the first match wins, and unmatched requests go to the service itself. */
export interface RouterConfig {
  /** The routes, in order. */
  readonly routes: readonly RouteConfig[];
}

import { Dispatcher, fetch as undiciFetch, type RequestInit, type Response } from "undici";
import { hash32 } from "../balancer/hash.ts";
import type { PickContext } from "../balancer/picker.ts";
import { asFetchFailure, MeshError } from "../core/errors.ts";
import { asArgumentError, headersProblem, invalidArgument, methodProblem, pathProblem, shownPath } from "../core/request-arguments.ts";
import { failHandler, ForwardingDispatcher } from "../transport/http/forwarding-dispatcher.ts";
import { withHost } from "../core/headers.ts";
import type { DiscoveryWait } from "../upstream/discovery-wait.ts";
import type { UpstreamView } from "../upstream/upstream-view.ts";
import { routedDispatch, type StateLookup } from "../transport/http/routed-dispatch.ts";
import { pickUntried } from "../resilience/pick-untried.ts";
import { meshDispatch } from "../transport/http/http-call.ts";
import { otherServiceOf, parseRedirectAllowlist, redirectRefused } from "../transport/http/redirect-policy.ts";
import type { EndpointHandle } from "../transport/http/endpoint-handle.ts";

/** Options for {@link ServiceClient.request}: undici's request options without `origin`; `method` defaults to GET. */
export type ServiceRequestOptions = Omit<Dispatcher.RequestOptions, "origin" | "method"> & {
  /** HTTP method; default `GET`. */
  readonly method?: Dispatcher.HttpMethod;
  /** Affinity key for `ring_hash` and `maglev`: requests with the same key go to the same endpoint. */
  readonly hashKey?: string;
};

/** `fetch` options: undici's, plus an affinity key for hash-based balancers and the services a redirect may lead to. */
export type ServiceFetchInit = RequestInit & {
  /** Affinity key for `ring_hash` and `maglev`: requests with the same key go to the same endpoint. */
  readonly hashKey?: string;
  /**
   * The other services a redirect may lead to (`["payments"]`). Redirects within the service called are
   * always followed; one to a service not listed fails with `ERR_REDIRECT_REFUSED` and sends nothing
   * there, since the next request would carry this process's identity, its headers and (for 307 and 308)
   * its body. Default: none.
   */
  readonly allowRedirectsTo?: readonly string[];
};

/** What {@link ServiceClient.request} resolves to: undici's response data (status, headers, streamed body). */
export type ServiceResponseData = Dispatcher.ResponseData;

const NO_CONTEXT: PickContext = Object.freeze({ hash: undefined });

/** undici's request API, run on any object with a `dispatch` (it uses nothing else of its `this`). */
// eslint-disable-next-line @typescript-eslint/unbound-method -- taken unbound on purpose: it is called with a `this` of our own
const REQUEST = Dispatcher.prototype.request as unknown as (this: Pick<Dispatcher, "dispatch">, options: Dispatcher.RequestOptions, callback: (err: Error | null, data: Dispatcher.ResponseData) => void) => void;

/**
 * What a `client.fetch()` tells its dispatches, for the service it was made for: the caller's affinity
 * key, and the wait for the registry it already did (its deadline counts from then). @internal
 */
export interface Affinity {
  readonly service: string;
  readonly hashKey?: string | undefined;
  readonly wait?: DiscoveryWait | undefined;
}

/**
 * Sends a dispatch to the service named by its origin (the mesh's routing), so a redirect to another
 * service goes there, and one to a host that is no service is refused. @internal
 */
export type RouteByOrigin = (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, affinity?: Affinity) => boolean;

/**
 * Sends requests to one upstream service. Get one with `mesh.client(name)`; clients are cached per mesh,
 * so calling `mesh.client("orders")` on every request costs a map lookup.
 */
export class ServiceClient {
  /** The upstream service name. */
  readonly service: string;
  readonly #state: UpstreamView<EndpointHandle>;
  readonly #hostOnly: Readonly<Record<string, string>>;
  readonly #base: string;
  readonly #fetchDispatcher: Dispatcher;
  readonly #route: RouteByOrigin;
  readonly #stateOf: StateLookup;
  /** Reused for every hashed pick: a pick is synchronous, so one object serves all requests. */
  readonly #context: { hash: number | undefined } = { hash: undefined };

  /** Whether the service's own pools send `Host: <service>` (their origin names it); else every request carries it as a header. */
  readonly #poolSendsHost: boolean;

  /** @internal */
  constructor(state: UpstreamView<EndpointHandle>, poolSendsHost: boolean, route: RouteByOrigin, stateOf: StateLookup) {
    this.service = state.service;
    this.#poolSendsHost = poolSendsHost;
    this.#state = state;
    this.#route = route;
    this.#stateOf = stateOf;
    this.#hostOnly = Object.freeze({ host: state.service });
    this.#base = `http://${state.service}`;
    // fetch follows redirects through this dispatcher: every hop is routed by its own origin, within this service.
    this.#fetchDispatcher = new ForwardingDispatcher((options, handler) => this.#hop(options, handler, undefined, undefined), () => Promise.resolve());
  }

  /**
   * The fast path: undici's `request` API, sent to an endpoint the balancer picks. The `Host` header is
   * the service name unless you set one.
   *
   * @param options - undici request options; `path` is relative to the service and starts with `/`
   * @returns status, headers and a streamed body; consume or dump the body
   * @throws MeshError `ERR_NO_ENDPOINTS`, `ERR_UNKNOWN_SERVICE`, `ERR_MESH_CLOSED`, `ERR_INVALID_ARGUMENT`, ...
   *
   * @example
   * ```ts
   * const { statusCode, body } = await mesh.client("orders").request({ path: "/v1/orders/42" });
   * const order = await body.json();
   * ```
   */
  request(options: ServiceRequestOptions): Promise<ServiceResponseData> {
    const prepared = this.#prepare(options);
    if (prepared instanceof MeshError) return Promise.reject(prepared);
    const state = this.#state;
    // Known (or routed elsewhere): straight to the engine, through undici's request API on a dispatch.
    if (state.routing.active || state.picker !== undefined) return this.#request(prepared, undefined);
    // Not known yet: wait for the registry, within the call's deadline, unless the caller aborts.
    const wait = state.discoveryWait(true);
    const signal = (options.signal ?? undefined) as AbortSignal | undefined;
    return state.settle(wait, signal).then(() => {
      if (signal?.aborted === true) throw signal.reason;
      return this.#request(prepared, wait);
    });
  }

  /** undici's request API (its RequestHandler, its body) over one dispatch through the mesh. */
  #request(prepared: Dispatcher.RequestOptions, wait: DiscoveryWait | undefined): Promise<ServiceResponseData> {
    // Read back synchronously by the dispatch that undici's request() makes at once.
    this.#waited = wait;
    return new Promise((resolve, reject) => {
      // undici checks the options it alone knows (signal, highWaterMark, onInfo...): its refusal is ERR_INVALID_ARGUMENT.
      REQUEST.call(this.#requester, prepared, (err, data) => {
        if (err === null) resolve(data);
        else {
          const refused = asArgumentError(err);
          reject(refused instanceof Error ? refused : err);
        }
      });
    });
  }

  /** The wait the next request dispatch went through (set just before it, read by it). */
  #waited: DiscoveryWait | undefined;

  /** What undici's request() dispatches on: the client's routing and engine, for options already prepared. */
  readonly #requester = {
    dispatch: (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean => {
      const wait = this.#waited;
      this.#waited = undefined;
      const hashKey = (options as ServiceRequestOptions).hashKey;
      const state = this.#state;
      if (state.routing.active) return routedDispatch(this.service, options, handler, this.#stateOf, hashKey, (o) => this.#withHost(o, this.service), wait);
      if (state.picker === undefined) failHandler(handler, state.unavailableError(wait));
      else this.#guardedDispatch(options, handler, hashKey, wait?.startedAt);
      return true;
    },
  };

  /** Picks for requests that hash nothing: one function for all of them, no closure per request. */
  readonly #pickPlain = (tried: ReadonlySet<EndpointHandle>): EndpointHandle => {
    const picker = this.#state.picker;
    if (picker === undefined) throw this.#state.unavailableError();
    return pickUntried(picker, NO_CONTEXT, tried);
  };

  /**
   * The WHATWG `fetch` API, sent through the mesh (undici's `fetch`, so redirects, decompression and
   * `AbortSignal` behave as in Node's own `fetch`).
   *
   * @param input - a path relative to the service (`"/v1/orders"`), or a URL whose host is the service
   *   name (`"http://orders/v1/orders"`)
   * @param init - the usual `fetch` options; `dispatcher` is replaced by the mesh's
   * @returns a WHATWG `Response` (undici's class). Redirects within the service are followed through the
   *   mesh. One to another service (`http://payments/...`) fails with `ERR_REDIRECT_REFUSED` unless
   *   `init.allowRedirectsTo` lists it; then it goes to that service. One to `https://` or to a host that
   *   is not a service name fails, rather than being sent to this service's endpoint.
   * @throws TypeError as `fetch` does (`fetch failed`), whatever went wrong: when the mesh caused it
   *   (`ERR_NO_ENDPOINTS`, `ERR_TIMEOUT`, `ERR_INVALID_ARGUMENT`, ...), its `cause` is the MeshError, and
   *   `isMeshError(err, code)` and `meshErrorOf(err)` see it
   */
  async fetch(input: string | URL, init?: ServiceFetchInit): Promise<Response> {
    let url: string;
    let wait: DiscoveryWait | undefined;
    let allowed: ReadonlySet<string> | undefined;
    try {
      url = this.#resolve(input);
      checkFetchInit(init, this.service);
      allowed = parseRedirectAllowlist(init?.allowRedirectsTo, this.service);
      const state = this.#state;
      // As request(): a service that routes elsewhere waits (if at all) for its targets, in its dispatch.
      if (!state.routing.active && state.picker === undefined) {
        // Not known yet: wait for the registry, within the call's deadline, unless the caller aborts.
        wait = state.discoveryWait(true);
        const signal = init?.signal ?? undefined;
        await state.settle(wait, signal);
        if (signal?.aborted === true) throw signal.reason;
        if (!state.routing.active && state.picker === undefined) throw state.unavailableError(wait);
      }
    } catch (err) {
      // fetch's convention, as for the failures fetch itself reports: a TypeError with the cause.
      throw asFetchFailure(err);
    }
    const hashKey = init?.hashKey;
    // The wait done here counts for the first dispatch only: a redirect is a new request, with its own deadline.
    let first: Affinity | undefined = wait === undefined ? undefined : { service: this.service, hashKey, wait };
    const later: Affinity | undefined = hashKey === undefined ? undefined : { service: this.service, hashKey };
    // fetch hands its dispatcher every body as a stream, which could not be sent twice; a body the
    // caller gave whole goes as those bytes instead, so it can be retried (within the buffered limit).
    const whole = bufferedBody(init?.body);
    const dispatcher =
      first === undefined && later === undefined && whole === undefined && allowed === undefined
        ? this.#fetchDispatcher
        : new ForwardingDispatcher((options, handler) => {
            const hints = first ?? later;
            first = undefined;
            return this.#hop(whole === undefined || options.body === null || options.body === undefined ? options : { ...options, body: whole }, handler, hints, allowed);
          }, () => Promise.resolve());
    return undiciFetch(url, { ...init, dispatcher });
  }

  /**
   * One dispatch of a `client.fetch()`: its first request, or a redirect hop. The first always names
   * this service (see #resolve), so a hop to another service is a redirect, followed only when the
   * caller listed that service: refused before the mesh looks the service up, it leaves no state.
   */
  #hop(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, affinity: Affinity | undefined, allowed: ReadonlySet<string> | undefined): boolean {
    const other = otherServiceOf(options.origin, this.#base);
    if (other !== undefined && allowed?.has(other) !== true) {
      failHandler(handler, redirectRefused(this.service, other));
      return false;
    }
    return this.#route(options, handler, affinity);
  }

  /**
   * Sends an undici dispatch through this client (used by `mesh.dispatcher`). @internal
   *
   * @param host - the `Host` header to set when the caller set none
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, host: string, hashKey?: string, waited?: DiscoveryWait): boolean {
    const state = this.#state;
    if (state.routing.active) return this.#routedDispatch(options, handler, host, hashKey, waited);
    if (state.picker !== undefined) return this.#guardedDispatch(this.#ownOptions(options, host), handler, hashKey, waited?.startedAt);
    const wait = waited ?? state.discoveryWait(true);
    state.settle(wait).then(
      () => (state.routing.active ? this.#routedDispatch(options, handler, host, hashKey, wait) : this.#dispatchLater(options, handler, host, hashKey, wait)),
      (err: unknown) => failHandler(handler, err as Error),
    );
    return true;
  }

  #routedDispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, host: string, hashKey: string | undefined, wait?: DiscoveryWait): boolean {
    return routedDispatch(this.service, options, handler, this.#stateOf, hashKey, (o) => this.#withHost(o, host), wait);
  }

  /** The pick context of a request: its hash when the caller gave a key or the balancer hashes. */
  #pickContext(request: { readonly path: string; readonly headers?: unknown }, hashKey: string | undefined): PickContext {
    if (hashKey !== undefined) {
      this.#context.hash = hash32(hashKey);
      return this.#context;
    }
    const hasher = this.#state.hasher;
    if (hasher === undefined) return NO_CONTEXT;
    // A hash policy on host sees the Host the request will carry: the service's name when its pools send it.
    this.#context.hash = hasher(request, this.#poolSendsHost ? this.service : undefined);
    return this.#context;
  }

  #dispatchLater(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, host: string, hashKey: string | undefined, wait: DiscoveryWait): void {
    if (this.#state.picker === undefined) failHandler(handler, this.#state.unavailableError(wait));
    else this.#guardedDispatch(this.#ownOptions(options, host), handler, hashKey, wait.startedAt);
  }

  /** A dispatch through the service's own balancer, with its protections (timeouts, retries, breaker, limits). */
  #guardedDispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, hashKey: string | undefined, startedAt: number | undefined): boolean {
    const state = this.#state;
    const context = this.#pickContext(options, hashKey);
    // A retry picks later, when the shared context may hold another request's hash: this call keeps its own.
    const own: PickContext = context === NO_CONTEXT ? NO_CONTEXT : { hash: context.hash };
    const pick = own === NO_CONTEXT ? this.#pickPlain : (tried: ReadonlySet<EndpointHandle>): EndpointHandle => {
      const picker = state.picker;
      if (picker === undefined) throw state.unavailableError();
      return pickUntried(picker, own, tried);
    };
    meshDispatch(state, state.policyFor(undefined), options, handler, pick, state.plainLabel, startedAt);
    return true;
  }

  /**
   * The options for this service's own endpoints: their pools send `Host: <service>` when a request
   * names none (see EndpointHandle), so only another host is set here.
   */
  #ownOptions(options: Dispatcher.DispatchOptions, host: string): Dispatcher.DispatchOptions {
    return host === this.service && this.#poolSendsHost ? options : this.#withHost(options, host);
  }

  /** The options with a `Host` header (`host`) unless they name one: for routed calls, whose endpoints may be another service's. */
  #withHost<T extends Dispatcher.DispatchOptions>(options: T, host: string): T {
    const hostOnly = host === this.service ? this.#hostOnly : { host };
    return { ...options, headers: withHost(options.headers, host, hostOnly) };
  }

  #prepare(options: ServiceRequestOptions): Dispatcher.RequestOptions | MeshError {
    if (options === null || typeof options !== "object") {
      return invalidArgument(`request() takes an options object such as { path: "/v1/orders" }`);
    }
    const problem =
      pathProblem(options.path) ??
      (options.method === undefined ? undefined : methodProblem(options.method)) ??
      ((options as { upgrade?: unknown }).upgrade === undefined || (options as { upgrade?: unknown }).upgrade === null ? undefined : "request() does not upgrade a connection; use undici.upgrade() or a WebSocket with mesh.dispatcher");
    if (problem !== undefined) return invalidArgument(`${problem} (request() to service '${this.service}')`);
    // No Host header here when the service's own pools send its name; a routed call sets it (#withHost).
    if (!this.#poolSendsHost) return { ...options, method: options.method ?? "GET", headers: withHost(options.headers, this.service, this.#hostOnly) };
    return options.method === undefined ? { ...options, method: "GET" } : (options as Dispatcher.RequestOptions);
  }

  #resolve(input: string | URL): string {
    if (typeof input === "string" && input.charCodeAt(0) === 47 /* "/" */) {
      if (input.charCodeAt(1) === 47) throw invalidArgument(`a path must not start with '//', got ${shownPath(input)}`);
      return this.#base + input;
    }
    let url: URL;
    try {
      url = typeof input === "string" ? new URL(input) : input;
    } catch (err) {
      throw invalidArgument(`expected a path starting with '/' or a URL, got ${typeof input === "string" ? shownPath(input) : typeof input}`, err);
    }
    if (!(url instanceof URL)) throw invalidArgument(`expected a path string or a URL`);
    // Shown without credentials or query string: either may hold a secret.
    const shown = JSON.stringify(`${url.protocol}//${url.host}${url.pathname}${url.search === "" ? "" : "?…"}`);
    if (url.protocol !== "http:" || url.hostname !== this.service) {
      throw invalidArgument(
        `this client sends to service '${this.service}': give a path such as "/v1/orders" or a URL such as ` +
          `"http://${this.service}/v1/orders", got ${shown}`,
      );
    }
    if (url.port !== "") {
      throw invalidArgument(`a URL for service '${this.service}' names no port (the registry gives each endpoint's), got ${shown}`);
    }
    if (url.username !== "" || url.password !== "") {
      throw invalidArgument(`a URL for service '${this.service}' carries no user name or password (send credentials in a header), got ${shown}`);
    }
    return url.href;
  }
}

/**
 * A fetch body given whole (a string or bytes), as bytes to send; undefined for streams, forms and the
 * like. Bytes are copied, as `fetch` does when called: a buffer changed afterwards does not change the request.
 */
function bufferedBody(body: unknown): string | Uint8Array | undefined {
  if (typeof body === "string") return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  return undefined;
}

/**
 * What fetch would refuse of `init`, refused by the mesh first as `ERR_INVALID_ARGUMENT` (so
 * `client.fetch()` says what is wrong in a MeshError): the method, the header names and values, and a
 * body on a GET or HEAD.
 */
function checkFetchInit(init: ServiceFetchInit | undefined, service: string): void {
  if (init === undefined || init === null) return;
  const method = init.method ?? "GET";
  const headers: unknown = init.headers;
  // Records and pair lists are checked here; a Headers object or a Map is left to fetch, which checks its entries itself.
  const checked = headers !== undefined && headers !== null && (Array.isArray(headers) || typeof (headers as { forEach?: unknown }).forEach !== "function");
  const hasBody = init.body !== undefined && init.body !== null;
  const problem =
    methodProblem(method) ??
    (checked ? headersProblem(headers) : undefined) ??
    (hasBody && /^(GET|HEAD)$/i.test(method) ? `a ${method.toUpperCase()} request has no body` : undefined);
  if (problem !== undefined) throw invalidArgument(`${problem} (fetch() to service '${service}')`);
}

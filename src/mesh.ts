import { EventEmitter } from "node:events";
import type { Dispatcher } from "undici";
import { BalancerRegistry, builtinBalancers } from "./balancer/balancer-registry.ts";
import type { BalancerPlugin } from "./balancer/picker.ts";
import { ServiceClient, type Affinity } from "./client/service-client.ts";
import { systemClock, type Clock } from "./core/clock.ts";
import { MeshError, invalidConfig } from "./core/errors.ts";
import type { MeshEvents } from "./telemetry/mesh-events.ts";
import { systemRandom, type Random } from "./core/random.ts";
import { assertServiceName, isValidServiceName, namesItsOrigin } from "./core/service-name.ts";
import { setMeshInternals } from "./mesh-internals.ts";
import { expectOptions, optionalChoice, optionalNumber } from "./core/validate.ts";
import { headersProblem, invalidArgument, methodProblem, pathProblem } from "./core/request-arguments.ts";
import type { Registration, ServiceRegistration } from "./registry/registration.ts";
import type { Registry } from "./registry/registry.ts";
import type { LoadBalancerConfig } from "./balancer/load-balancer-config.ts";
import type { ServiceConfig } from "./config/service-config.ts";
import { compileTogether } from "./config/discovery-chain-check.ts";
import { explainRoute, type RouteExplanation } from "./routing/explain.ts";
import { DEFAULT_POLICY, validateResilience, type ResilienceOptions } from "./config/resilience-options.ts";
import { EndpointHandle } from "./transport/http/endpoint-handle.ts";
import { failHandler, ForwardingDispatcher } from "./transport/http/forwarding-dispatcher.ts";
import { guardRedirects } from "./transport/http/redirect-policy.ts";
import { toUndiciPoolOptions, type PoolOptions } from "./transport/http/pool-options.ts";
import { resolveTlsOptions, type MeshTlsOptions } from "./security/tls-options.ts";
import { TransportSecurity } from "./security/transport-security.ts";
import { Inbound } from "./security/inbound.ts";
import { localPolicyAuthorizer, type Authorizer, type LocalPolicy } from "./security/authorization.ts";
import { consulAuthorizer } from "./security/consul-authorizer.ts";
import type { EscapedSlashes, PathNormalization } from "./security/path-normalization.ts";
import { localScopeOf, type LocalScope } from "./security/caller-scope.ts";
import type { IdentitySource } from "./security/identity-source.ts";
import { MeshTelemetry } from "./telemetry/mesh-telemetry.ts";
import { resolveTelemetry, type TelemetryOptions } from "./telemetry/telemetry-options.ts";
import type { MeshSnapshot } from "./telemetry/snapshot.ts";
import { gaugeReading, serviceSnapshot } from "./service-readings.ts";
import type { MeshContext } from "./upstream/mesh-context.ts";
import type { SlowStart } from "./upstream/slow-start.ts";
import { meshClosedError } from "./upstream/upstream-errors.ts";
import { UpstreamState } from "./upstream/upstream-state.ts";
import { DynamicServices, parseDynamicServices, type DynamicServicesOptions } from "./upstream/dynamic-services.ts";

/** Options for `mesh.inbound()`. */
export interface InboundOptions {
  /** Who may call: `"consul"` (intentions), a local policy, or a function. Left out: any caller the trust bundle vouches for. */
  readonly authorize?: "consul" | LocalPolicy | Authorizer;
  /** How long Consul's authorize answers and intentions are cached, in ms. Default 5000. */
  readonly cacheMs?: number;
  /**
   * A path not in normal form (`/a/../b`, `/%61dmin`, `//b`, `\b`): `normalize` authorizes its normal form and
   * hands that to the app in `req.url` (default); `reject` answers 400. Fragments, absolute-form targets
   * and malformed escapes get 400 either way (docs/security.md).
   */
  readonly pathNormalization?: PathNormalization;
  /**
   * `%2F` and `%5C` in a path: `keep` them (default; they stay inside their segment, as Node routers read
   * them), `reject` the request with 400, or `decode` them to `/`. A segment they would turn into a dot
   * segment (`..%2F`) is refused whatever this says.
   */
  readonly escapedSlashes?: EscapedSlashes;
}

/** Options for {@link createMesh}. Only `registry` is required. */
export interface MeshOptions {
  /** Where services and their config come from: `StaticRegistry`, `MockRegistry`, or your own. */
  readonly registry: Registry;
  /** The name of the service this process is (for telemetry and identity). Optional. */
  readonly service?: string;
  /** The default balancer; a service's config from the registry overrides it. Default `round_robin`. */
  readonly loadBalancer?: LoadBalancerConfig;
  /** Balancer plugins to add to the built-in ones. */
  readonly balancers?: readonly BalancerPlugin[];
  /** Connection pool settings per endpoint. */
  readonly pool?: PoolOptions;
  /** How long a request waits for the registry's first answer about a service, in ms. Default 5000. */
  readonly discoveryTimeout?: number;
  /**
   * Panic threshold, in percent (Envoy's): when fewer than this share of a service's endpoints are ready
   * (not critical, not ejected, weight above 0), traffic is spread over every endpoint that is not
   * critical, ejected ones included, rather than piled on the few left. Critical endpoints never take
   * traffic. Default 50; 0 turns it off.
   */
  readonly panicThreshold?: number;
  /** Ramp up the weight of endpoints that join a running service. Off unless given. */
  readonly slowStart?: SlowStartOptions;
  /**
   * Timeouts, retries, retry budget, outlier detection, circuit breaker, limits and hedging for every
   * upstream (docs/resilience.md). Consul's service-defaults and routes override it.
   */
  readonly resilience?: ResilienceOptions;
  /** The same, per upstream service; overrides `resilience`. */
  readonly upstreams?: Readonly<Record<string, ResilienceOptions>>;
  /**
   * mTLS on every call, with verified SPIFFE identities (docs/security.md). The mesh closes the
   * identity source when it closes.
   */
  readonly tls?: MeshTlsOptions;
  /**
   * OpenTelemetry traces and metrics (docs/observability.md): by default the global providers, used when
   * an SDK registers them and costing a global read per call when none does. `false` turns them off
   * (diagnostics_channel messages and `snapshot()` stay).
   */
  readonly telemetry?: TelemetryOptions | false;
  /**
   * Where `mesh.dispatcher` sends requests whose origin is not a mesh service: an IP address, a host
   * name with a dot, `localhost`, an explicit port, or `https://`. With it,
   * `setGlobalDispatcher(mesh.dispatcher)` sends service names through the mesh and every other call
   * where it went before (pass `new Agent()`, or the dispatcher you had). Without it, such requests fail
   * with `ERR_INVALID_ARGUMENT`. The mesh never closes it; `client.fetch()` never uses it.
   */
  readonly fallbackDispatcher?: Dispatcher;
  /**
   * Limits on the services named only by request data (a `mesh.dispatcher` URL's host that no
   * `mesh.client()` call, route or gRPC call named): at most `max` watched at once (default 1024; one
   * more fails with `ERR_TOO_MANY_SERVICES`), each released after `idleTimeout` ms unused (default 5
   * minutes). Names the registry does not know are forgotten as soon as it says so.
   */
  readonly dynamicServices?: DynamicServicesOptions;
  /**
   * The services a redirect answered through `mesh.dispatcher` may lead to (`"*"`: any). By default
   * none: a 301, 302, 303, 307 or 308 from one service whose `Location` names another mesh service
   * reaches the caller without its `Location` (and with `x-proxyless-redirect-refused: <service>`), so
   * fetch does not send the next request, with this process's identity, the headers and perhaps the
   * body, to a service the caller did not name. Redirects within the service are untouched.
   * `client.fetch()` has its own per-call `allowRedirectsTo`.
   */
  readonly allowRedirectsTo?: readonly string[] | "*";
  /** The clock; inject a fake one in tests. */
  readonly clock?: Clock;
  /** The random source; inject a seeded one in tests. */
  readonly random?: Random;
}

const OPTION_KEYS = [
  "registry",
  "tls",
  "telemetry",
  "service",
  "loadBalancer",
  "balancers",
  "pool",
  "discoveryTimeout",
  "panicThreshold",
  "slowStart",
  "resilience",
  "upstreams",
  "fallbackDispatcher",
  "dynamicServices",
  "allowRedirectsTo",
  "clock",
  "random",
] as const;

/**
 * Slow start (Envoy's): an endpoint that joins a running service gets
 * `weight × max(minWeightPercent / 100, (age / window)^(1 / aggression))` until it is `window` ms old.
 * Applies to the policies that use weights (`weighted_round_robin`, `least_request` and `random` with
 * unequal weights, `peak_ewma`); `round_robin` ignores weights.
 */
export interface SlowStartOptions {
  /** How long the ramp lasts, in ms. */
  readonly window: number;
  /** Shape of the ramp: 1 is linear, larger is faster at first. Default 1. */
  readonly aggression?: number;
  /** The least share of its weight a new endpoint gets, in percent. Default 10. */
  readonly minWeightPercent?: number;
}

/** What {@link Mesh.inspect} tells about one upstream service. */
export interface ServiceInspection {
  /** The balancer in force. */
  readonly policy: string;
  /** Endpoints known, ready or not. */
  readonly endpoints: number;
  /** Endpoints that may take traffic. */
  readonly ready: number;
  /** Endpoints whose connection pool has been created (pools are created on first pick). */
  readonly openPools: number;
  /** Whether fewer endpoints than the panic threshold are ready, so traffic goes to all of them. */
  readonly panic: boolean;
  /** The endpoints the current picker balances over, with the weight it uses and their load. */
  readonly targets: readonly TargetInspection[];
  /** The service's config in force: the last one the registry sent that validated. */
  readonly config: ServiceConfig;
}

/** Options for {@link Mesh.explain}. */
export interface ExplainOptions {
  /**
   * Whether explaining may start watching the services involved, as a call would (default true). With
   * false, only services the mesh watches already are looked at: the admin server explains so.
   */
  readonly watch?: boolean;
}

/** One endpoint as the balancer sees it. */
export interface TargetInspection {
  /** Endpoint id. */
  readonly id: string;
  /** The weight in use: the endpoint's weight for its health, reduced during slow start. */
  readonly weight: number;
  /** Requests in flight. */
  readonly pending: number;
  /** The round-trip estimate now, in ms (failures before a response count as a penalty); undefined before any sample. */
  readonly rtt: number | undefined;
  /** Registry health. */
  readonly health: string;
}

const MAX_CACHED_ORIGINS = 1024;

/**
 * A service mesh inside this process. Create it once at start-up with {@link createMesh}, take clients
 * with {@link Mesh.client}, and {@link Mesh.close} it at shutdown.
 *
 * Emits the events of {@link MeshEvents} (`endpoints_changed`, `config_applied`, `config_rejected`,
 * `registry_error`).
 */
export class Mesh extends EventEmitter<MeshEvents> {
  /** The name of this process's own service, if given. */
  readonly service: string | undefined;
  /**
   * An undici `Dispatcher` that reads the URL host as a service name, for code that already uses
   * `fetch` or undici: `fetch("http://orders/v1/orders", { dispatcher: mesh.dispatcher })`.
   * Only `http:` URLs are accepted. Closing it closes the mesh.
   */
  readonly dispatcher: Dispatcher;
  readonly #ctx: MeshContext<EndpointHandle>;
  readonly #security: TransportSecurity | undefined;
  /** Whether a service's endpoint pools name it in their origin (then undici sends its `Host`). */
  readonly #hostByOrigin: (service: string) => boolean;
  readonly #telemetry: MeshTelemetry;
  readonly #clients = new Map<string, ServiceClient>();
  readonly #states = new Map<string, UpstreamState<EndpointHandle>>();
  readonly #origins = new Map<string, Target>();
  /** The services called (through clients, routing or gRPC); the caller's own is watched for its config only, unless it calls itself. */
  readonly #upstreams = new Set<string>();
  /**
   * Services named only by request data (an origin given to `mesh.dispatcher`): capped, forgotten when
   * the registry says they do not exist (made-up host names leave no watch and no state behind), and
   * released when idle.
   */
  readonly #namedByRequests: DynamicServices;
  readonly #fallback: Dispatcher | undefined;
  readonly #registrations = new Map<Registration, string>();
  readonly #pendingRegistrations = new Set<Promise<Registration>>();
  #closing: Promise<void> | undefined;

  /**
   * Prefer {@link createMesh}.
   *
   * @param options - see {@link MeshOptions}
   * @throws MeshError `ERR_INVALID_CONFIG` naming the option at fault
   */
  constructor(options: MeshOptions) {
    super();
    const o = expectOptions(options, "options", OPTION_KEYS) as unknown as MeshOptions;
    if (o.registry === undefined || o.registry === null || typeof o.registry.watch !== "function") {
      throw invalidConfig("registry", "a registry is required: pass { registry: new StaticRegistry(...) } or a MockRegistry");
    }
    if (o.service !== undefined) assertServiceName(o.service);
    if (o.balancers !== undefined && !Array.isArray(o.balancers)) throw invalidConfig("balancers", "expected an array of plugins");
    const extra: readonly BalancerPlugin[] = o.balancers ?? [];
    const balancers = new BalancerRegistry([...builtinBalancers, ...extra]);
    this.service = o.service;
    const fallback: unknown = o.fallbackDispatcher;
    if (fallback !== undefined && (fallback === null || typeof (fallback as Partial<Dispatcher>).dispatch !== "function")) {
      throw invalidConfig("fallbackDispatcher", "expected an undici Dispatcher, such as new Agent() from undici");
    }
    this.#fallback = o.fallbackDispatcher;
    const meshResilience = o.resilience === undefined ? undefined : validateResilience(o.resilience, "resilience");
    const poolOptions = toUndiciPoolOptions(o.pool, "pool");
    // The pools enforce the default call timeout themselves (undici arms a headers timer for every
    // request anyway), so the common call needs neither a timer nor an option of its own.
    const userHeadersTimeout = poolOptions.headersTimeout ?? undefined;
    if (poolOptions.headersTimeout === undefined) poolOptions.headersTimeout = DEFAULT_POLICY.timeoutMs;
    const security = o.tls === undefined ? undefined : new TransportSecurity(resolveTlsOptions(o.tls), poolOptions.connectTimeout ?? 10_000);
    // Plaintext pools name their service, so undici sends its Host; with mTLS every request carries Host
    // as a header, as undici re-handshakes an https connection whenever a request's servername changes.
    const hostByOrigin = (service: string): boolean => security === undefined && namesItsOrigin(service);
    this.#hostByOrigin = hostByOrigin;
    this.#security = security;
    const telemetry = new MeshTelemetry(resolveTelemetry(o.telemetry), this, () => this.#upstreamStates().map(gaugeReading));
    this.#telemetry = telemetry;
    const clock = o.clock ?? systemClock;
    this.#namedByRequests = new DynamicServices(parseDynamicServices(o.dynamicServices), clock, {
      busy: (service) => this.#states.get(service)?.busy === true,
      release: (service) => this.#release(service, "idle"),
    });
    this.#ctx = {
      telemetry,
      createHandle: (service, endpoint, addedAt) => new EndpointHandle(hostByOrigin(service) ? service : undefined, endpoint, poolOptions, addedAt, security?.transportFor(service, endpoint)),
      registry: o.registry,
      balancers,
      defaultBalancer: balancers.bind(o.loadBalancer ?? { policy: "round_robin" }, "loadBalancer"),
      env: { clock, random: o.random ?? systemRandom },
      poolHeadersTimeout: poolOptions.headersTimeout ?? 300_000,
      userHeadersTimeout,
      discoveryTimeout: optionalNumber(o.discoveryTimeout, "discoveryTimeout", { min: 0 }) ?? 5000,
      panicThreshold: optionalNumber(o.panicThreshold, "panicThreshold", { min: 0, max: 100 }) ?? 50,
      slowStart: parseSlowStart(o.slowStart),
      events: this,
      missing: (service) => this.#forgetIfMadeUp(service),
      closing: () => this.#closing !== undefined,
      configs: {
        configOf: (service) => this.#landing?.get(service) ?? this.#states.get(service)?.appliedConfig,
        services: () => this.#states.keys(),
        applied: (service) => this.#retryWaitingConfigs(service),
        waiting: () => this.#landTogether(),
      },
      resilience: {
        mesh: meshResilience,
        upstreams: parseUpstreams(o.upstreams),
        // The calling service's own Consul service-defaults (its UpstreamConfig) apply to its calls.
        callerDefaults: () => (this.service === undefined || this.#closing !== undefined ? undefined : this.#watched(this.service).config.defaults),
      },
    };
    setMeshInternals(this, {
      stateOf: (service) => this.#stateOf(service),
      security,
      telemetry,
      events: this,
      closed: () => this.#closing !== undefined,
      onDestroy: (listener) => this.#destroyListeners.add(listener),
    });
    this.#redirectsTo = parseMeshRedirects(o.allowRedirectsTo);
    this.dispatcher = new ForwardingDispatcher(
      (opts, handler) => this.#dispatch(opts, handler, undefined, true),
      () => this.close(),
      (error) => this.destroy(error),
    );
  }

  /** Where redirects answered through `mesh.dispatcher` may lead. */
  readonly #redirectsTo: ReadonlySet<string> | "*";

  /** Told when destroy() is called (see MeshInternals.onDestroy). */
  readonly #destroyListeners = new Set<(error: Error) => void>();

  /** Whether {@link Mesh.close} has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * The client for an upstream service, created on first call and cached. The service is watched in the
   * registry from then on.
   *
   * @param name - the service name, a DNS label such as `orders`
   * @throws MeshError `ERR_INVALID_SERVICE_NAME` for a bad name, `ERR_MESH_CLOSED` after `close()`
   */
  client(name: string): ServiceClient {
    const client = this.#clientOf(name);
    this.#upstreams.add(name);
    this.#namedByRequests.delete(name);
    return client;
  }

  /**
   * After `service`'s config was applied: the configs other services refused for a discovery-chain
   * problem are tried again, since the change may have fixed their chain (a retry that applies tells
   * this again, so fixes that depend on one another all land).
   */
  #retryWaitingConfigs(service: string): void {
    const waiting: UpstreamState<EndpointHandle>[] = [];
    for (const state of this.#states.values()) if (state.service !== service && state.configWaiting) waiting.push(state);
    for (const state of waiting) state.retryWaitingConfig();
  }

  /** The waiting configs being applied together, which the chain checks see as applied meanwhile. */
  #landing: ReadonlyMap<string, ServiceConfig> | undefined;

  /**
   * After a config was refused for a discovery-chain problem: if the waiting configs compile together
   * (each refused only because of the others' old configs), they are applied together.
   */
  #landTogether(): void {
    if (this.#landing !== undefined) return;
    const waiting = [...this.#states.values()].filter((s) => s.configWaiting);
    if (waiting.length < 2) return;
    const configs = new Map(waiting.map((s) => [s.service, s.waitingConfig ?? {}]));
    const known = { configOf: (s: string) => this.#states.get(s)?.appliedConfig, services: () => this.#states.keys() };
    if (!compileTogether(configs, known)) return;
    this.#landing = configs;
    try {
      for (const state of waiting) state.retryWaitingConfig();
    } finally {
      this.#landing = undefined;
    }
  }

  /** A service named only by request data that the registry says is missing: forgotten once its callers heard so. */
  #forgetIfMadeUp(service: string): void {
    if (!this.#namedByRequests.has(service)) return;
    // After the calls waiting for this answer have had it (they run before the next turn of the loop).
    setImmediate(() => {
      const state = this.#states.get(service);
      if (state === undefined || !state.forgettable || !this.#namedByRequests.has(service)) return;
      this.#release(service, "missing");
    });
  }

  /**
   * Forgets a service named only by request data: its watch stops and its state, client and cached
   * origins go. A missing one keeps its answer for anyone still holding it; an idle one (nothing in
   * flight) closes its pools.
   */
  #release(service: string, why: "missing" | "idle"): void {
    const state = this.#states.get(service);
    const client = this.#clients.get(service);
    this.#namedByRequests.delete(service);
    if (state === undefined || this.#closing !== undefined) return;
    if (why === "missing") state.forget();
    else void state.close();
    this.#states.delete(service);
    this.#clients.delete(service);
    this.#upstreams.delete(service);
    for (const [origin, target] of this.#origins) if (target !== NOT_A_SERVICE && target !== NOT_ALLOWED && target.client === client) this.#origins.delete(origin);
  }

  /** The client of a service, made on first use, without marking the service as called. */
  #clientOf(name: string): ServiceClient {
    const cached = this.#clients.get(name);
    if (cached !== undefined && this.#closing === undefined) return cached;
    assertServiceName(name);
    if (this.#closing !== undefined) throw meshClosedError();
    const state = new UpstreamState(name, this.#ctx);
    const client = new ServiceClient(
      state,
      this.#hostByOrigin(name),
      (options, handler, affinity) => this.#dispatch(options, handler, affinity),
      // Its own routing looks itself up: that is no new use by the code, so a service named by request data stays one.
      (service) => (service === name && this.#closing === undefined && this.#states.get(name) === state ? state : this.#stateOf(service)),
    );
    this.#states.set(name, state);
    this.#clients.set(name, client);
    // Only now: a registry that answers at once sets off events whose listeners may ask for this service.
    try {
      state.start();
    } catch (err) {
      this.#states.delete(name);
      this.#clients.delete(name);
      throw err;
    }
    return client;
  }

  /**
   * The policy and counts for a service the mesh is watching, for debugging and tests.
   *
   * @param name - a service name
   */
  inspect(name: string): ServiceInspection | undefined {
    const state = this.#states.get(name);
    if (state === undefined) return undefined;
    return {
      policy: state.policy,
      endpoints: state.endpoints?.size ?? 0,
      ready: state.endpoints?.ready.length ?? 0,
      openPools: state.openPools,
      panic: state.panic,
      config: state.config,
      targets: state.targets.map((h) => ({
        id: h.endpoint.id,
        weight: h.weight,
        pending: h.load.pending,
        rtt: h.load.samples === 0 ? undefined : h.load.rtt(this.#ctx.env.clock.now(), 0),
        health: h.endpoint.health,
      })),
    };
  }

  /**
   * The mesh's live state as plain JSON, for a debug endpoint or a log line: every upstream service
   * with its endpoints (health, rotation, load, ejection, connections), its config (version and source),
   * its circuit breaker and how stale its registry data is. Cheap enough to serve on request; nothing
   * in it is kept alive by the caller.
   *
   * @example
   * ```ts
   * http.createServer((req, res) => res.end(JSON.stringify(mesh.snapshot()))).listen(9901);
   * ```
   */
  snapshot(): MeshSnapshot {
    return {
      service: this.service ?? null,
      takenAt: new Date().toISOString(),
      registry: this.#ctx.registry.constructor.name,
      services: this.#upstreamStates().sort((a, b) => (a.service < b.service ? -1 : 1)).map(serviceSnapshot),
    };
  }

  /**
   * Says where a request to a service would go and why, without sending it: the route that matches,
   * the split, redirects, the subset, failover, the path and header changes, the balancer and the
   * endpoints it would pick from, the timeouts and the retry plan. Waits for the services involved to be
   * discovered (up to `discoveryTimeout`). Split sequences do not advance, so explaining does not
   * change where the next requests go.
   *
   * @param name - the service called
   * @param request - method (default GET), path (default `/`) with query string, and headers
   * @param options - `watch: false` explains without starting to watch anything (for an admin page):
   *   a service the mesh does not watch yet is reported, not looked up
   * @throws MeshError (as a rejection) `ERR_INVALID_SERVICE_NAME`, `ERR_MESH_CLOSED`, `ERR_INVALID_ARGUMENT`
   *   for a request no call could send (a bad method, path or header); with `watch: false`,
   *   `ERR_UNKNOWN_SERVICE` when the mesh does not watch `name`; routing failures (a service the route
   *   reaches that is not watched, with `watch: false`) are reported in the result's `error`
   *
   * @example
   * ```ts
   * const why = await mesh.explain("web", { path: "/admin/users", headers: { "x-debug": "1" } });
   * console.log(why.route?.index, why.target, why.candidates.map((c) => c.id));
   * ```
   */
  async explain(name: string, request: { readonly method?: string; readonly path?: string; readonly headers?: unknown } = {}, options: ExplainOptions = {}): Promise<RouteExplanation> {
    assertServiceName(name);
    if (request === null || typeof request !== "object") throw invalidArgument(`explain() takes a request such as { method: "GET", path: "/v1/orders" }, got ${typeof request}`);
    if (options === null || typeof options !== "object" || Object.keys(options).some((k) => k !== "watch")) throw invalidArgument("explain() takes options such as { watch: false }");
    const watch = options.watch ?? true;
    if (typeof watch !== "boolean") throw invalidArgument(`explain() option watch takes true or false, got ${typeof watch}`);
    const path = request.path ?? "/";
    // The same checks as a call's, before anything is watched: what explain() accepts, a call would send.
    const problem = (request.method === undefined ? undefined : methodProblem(request.method)) ?? pathProblem(path) ?? headersProblem(request.headers);
    if (problem !== undefined) throw invalidArgument(`${problem} (explain() for service '${name}')`);
    if (!watch) {
      // Only what is watched already, and nothing touched: no watch starts, no service named by requests is kept.
      const watched = (service: string): UpstreamState<EndpointHandle> => {
        if (this.#closing !== undefined) throw meshClosedError();
        const state = this.#states.get(service);
        if (state === undefined) {
          throw new MeshError("ERR_UNKNOWN_SERVICE", `'${service}' is not watched by this process (explain with watch: false looks only at services it watches; a call would start watching it)`, { details: { service, watched: false } });
        }
        return state;
      };
      watched(name);
      return explainRoute(name, { ...request, path }, watched);
    }
    this.client(name);
    return explainRoute(name, { ...request, path }, (service) => this.#stateOf(service));
  }

  /**
   * Registers this process as an instance of a service in the registry (Consul, or a MockRegistry in
   * tests). The mesh deregisters it on {@link Mesh.close}; deregister earlier with the returned handle.
   *
   * @param registration - name, port, address, tags, meta, weights and health check
   * @throws MeshError `ERR_INVALID_CONFIG` when the registry cannot register or refuses the registration,
   *   `ERR_REGISTRY_UNAVAILABLE` when it cannot be reached, `ERR_MESH_CLOSED` after close
   */
  async register(registration: ServiceRegistration): Promise<Registration> {
    if (this.#closing !== undefined) throw meshClosedError();
    const registry = this.#ctx.registry;
    if (registry.register === undefined) {
      throw invalidConfig("registry", "this registry cannot register services (ConsulRegistry and MockRegistry can)");
    }
    // Tracked before it resolves, so that a close() meanwhile still deregisters it.
    const pending = registry.register(registration);
    this.#pendingRegistrations.add(pending);
    let inner: Registration;
    try {
      inner = await pending;
    } finally {
      this.#pendingRegistrations.delete(pending);
    }
    // close() began meanwhile: it deregisters this one (see #deregisterAll).
    if (this.#closing !== undefined) throw meshClosedError();
    this.#registrations.set(inner, registration.name);
    return {
      id: inner.id,
      deregister: () => {
        this.#registrations.delete(inner);
        return inner.deregister();
      },
    };
  }

  /**
   * Deregisters what {@link Mesh.register} registered, stops every registry watch, lets requests in
   * flight finish, and closes every connection pool. Idempotent: later calls return the same promise.
   * Afterwards every call fails with `ERR_MESH_CLOSED`.
   */
  close(): Promise<void> {
    this.#namedByRequests.close();
    return (this.#closing ??= this.#deregisterAll()
      .then(() => Promise.all([...this.#states.values()].map((s) => s.close())))
      .then(() => {
        this.#telemetry.close();
        return this.#closeSecurity();
      }));
  }

  async #closeSecurity(): Promise<void> {
    const security = this.#security;
    if (security === undefined) return;
    security.close();
    await security.source.close();
  }

  /**
   * The mesh's identity source (`tls.identity`), or undefined without mTLS.
   */
  get identity(): IdentitySource | undefined {
    return this.#security?.source;
  }

  /**
   * Serving mTLS with the mesh's identity: TLS options for a `node:https` or `node:http2` server that
   * require and verify client certificates, rotation, and a handler wrapper that authorizes callers.
   *
   * @param options - `authorize`: `"consul"` (the registry's intentions; needs `service` and a
   *   registry with Connect, such as ConsulRegistry), a local policy (`{ allow: ["web"] }`), or a
   *   function; left out, any caller with a certificate from the trust bundle is let in. `cacheMs`:
   *   how long Consul's answers are kept (default 5000). `pathNormalization` (`normalize` or `reject`)
   *   and `escapedSlashes` (`keep`, `reject` or `decode`): how request paths are put in normal form
   *   before they are authorized. Requests the handler answers itself are reported as `inbound_denied`.
   * @throws MeshError `ERR_INVALID_CONFIG` without `tls`, or for `"consul"` without a service name or a registry with Connect
   */
  inbound(options: InboundOptions = {}): Inbound {
    const security = this.#security;
    if (security === undefined) throw invalidConfig("tls", "mesh.inbound() needs the mesh's tls option (its identity)");
    const o = expectOptions(options, "inbound", ["authorize", "cacheMs", "pathNormalization", "escapedSlashes"]) as InboundOptions;
    const cacheMs = optionalNumber(o.cacheMs, "inbound.cacheMs", { min: 0 }) ?? 5000;
    const pathNormalization = optionalChoice(o.pathNormalization, "inbound.pathNormalization", ["normalize", "reject"] as const) ?? "normalize";
    const escapedSlashes = optionalChoice(o.escapedSlashes, "inbound.escapedSlashes", ["keep", "reject", "decode"] as const) ?? "keep";
    let authorizer: Authorizer | undefined;
    // Plain service names mean callers of this mesh's own trust domain, namespace and partition.
    const local = (): LocalScope | undefined => localScopeOf(security.source.current());
    const a = o.authorize;
    if (a === "consul") {
      const registry = this.#ctx.registry;
      if (this.service === undefined) throw invalidConfig("service", `authorize: "consul" checks intentions toward this service: give createMesh a service name`);
      if (registry.connectAuthority === undefined) throw invalidConfig("inbound.authorize", `authorize: "consul" needs a registry with Consul Connect (ConsulRegistry)`);
      const service = this.service;
      authorizer = consulAuthorizer(registry.connectAuthority(), service, {
        cacheMs,
        local,
        onUnsupported: (error) => this.emit("config_rejected", { service, error }),
      });
    } else if (typeof a === "function") authorizer = a;
    else if (a !== undefined) {
      if (a === null || typeof a !== "object") throw invalidConfig("inbound.authorize", `expected "consul", a local policy such as { allow: ["web"] }, or a function`);
      expectOptions(a, "inbound.authorize", ["allow", "deny", "default"]);
      authorizer = localPolicyAuthorizer(a, local);
    }
    return new Inbound(security.source, authorizer, { pathNormalization, escapedSlashes, report: (event) => this.emit("inbound_denied", event) });
  }

  async #deregisterAll(): Promise<void> {
    // Registrations in flight when close() began are deregistered here once they are made.
    const inFlight = await Promise.allSettled([...this.#pendingRegistrations]);
    const registrations: [Registration, string][] = [...this.#registrations];
    for (const settled of inFlight) if (settled.status === "fulfilled") registrations.push([settled.value, "registration"]);
    this.#registrations.clear();
    await Promise.all(
      registrations.map(([r, service]) =>
        r.deregister().catch((err: unknown) => {
          this.emit("registry_error", { service, error: err instanceof Error ? err : new Error(String(err)) });
        }),
      ),
    );
  }

  /**
   * Shuts down at once: deregisters what {@link Mesh.register} registered, stops every watch, aborts requests in flight (they fail with `error`, by default
   * `ERR_MESH_CLOSED`) and closes every connection. Use it when {@link Mesh.close} would wait too long,
   * for instance on a response body nobody reads or a long poll. Afterwards the mesh is closed.
   *
   * @param error - what requests in flight fail with
   */
  destroy(error: Error = meshClosedError()): Promise<void> {
    // Calls this mesh does not pool (gRPC's: grpc-js owns their streams) are ended by their adapter.
    for (const listener of this.#destroyListeners) listener(error);
    this.#destroyListeners.clear();
    this.#namedByRequests.close();
    const destroying = Promise.all([this.#deregisterAll(), ...[...this.#states.values()].map((s) => s.destroy(error))]).then(() => this.#telemetry.close());
    this.#closing ??= destroying;
    return destroying;
  }

  /** The state of a service that is called (routing to it, or a gRPC call, counts), watched from then on. */
  #stateOf(service: string): UpstreamState<EndpointHandle> {
    const state = this.#states.get(service);
    // Routing to it or a gRPC call makes it a service the code uses, never forgotten (client() says so).
    if (state !== undefined && this.#closing === undefined && this.#upstreams.has(service) && !this.#namedByRequests.has(service)) return state;
    this.client(service);
    return this.#states.get(service) as UpstreamState<EndpointHandle>;
  }

  /** The state of a service watched for its config only (the caller's own service-defaults). */
  #watched(service: string): UpstreamState<EndpointHandle> {
    const state = this.#states.get(service);
    if (state !== undefined && this.#closing === undefined) return state;
    this.#clientOf(service);
    return this.#states.get(service) as UpstreamState<EndpointHandle>;
  }

  /** The states of the services called, for the snapshot and the gauges. */
  #upstreamStates(): UpstreamState<EndpointHandle>[] {
    return [...this.#states.values()].filter((s) => this.#upstreams.has(s.service));
  }

  /**
   * Sends a dispatch to the service its origin names.
   *
   * @param viaDispatcher - from `mesh.dispatcher`: an origin that is no mesh service goes to the fallback dispatcher, if any
   */
  #dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, affinity?: Affinity, viaDispatcher = false): boolean {
    let target: Target;
    try {
      // Closed is closed, as for any undici dispatcher: the fallback's origins too.
      if (this.#closing !== undefined) throw meshClosedError();
      target = this.#target(options.origin);
    } catch (err) {
      failHandler(handler, err as Error);
      return false;
    }
    if (target === NOT_ALLOWED) {
      failHandler(handler, notAllowed(options.origin));
      return false;
    }
    if (target === NOT_A_SERVICE) {
      const fallback = this.#fallback;
      if (viaDispatcher && fallback !== undefined) return fallback.dispatch(options, handler);
      failHandler(handler, notAService(options.origin, viaDispatcher));
      return false;
    }
    this.#namedByRequests.touch(target.client.service);
    // A fetch's own hints hold for its own service only (a redirect elsewhere starts afresh).
    const hints = affinity !== undefined && affinity.service === target.client.service ? affinity : undefined;
    // Through mesh.dispatcher, fetch follows redirects itself, each hop a request of its own: a redirect to another service is withheld here.
    const answer = viaDispatcher ? guardRedirects(handler, target.client.service, this.#redirectsTo) : handler;
    return target.client.dispatch(options, answer, target.host, hints?.hashKey, hints?.wait);
  }

  #target(origin: string | URL | undefined): Target {
    const key = origin === undefined ? "" : typeof origin === "string" ? origin : origin.origin;
    const cached = this.#origins.get(key);
    if (cached !== undefined) return cached;
    let url: URL;
    try {
      url = new URL(key);
    } catch (err) {
      throw new MeshError("ERR_INVALID_ARGUMENT", `Invalid argument: the mesh dispatcher needs a URL such as "http://orders/v1/orders", got origin ${JSON.stringify(key)}`, { cause: err });
    }
    // A mesh service is an http:// origin whose host is a service name (a DNS label: no dots, so no IP
    // address or DNS name) and which names no port; localhost never is one. A service name with https://
    // or a port is refused, not passed to the fallback: resolved by DNS (Kubernetes and Consul search
    // domains resolve such names), it would reach the service around the mesh and its identity checks.
    const named = url.hostname !== "localhost" && isValidServiceName(url.hostname);
    let target: Target;
    if (named && url.protocol === "http:" && url.port === "") {
      const name = url.hostname;
      // A name no one has asked for yet: within the cap, or refused before any lookup (and not cached).
      if (!this.#states.has(name)) {
        const refused = this.#namedByRequests.refusal(name);
        if (refused !== undefined) throw refused;
      }
      const known = this.#states.has(name) && !this.#namedByRequests.has(name);
      target = { client: this.#clientOf(name), host: url.host };
      if (!known && !this.#upstreams.has(name)) this.#namedByRequests.add(name);
      this.#upstreams.add(name);
      if (this.#states.get(name)?.status === "missing") this.#forgetIfMadeUp(name);
    } else target = named && (url.protocol === "https:" || url.protocol === "http:") ? NOT_ALLOWED : NOT_A_SERVICE;
    if (this.#origins.size < MAX_CACHED_ORIGINS) this.#origins.set(key, target);
    return target;
  }
}

/** Where a dispatch goes: a service's client (and the Host header), not the mesh at all, or nowhere. */
type Target = { readonly client: ServiceClient; readonly host: string } | typeof NOT_A_SERVICE | typeof NOT_ALLOWED;
const NOT_A_SERVICE = Symbol("not a mesh service");
/** A service name with https:// or a port: neither the mesh's nor the fallback's. */
const NOT_ALLOWED = Symbol("a service name the mesh cannot send to");

/** An origin as a message shows it: scheme and host only, never a user name or password. */
function shownOrigin(origin: string | URL | undefined): string {
  try {
    const url = new URL(String(origin));
    return JSON.stringify(`${url.protocol}//${url.host}`);
  } catch {
    return JSON.stringify(String(origin).slice(0, 100));
  }
}

function notAllowed(origin: string | URL | undefined): MeshError {
  return new MeshError(
    "ERR_INVALID_ARGUMENT",
    `Invalid argument: ${shownOrigin(origin)} names a mesh service with https:// or a port; call it as "http://<service>/path": ` +
      `the mesh picks the endpoint (and its port) and secures the connection itself. Nothing was sent, and it was not passed to a fallback dispatcher.`,
  );
}

function notAService(origin: string | URL | undefined, viaDispatcher: boolean): MeshError {
  const shown = shownOrigin(origin);
  return new MeshError(
    "ERR_INVALID_ARGUMENT",
    `Invalid argument: ${shown} is not a mesh service: the mesh sends to http:// URLs whose host is a service name, with no port, such as "http://orders/v1/orders" ` +
      `(transport security between services is the mesh's job, not the URL's).` +
      (viaDispatcher ? ` To send other origins through another dispatcher, give createMesh a fallbackDispatcher (such as new Agent() from undici).` : ` A redirect there is not followed.`),
  );
}

function parseUpstreams(raw: unknown): Readonly<Record<string, ResilienceOptions>> {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw invalidConfig("upstreams", "expected an object of resilience options by service name");
  const out: Record<string, ResilienceOptions> = {};
  for (const [name, options] of Object.entries(raw)) {
    assertServiceName(name);
    out[name] = validateResilience(options, `upstreams.${name}`);
  }
  return out;
}

function parseSlowStart(raw: SlowStartOptions | undefined): SlowStart | undefined {
  if (raw === undefined) return undefined;
  const o = expectOptions(raw, "slowStart", ["window", "aggression", "minWeightPercent"]);
  const window = optionalNumber(o.window, "slowStart.window", { min: 1 });
  if (window === undefined) throw invalidConfig("slowStart.window", "required: the ramp's length in ms");
  return {
    window,
    aggression: optionalNumber(o.aggression, "slowStart.aggression", { min: 0.01, max: 100 }) ?? 1,
    minWeightPercent: optionalNumber(o.minWeightPercent, "slowStart.minWeightPercent", { min: 0.01, max: 100 }) ?? 10,
  };
}

/**
 * Creates a mesh.
 *
 * @param options - see {@link MeshOptions}; only `registry` is required
 * @throws MeshError `ERR_INVALID_CONFIG` naming the option at fault
 *
 * @example
 * ```ts
 * const mesh = createMesh({ registry: new StaticRegistry({ orders: [{ address: "127.0.0.1", port: 8080 }] }) });
 * const res = await mesh.client("orders").fetch("/v1/orders/42");
 * await mesh.close();
 * ```
 */
export function createMesh(options: MeshOptions): Mesh {
  return new Mesh(options);
}

/** `allowRedirectsTo` of createMesh, checked. */
function parseMeshRedirects(raw: unknown): ReadonlySet<string> | "*" {
  if (raw === undefined) return new Set();
  if (raw === "*") return "*";
  if (!Array.isArray(raw) || !(raw as unknown[]).every((name) => isValidServiceName(name))) {
    throw invalidConfig("allowRedirectsTo", `expected a list of service names such as ["payments"], or "*" for any`);
  }
  return new Set(raw as string[]);
}

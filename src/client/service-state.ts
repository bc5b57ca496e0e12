import { setMaxListeners, type EventEmitter } from "node:events";
import type { BalancerRegistry, BoundBalancer } from "../balancer/balancer-registry.ts";
import type { BalancerEnv, Picker } from "../balancer/picker.ts";
import type { Clock } from "../core/clock.ts";
import { MeshError, invalidConfig } from "../core/errors.ts";
import { roundRobin } from "../balancer/round-robin.ts";
import type { MeshEvents } from "../telemetry/mesh-events.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { Registry, RegistryUpdate, RegistryWatch } from "../registry/registry.ts";
import { validateServiceConfig } from "../config/validate-config.ts";
import type { LoadBalancerConfig } from "../balancer/load-balancer-config.ts";
import type { ServiceConfig } from "../config/service-config.ts";
import { EndpointHandle } from "../transport/http/endpoint-handle.ts";
import type { Pool } from "undici";
import type { RequestHasher } from "../balancer/hash-policy.ts";
import { ServiceRouting } from "../config/service-routing.ts";
import type { ServiceDefaultsConfig } from "../config/defaults-config.ts";
import type { ResilienceOptions } from "../config/resilience-options.ts";
import { callPolicy, guardSettings, type ResilienceLayers } from "../config/resolve-policy.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import type { RouteDestination } from "../config/route-config.ts";
import { UpstreamGuard } from "../upstream/upstream-guard.ts";
import { remainingIncomingMs } from "../core/incoming-deadline.ts";
import { closeMatches } from "../core/close-matches.ts";
import type { TransportSecurity } from "../security/transport-security.ts";
import type { MeshTelemetry } from "../telemetry/mesh-telemetry.ts";
import type { CallLabel } from "../telemetry/call-telemetry.ts";

/** What every service state of one mesh shares. @internal */
export interface MeshContext {
  /** mTLS for the pools, when the mesh has an identity. */
  readonly security: TransportSecurity | undefined;
  readonly registry: Registry;
  readonly balancers: BalancerRegistry;
  readonly defaultBalancer: BoundBalancer;
  readonly env: BalancerEnv & { readonly clock: Clock };
  readonly poolOptions: Pool.Options;
  readonly discoveryTimeout: number;
  readonly events: EventEmitter<MeshEvents>;
  /** Whether the mesh's close() or destroy() has begun: no call may start from then on. */
  readonly closing?: () => boolean;
  /** Told when the registry says a service is missing (the mesh forgets services only request data named). */
  readonly missing?: (service: string) => void;
  /** Percent of endpoints that must be ready; below it, balance over all of them. 0 turns it off. */
  readonly panicThreshold: number;
  /** Weight ramp for endpoints that join a known set; undefined turns it off. */
  readonly slowStart: SlowStart | undefined;
  /** The headers timeout the user set in the `pool` options, if any. */
  readonly userHeadersTimeout: number | undefined;
  /** Traces, metrics and diagnostics_channel messages. */
  readonly telemetry: MeshTelemetry;
  /** Resilience settings from code; the calling service's Consul service-defaults come through `callerDefaults`. */
  readonly resilience: {
    readonly mesh: ResilienceOptions | undefined;
    readonly upstreams: Readonly<Record<string, ResilienceOptions>>;
    readonly callerDefaults: () => ServiceDefaultsConfig | undefined;
  };
}

/** How long a wait for the registry's first answer about a service may last. @internal */
export interface DiscoveryWait {
  /** When the call (or explain) began waiting, on the mesh's clock: its deadline counts from then. */
  readonly startedAt: number;
  /** Until when, on the mesh's clock. */
  readonly until: number;
  /** The call's deadline in ms, when that (not the discovery timeout) sets `until`: running out is `ERR_TIMEOUT`. */
  readonly deadlineMs: number | undefined;
}

/** Slow start settings, validated. @internal */
export interface SlowStart {
  readonly window: number;
  readonly aggression: number;
  readonly minWeightPercent: number;
}

/** Where discovery of a service stands. @internal */
export type Status = "pending" | "missing" | "known" | "closed";

/** How the registry is doing for one service. @internal */
export interface RegistryStatus {
  /** When its last good answer came (the clock's time); undefined before the first. */
  readonly lastUpdateAt: number | undefined;
  /** Whether its last message was a failure. */
  readonly failing: boolean;
  /**
   * How long the registry has been failing, in ms: the watch's own account when it gives one
   * (`failingForMs`), else since the first error after the last good message. 0 while it answers.
   */
  readonly stalenessMs: number;
  /** The last failure, while failing. */
  readonly lastError: Error | undefined;
  /** Configurations accepted so far (0: defaults). */
  readonly configVersion: number;
  /** When the config in force was accepted (the clock's time). */
  readonly configAt: number | undefined;
}

/** Mirrored copies allowed in flight to one service; beyond it, copies are skipped. @internal */
export const MAX_MIRRORS_IN_FLIGHT = 100;

/**
 * Everything the mesh knows about one upstream service: the registry's last answer, a handle per
 * endpoint, and the picker over the ready ones. Registry updates build a new picker and swap it in
 * whole; a request reads `picker` once. @internal
 */
export class ServiceState {
  readonly service: string;
  /** The picker over ready endpoints; undefined when none can take traffic or nothing is known yet. */
  picker: Picker<EndpointHandle> | undefined;
  #status: Status = "pending";
  #endpoints: EndpointSet | undefined;
  #handles = new Map<string, EndpointHandle>();
  #balancer: BoundBalancer;
  #config: ServiceConfig = {};
  #routing: ServiceRouting = ServiceRouting.NONE;
  /** Pickers over each resolver subset, built on first use and dropped whenever the picker is rebuilt. */
  #subsetPickers = new Map<string, { readonly picker: Picker<EndpointHandle> | undefined; readonly targets: readonly EndpointHandle[] }>();
  #panic = false;
  #targets: readonly EndpointHandle[] = [];
  #slowStartTimer: unknown;
  #lastError: Error | undefined;
  /** The services the registry knows, as its last "missing" message said. */
  #knownServices: readonly string[] | undefined;
  /** Aborts mirrored copies in flight to this service when it closes: they must not hold up close(). */
  readonly #shadow = new AbortController();
  /** Mirrored copies in flight to this service. */
  mirrorsInFlight = 0;
  #guard: UpstreamGuard | undefined;
  /** Call policies by route destination, for the config and guard in force (weakly held: routes come and go). */
  #policies = new WeakMap<RouteDestination, CallPolicy>();
  /** The policy of calls that no route sent. */
  #plainPolicy: CallPolicy | undefined;
  /** The caller's service-defaults the guard was built with. */
  #guardCaller: ServiceDefaultsConfig | undefined;
  readonly #retiring = new Set<Promise<void>>();
  readonly #retiringHandles = new Set<EndpointHandle>();
  readonly #waiters = new Set<() => void>();
  readonly #ctx: MeshContext;
  #watch: RegistryWatch | undefined;
  #lastGoodAt: number | undefined;
  /** When the registry began failing (its first error since its last good message); undefined while it answers. */
  #failingSince: number | undefined;
  #configVersion = 0;
  #configAt: number | undefined;
  /** The call label of calls that no route sent here. */
  readonly plainLabel: CallLabel;

  constructor(service: string, ctx: MeshContext) {
    setMaxListeners(MAX_MIRRORS_IN_FLIGHT + 10, this.#shadow.signal);
    this.service = service;
    this.plainLabel = Object.freeze({ service, route: undefined, subset: undefined });
    this.#ctx = ctx;
    this.#balancer = ctx.defaultBalancer;
  }

  /**
   * Starts following the registry. The mesh calls it once the state can be found by name: a registry
   * that answers at once sets off the mesh's events, and their listeners may ask for this service.
   */
  start(): void {
    this.#watch ??= this.#ctx.registry.watch(this.service, (update) => this.#onUpdate(update));
  }

  /** Where discovery stands: waiting for the registry's first answer, known, missing from it, or closed. */
  get status(): Status {
    return this.#status;
  }

  /** The mesh's telemetry. */
  get telemetry(): MeshTelemetry {
    return this.#ctx.telemetry;
  }

  /** How the registry is doing for this service. */
  get registryStatus(): RegistryStatus {
    // The watch's own account when it gives one; else from the first error update to the next good one.
    const watch = this.#watch;
    const failingFor = watch?.failingForMs === undefined ? this.#failingForByUpdates() : watch.failingForMs();
    const failing = failingFor !== undefined;
    const stalenessMs = failingFor ?? 0;
    return {
      lastUpdateAt: this.#lastGoodAt,
      failing,
      stalenessMs,
      lastError: failing ? this.#lastError : undefined,
      configVersion: this.#configVersion,
      configAt: this.#configAt,
    };
  }

  #failingForByUpdates(): number | undefined {
    const since = this.#failingSince;
    return since === undefined ? undefined : Math.max(0, this.#ctx.env.clock.now() - since);
  }

  /** Every endpoint's handle, ready or not. */
  get handles(): Iterable<EndpointHandle> {
    return this.#handles.values();
  }

  /** Open connections to this service's endpoints. */
  get openConnections(): number {
    let n = 0;
    for (const handle of this.#handles.values()) n += handle.connections;
    return n;
  }

  /** The current endpoint set, if the registry has answered. */
  get endpoints(): EndpointSet | undefined {
    return this.#endpoints;
  }

  /** The config in force (the last one that validated); `{}` until one arrives. */
  get config(): ServiceConfig {
    return this.#config;
  }

  /** Where this upstream's resilience settings come from (see ResilienceLayers). */
  get layers(): ResilienceLayers {
    const r = this.#ctx.resilience;
    return { mesh: r.mesh, upstream: r.upstreams[this.service], caller: r.callerDefaults() };
  }

  /**
   * The budget, outlier detection, breaker and limits of this upstream; rebuilt when the calling
   * service's Consul service-defaults change.
   */
  get guard(): UpstreamGuard {
    return this.#refreshGuard();
  }

  #refreshGuard(): UpstreamGuard {
    const caller = this.#ctx.resilience.callerDefaults();
    if (this.#guard !== undefined && caller === this.#guardCaller) return this.#guard;
    const layers = this.layers;
    this.#policies = new Map();
    const hadEjections = (this.#guard?.outlier?.ejectedCount ?? 0) > 0;
    this.#guard?.close();
    this.#guardCaller = layers.caller;
    const events = this.#ctx.events;
    const service = this.service;
    this.#guard = new UpstreamGuard(guardSettings(service, layers), this.#ctx.env.clock, this.#ctx.env.random, {
      ejected: (e) => {
        this.#rebuildPicker();
        events.emit("endpoint_ejected", { service, endpoint: e.id, failures: e.failures, durationMs: e.durationMs, reason: e.reason, ...(e.successRate === undefined || e.threshold === undefined ? {} : { successRate: e.successRate, threshold: e.threshold }) });
      },
      returned: (id) => {
        if (this.#status !== "closed") this.#rebuildPicker();
        events.emit("endpoint_returned", { service, endpoint: id });
      },
      breaker: (state) => events.emit("breaker_state_changed", { service, state }),
    });
    if (hadEjections) this.#rebuildPicker();
    return this.#guard;
  }

  /**
   * The policy of a call to this service (timeouts, retries), for the route destination that sent it
   * here, if any. Cached per config.
   */
  policyFor(destination: RouteDestination | undefined): CallPolicy {
    this.#refreshGuard(); // clears the cache when the caller's service-defaults changed
    if (destination === undefined) return (this.#plainPolicy ??= callPolicy(this.layers, this.#config.resolver, undefined));
    let policy = this.#policies.get(destination);
    if (policy === undefined) this.#policies.set(destination, (policy = callPolicy(this.layers, this.#config.resolver, destination)));
    return policy;
  }

  /** Aborted when the state closes; mirrored copies to this service carry it. */
  get shadowSignal(): AbortSignal {
    return this.#shadow.signal;
  }

  /** The headers timeout the pools enforce themselves, in ms. */
  get poolHeadersTimeout(): number {
    return this.#ctx.poolOptions.headersTimeout ?? 300_000;
  }

  /** The headers timeout the user set in the mesh's `pool` options, if any: no call waits longer. */
  get userHeadersTimeout(): number | undefined {
    return this.#ctx.userHeadersTimeout;
  }

  /** The mesh's event emitter. */
  get events(): MeshContext["events"] {
    return this.#ctx.events;
  }

  /** The mesh's clock and random source. */
  get env(): MeshContext["env"] {
    return this.#ctx.env;
  }

  /** The routing compiled from the config in force. */
  get routing(): ServiceRouting {
    return this.#routing;
  }

  /** Whether calls are refused: the mesh's close() or destroy() has begun, or this state closed. */
  get closing(): boolean {
    return this.#status === "closed" || this.#ctx.closing?.() === true;
  }

  /** Whether the registry has answered for the service (or the state is closed): a wait would not help. */
  get settled(): boolean {
    return this.#status !== "pending";
  }

  /**
   * The picker over a resolver subset's ready endpoints (those that match its filter, and pass when it
   * wants only passing ones), with the endpoints it balances over; the picker is undefined when none
   * can take traffic. Unlike the whole service, a subset does not enter panic: an empty subset fails
   * over instead.
   *
   * @param name - a subset the resolver defines
   */
  subsetPicker(name: string): { readonly picker: Picker<EndpointHandle> | undefined; readonly targets: readonly EndpointHandle[] } {
    const cached = this.#subsetPickers.get(name);
    if (cached !== undefined) return cached;
    const subset = this.#routing.subsets.get(name);
    const targets: EndpointHandle[] = [];
    if (subset !== undefined && this.#status === "known") {
      const outlier = this.#guard?.outlier;
      for (const endpoint of this.#endpoints?.ready ?? []) {
        const handle = this.#handles.get(endpoint.id);
        if (handle !== undefined && subset.includes(endpoint) && outlier?.isEjected(endpoint.id) !== true) targets.push(handle);
      }
    }
    const built = { picker: targets.length === 0 ? undefined : this.#pickerOver(targets), targets };
    this.#subsetPickers.set(name, built);
    return built;
  }

  /**
   * How long a wait for the registry may last, from now: the discovery timeout; for a call (`call`),
   * its own deadline when that comes first (the timeout of calls to this upstream, or an incoming
   * deadline).
   */
  discoveryWait(call: boolean): DiscoveryWait {
    const clock = this.#ctx.env.clock;
    const discovery = this.#ctx.discoveryTimeout;
    const startedAt = clock.now();
    if (call) {
      const policy = this.policyFor(undefined);
      const incoming = remainingIncomingMs();
      let deadline = policy.timeoutMs > 0 ? policy.timeoutMs : Infinity;
      if (incoming !== undefined) deadline = Math.min(deadline, Math.max(0, incoming));
      if (deadline < discovery) return { startedAt, until: startedAt + deadline, deadlineMs: Math.round(deadline) };
    }
    return { startedAt, until: startedAt + discovery, deadlineMs: undefined };
  }

  /**
   * Waits until the registry has answered for the service, or until `wait.until` (by default the
   * discovery timeout from now), or until `signal` aborts. A call waits on it, so the wait keeps the
   * process alive. Never throws.
   */
  async settle(wait: DiscoveryWait = this.discoveryWait(false), signal?: AbortSignal): Promise<void> {
    const clock = this.#ctx.env.clock;
    for (let left = wait.until - clock.now(); this.#status === "pending" && left > 0 && signal?.aborted !== true; left = wait.until - clock.now()) {
      await this.#nextUpdate(left, signal);
    }
  }

  get policy(): string {
    return this.#balancer.policy;
  }

  /** How the balancer in force hashes requests, if it does. */
  get hasher(): RequestHasher | undefined {
    return this.#balancer.hasher;
  }

  /** The handles the current picker was built over. */
  get targets(): readonly EndpointHandle[] {
    return this.#targets;
  }

  /** Whether too few endpoints are ready and traffic is spread over all of them. */
  get panic(): boolean {
    return this.#panic;
  }

  /** The number of endpoint handles whose pool has been created. */
  get openPools(): number {
    let n = 0;
    for (const handle of this.#handles.values()) if (handle.hasPool) n++;
    return n;
  }

  /**
   * The error for a request that finds no picker.
   *
   * @param wait - the wait for the registry that the request gave up, if any: when the call's own
   *   deadline ended it, the error is `ERR_TIMEOUT`
   */
  unavailableError(wait?: DiscoveryWait): MeshError {
    const service = this.service;
    switch (this.#status) {
      case "closed":
        return meshClosedError();
      case "missing": {
        const similar = closeMatches(service, this.#knownServices ?? []);
        const hint = similar.length === 0 ? "" : ` Did you mean ${similar.map((s) => `'${s}'`).join(" or ")}?`;
        return new MeshError(
          "ERR_UNKNOWN_SERVICE",
          `Service '${service}' is not in the registry.${hint} Check the name, or register the service before calling it.`,
          { details: similar.length === 0 ? { service } : { service, similar } },
        );
      }
      case "pending":
        if (wait?.deadlineMs !== undefined) {
          return new MeshError(
            "ERR_TIMEOUT",
            `A call to '${service}' reached its ${wait.deadlineMs} ms deadline while waiting for the registry's first answer about the service; nothing was sent. Check that the registry is reachable, or raise timeoutMs.`,
            { cause: this.#lastError, details: { service, timeoutMs: wait.deadlineMs, attempts: 0 } },
          );
        }
        return this.#lastError === undefined
          ? new MeshError(
              "ERR_DISCOVERY_TIMEOUT",
              `The registry gave no answer for service '${service}' within ${this.#ctx.discoveryTimeout} ms. ` +
                `Check that the registry is reachable, or raise the mesh's 'discoveryTimeout'.`,
              { details: { service } },
            )
          : new MeshError(
              "ERR_REGISTRY_UNAVAILABLE",
              `The registry failed before it answered for service '${service}': ${this.#lastError.message}`,
              { cause: this.#lastError, details: { service } },
            );
      case "known": {
        const all = this.#endpoints?.all ?? [];
        if (all.length === 0) {
          return new MeshError(
            "ERR_NO_ENDPOINTS",
            `Service '${service}' has no endpoints registered. Start an instance or check its registration.`,
            { details: { service, endpoints: 0 } },
          );
        }
        const critical = all.filter((e) => e.health === "critical").length;
        return new MeshError(
          "ERR_NO_ENDPOINTS",
          `None of the ${all.length} endpoints of service '${service}' can take traffic ` +
            `(${critical} critical, ${all.length - critical} with weight 0). Check their health checks.`,
          { details: { service, endpoints: all.length, critical } },
        );
      }
    }
  }

  /**
   * Whether nothing is lost if the mesh forgets this service: the registry says it is missing, no config
   * routes it anywhere (a splitter or router can make a service with no instance of its own), and no
   * request is still on its way to an endpoint it had.
   */
  get forgettable(): boolean {
    return this.#status === "missing" && !this.#routing.active && Object.keys(this.#config).length === 0 && this.#handles.size === 0 && this.#retiring.size === 0;
  }

  /**
   * Stops watching a service the registry says is missing, keeping that answer for anyone who still
   * holds this state: the mesh forgets it. @internal
   */
  forget(): void {
    this.#watch?.close();
    this.#watch = undefined;
  }

  /** Stops the watch, then lets in-flight requests finish and closes every pool. Idempotent. */
  async close(): Promise<void> {
    if (this.#status !== "closed") {
      this.#status = "closed";
      this.picker = undefined;
      this.#targets = [];
      this.#subsetPickers = new Map();
      this.#shadow.abort(meshClosedError());
      this.#guard?.close();
      this.#ctx.env.clock.clearTimeout(this.#slowStartTimer);
      this.#watch?.close();
      this.#wake();
      for (const handle of this.#handles.values()) this.#retire(handle);
      this.#handles = new Map();
    }
    while (this.#retiring.size > 0) await Promise.all(this.#retiring);
  }

  #onUpdate(update: RegistryUpdate): void {
    if (this.#status === "closed") return;
    switch (update.type) {
      case "endpoints":
        this.#applyEndpoints(update.endpoints);
        break;
      case "missing":
        this.#status = "missing";
        this.#lastError = undefined;
        this.#knownServices = update.services;
        this.#applyEndpoints(undefined);
        this.#ctx.missing?.(this.service);
        break;
      case "config":
        this.#applyConfig(update.config);
        break;
      case "error":
        this.#lastError = update.error;
        this.#failingSince ??= this.#ctx.env.clock.now();
        this.#ctx.events.emit("registry_error", { service: this.service, error: update.error });
        return;
    }
    this.#lastGoodAt = this.#ctx.env.clock.now();
    this.#failingSince = undefined;
    this.#wake();
  }

  #applyEndpoints(set: EndpointSet | undefined): void {
    const previous = this.#endpoints;
    const next = new Map<string, EndpointHandle>();
    const clock = this.#ctx.env.clock;
    // Endpoints in the first answer are not "new": slow start is for those that join a running service.
    const addedAt = previous === undefined ? undefined : clock.now();
    for (const endpoint of set?.all ?? []) {
      let handle = this.#handles.get(endpoint.id);
      if (handle !== undefined && (handle.endpoint.origin !== endpoint.origin || handle.endpoint.tls !== endpoint.tls || handle.endpoint.identity !== endpoint.identity)) handle = undefined;
      if (handle === undefined) handle = new EndpointHandle(endpoint, this.#ctx.poolOptions, clock, addedAt, this.#ctx.security?.transportFor(this.service, endpoint));
      else handle.update(endpoint);
      next.set(endpoint.id, handle);
    }
    for (const [id, handle] of this.#handles) if (next.get(id) !== handle) this.#retire(handle);
    this.#handles = next;
    this.#endpoints = set;
    this.#guard?.outlier?.retain(new Set(next.keys()));
    if (set !== undefined) {
      this.#status = "known";
      this.#lastError = undefined;
    }
    this.#rebuildPicker();
    if (set !== undefined) {
      this.#ctx.events.emit("endpoints_changed", { service: this.service, endpoints: set, diff: set.diff(previous) });
    }
  }

  #applyConfig(config: ServiceConfig): void {
    let balancer: BoundBalancer;
    try {
      validateServiceConfig(config, this.service);
      balancer = bindBalancer(this.#ctx, config.loadBalancer);
    } catch (err) {
      if (!(err instanceof MeshError)) throw err;
      this.#ctx.events.emit("config_rejected", { service: this.service, error: err });
      return;
    }
    this.#balancer = balancer;
    this.#config = config;
    this.#policies = new WeakMap();
    this.#plainPolicy = undefined;
    this.#routing = new ServiceRouting(this.service, config);
    this.#configVersion++;
    this.#configAt = this.#ctx.env.clock.now();
    this.#rebuildPicker();
    this.#ctx.events.emit("config_applied", { service: this.service, policy: balancer.policy, version: this.#configVersion });
  }

  #rebuildPicker(): void {
    const { clock } = this.#ctx.env;
    clock.clearTimeout(this.#slowStartTimer);
    this.#subsetPickers = new Map();
    const set = this.#endpoints;
    const ready: EndpointHandle[] = [];
    const outlier = this.#guard?.outlier;
    for (const endpoint of set?.ready ?? []) {
      const handle = this.#handles.get(endpoint.id);
      // An ejected endpoint counts as not ready: the panic threshold still keeps the pool from emptying.
      if (handle !== undefined && outlier?.isEjected(endpoint.id) !== true) ready.push(handle);
    }
    // Critical endpoints never take traffic, from any registry (as Consul's DNS and health API leave
    // them out), so a unit test on MockRegistry predicts production; the rest are the candidates.
    const candidates = (set?.all ?? []).filter((e) => e.health !== "critical");
    // Panic (Envoy): when too few candidates are ready (not ejected, weight above 0), the ready ones would
    // be overwhelmed, or the ejections are wrong; spread traffic over all candidates.
    this.#panic = candidates.length > 0 && ready.length * 100 < this.#ctx.panicThreshold * candidates.length;
    const targets = this.#panic ? candidates.map((e) => this.#handles.get(e.id)).filter((h) => h !== undefined) : ready;
    this.#targets = targets;
    if (targets.length === 0) {
      this.picker = undefined;
      return;
    }
    const now = clock.now();
    let ramping = false;
    for (const handle of targets) {
      const endpoint = handle.endpoint;
      const base = endpoint.weight > 0 ? endpoint.weight : endpoint.weights.passing;
      const factor = this.#balancer.consistentHashing ? 1 : slowStartFactor(this.#ctx.slowStart, handle.addedAt, now);
      if (factor < 1) ramping = true;
      handle.weight = base * factor;
    }
    if (ramping && this.#ctx.slowStart !== undefined) {
      const step = Math.max(100, this.#ctx.slowStart.window / 16);
      this.#slowStartTimer = clock.setTimeout(() => {
        if (this.#status !== "closed") this.#rebuildPicker();
      }, step);
    }
    this.#build(targets);
  }

  #build(targets: EndpointHandle[]): void {
    this.picker = this.#pickerOver(targets);
  }

  #pickerOver(targets: readonly EndpointHandle[]): Picker<EndpointHandle> {
    try {
      return this.#balancer.createPicker(targets, this.#ctx.env);
    } catch (err) {
      // A plugin bug must not leave the old picker (which may hold retired endpoints) in place, nor throw
      // into the registry: serve with round robin and say so.
      const reason = err instanceof Error ? err.message : String(err);
      const error = invalidConfig("loadBalancer.policy", `balancer '${this.#balancer.policy}' failed to build a picker (${reason}); using round_robin until the next change`, { cause: err });
      this.#ctx.events.emit("config_rejected", { service: this.service, error });
      return roundRobin.createPicker(targets, {}, this.#ctx.env);
    }
  }

  #retire(handle: EndpointHandle): void {
    this.#retiringHandles.add(handle);
    const closing = handle.close().finally(() => {
      this.#retiring.delete(closing);
      this.#retiringHandles.delete(handle);
    });
    this.#retiring.add(closing);
  }

  /**
   * Like {@link ServiceState.close}, but aborts requests in flight, including those on endpoints that
   * were already draining.
   *
   * @param error - what the aborted requests fail with
   */
  async destroy(error: Error): Promise<void> {
    const handles = [...this.#handles.values(), ...this.#retiringHandles];
    const closing = this.close();
    await Promise.all(handles.map((h) => h.destroy(error)));
    await closing;
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  #nextUpdate(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    const clock = this.#ctx.env.clock;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clock.clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, timeout, true); // a call waits on it
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/**
 * Envoy's slow-start factor: `max(minWeightPercent / 100, (elapsed / window)^(1 / aggression))` while an
 * endpoint that joined a running service is younger than the window, 1 otherwise.
 */
function slowStartFactor(slowStart: SlowStart | undefined, addedAt: number | undefined, now: number): number {
  if (slowStart === undefined || addedAt === undefined) return 1;
  const elapsed = now - addedAt;
  if (elapsed >= slowStart.window) return 1;
  const ramp = Math.pow(Math.max(0, elapsed) / slowStart.window, 1 / slowStart.aggression);
  return Math.max(slowStart.minWeightPercent / 100, ramp);
}

function bindBalancer(ctx: MeshContext, lb: LoadBalancerConfig | undefined): BoundBalancer {
  return lb === undefined ? ctx.defaultBalancer : ctx.balancers.bind(lb, "loadBalancer");
}

/** The error for any call after `mesh.close()`. @internal */
export function meshClosedError(cause?: unknown): MeshError {
  return new MeshError("ERR_MESH_CLOSED", "The mesh is closed. Create a new mesh with createMesh() to send more requests.", cause === undefined ? {} : { cause });
}

import { setMaxListeners } from "node:events";
import type { BoundBalancer } from "../balancer/balancer-registry.ts";
import type { RequestHasher } from "../balancer/hash-policy.ts";
import type { LoadBalancerConfig } from "../balancer/load-balancer-config.ts";
import type { Picker } from "../balancer/picker.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import type { RouteDestination } from "../config/route-config.ts";
import type { ServiceConfig } from "../config/service-config.ts";
import { checkDiscoveryChains } from "../config/discovery-chain-check.ts";
import { ServiceRouting } from "../config/service-routing.ts";
import { compileServiceConfig, type CompiledServiceConfig } from "../config/compile-config.ts";
import { MeshError } from "../core/errors.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { RegistryUpdate, RegistryWatch } from "../registry/registry.ts";
import type { CallLabel } from "../telemetry/call-telemetry.ts";
import type { MeshTelemetry } from "../telemetry/mesh-telemetry.ts";
import { discoveryWait, UpdateWaiters, type DiscoveryWait } from "./discovery-wait.ts";
import { EndpointPool, type PickedEndpoints } from "./endpoint-pool.ts";
import type { MeshContext } from "./mesh-context.ts";
import type { PoolHandle } from "./pool-handle.ts";
import { meshClosedError, unavailableError } from "./upstream-errors.ts";
import type { UpstreamGuard } from "./upstream-guard.ts";
import { UpstreamPolicies } from "./upstream-policies.ts";
import { MAX_MIRRORS_IN_FLIGHT, type RegistryStatus, type Status, type UpstreamView } from "./upstream-view.ts";

/**
 * Everything the mesh knows about one upstream service: it follows the registry's answers and the
 * service's config, and holds the {@link EndpointPool} (handles, pickers) and the
 * {@link UpstreamPolicies} (guard, call policies). Registry updates build a new picker and swap it in
 * whole; a request reads `picker` once. The mesh, which assembles the stack, is the only holder of
 * this class; every other layer reads an upstream through {@link UpstreamView}. @internal
 */
export class UpstreamState<H extends PoolHandle> implements UpstreamView<H> {
  readonly service: string;
  readonly plainLabel: CallLabel;
  mirrorsInFlight = 0;
  #status: Status = "pending";
  #config: ServiceConfig = {};
  #routing: ServiceRouting = ServiceRouting.NONE;
  readonly #pool: EndpointPool<H>;
  readonly #policies: UpstreamPolicies;
  #lastError: Error | undefined;
  /** The services the registry knows, as its last "missing" message said. */
  #knownServices: readonly string[] | undefined;
  /** Aborts mirrored copies in flight to this service when it closes: they must not hold up close(). */
  readonly #shadow = new AbortController();
  readonly #waiters: UpdateWaiters;
  readonly #ctx: MeshContext<H>;
  #watch: RegistryWatch | undefined;
  #lastGoodAt: number | undefined;
  /** When the registry began failing (its first error since its last good message); undefined while it answers. */
  #failingSince: number | undefined;
  #configVersion = 0;
  #configAt: number | undefined;
  /** The newest config, refused for a discovery-chain problem: tried again when another service's config changes. */
  #waiting: { readonly config: ServiceConfig; readonly message: string } | undefined;

  constructor(service: string, ctx: MeshContext<H>) {
    setMaxListeners(MAX_MIRRORS_IN_FLIGHT + 10, this.#shadow.signal);
    this.service = service;
    this.plainLabel = Object.freeze({ service, route: undefined, subset: undefined });
    this.#ctx = ctx;
    this.#waiters = new UpdateWaiters(ctx.env.clock);
    this.#pool = new EndpointPool(service, ctx, { outlier: () => this.#policies.outlier, subsets: () => this.#routing.subsets });
    this.#policies = new UpstreamPolicies(service, ctx, { rebuild: () => this.#pool.rebuild(), closed: () => this.#status === "closed" });
  }

  /**
   * Starts following the registry. The mesh calls it once the state can be found by name: a registry
   * that answers at once sets off the mesh's events, and their listeners may ask for this service.
   */
  start(): void {
    this.#watch ??= this.#ctx.registry.watch(this.service, (update) => this.#onUpdate(update));
  }

  get status(): Status {
    return this.#status;
  }

  get settled(): boolean {
    return this.#status !== "pending";
  }

  get closing(): boolean {
    return this.#status === "closed" || this.#ctx.closing?.() === true;
  }

  get registryStatus(): RegistryStatus {
    // The watch's own account when it gives one; else from the first error update to the next good one.
    const watch = this.#watch;
    const failingFor = watch?.failingForMs === undefined ? this.#failingForByUpdates() : watch.failingForMs();
    const failing = failingFor !== undefined;
    return {
      lastUpdateAt: this.#lastGoodAt,
      failing,
      stalenessMs: failingFor ?? 0,
      lastError: failing ? this.#lastError : undefined,
      configVersion: this.#configVersion,
      configAt: this.#configAt,
    };
  }

  #failingForByUpdates(): number | undefined {
    const since = this.#failingSince;
    return since === undefined ? undefined : Math.max(0, this.#ctx.env.clock.now() - since);
  }

  get endpoints(): EndpointSet | undefined {
    return this.#pool.endpoints;
  }

  get config(): ServiceConfig {
    return this.#config;
  }

  /** The config in force, or undefined before the registry gave one (the chain checks do not judge it then). */
  get appliedConfig(): ServiceConfig | undefined {
    return this.#configVersion === 0 ? undefined : this.#config;
  }

  /** Whether a config refused for a discovery-chain problem waits to be tried again. */
  get configWaiting(): boolean {
    return this.#waiting !== undefined;
  }

  /** The config refused for a discovery-chain problem, while it waits. */
  get waitingConfig(): ServiceConfig | undefined {
    return this.#waiting?.config;
  }

  /**
   * Tries again the config refused for a discovery-chain problem, after another service's config
   * changed: it is applied if its chains now compile. A refusal for the same reason is not reported
   * again.
   */
  retryWaitingConfig(): void {
    const waiting = this.#waiting;
    if (waiting === undefined || this.#status === "closed") return;
    this.#applyConfig(waiting.config, waiting.message);
  }

  get routing(): ServiceRouting {
    return this.#routing;
  }

  get picker(): Picker<H> | undefined {
    return this.#pool.picker;
  }

  get targets(): readonly H[] {
    return this.#pool.targets;
  }

  get handles(): Iterable<H> {
    return this.#pool.handles;
  }

  get panic(): boolean {
    return this.#pool.panic;
  }

  get policy(): string {
    return this.#pool.balancer.policy;
  }

  get hasher(): RequestHasher | undefined {
    return this.#pool.balancer.hasher;
  }

  get openConnections(): number {
    return this.#pool.openConnections;
  }

  get openPools(): number {
    return this.#pool.openPools;
  }

  get guard(): UpstreamGuard {
    return this.#policies.guard;
  }

  get telemetry(): MeshTelemetry {
    return this.#ctx.telemetry;
  }

  get events(): MeshContext<H>["events"] {
    return this.#ctx.events;
  }

  get env(): MeshContext<H>["env"] {
    return this.#ctx.env;
  }

  get poolHeadersTimeout(): number {
    return this.#ctx.poolHeadersTimeout;
  }

  get userHeadersTimeout(): number | undefined {
    return this.#ctx.userHeadersTimeout;
  }

  get shadowSignal(): AbortSignal {
    return this.#shadow.signal;
  }

  policyFor(destination: RouteDestination | undefined): CallPolicy {
    return this.#policies.policyFor(destination);
  }

  subsetPicker(name: string): PickedEndpoints<H> {
    return this.#pool.subsetPicker(name);
  }

  discoveryWait(call: boolean): DiscoveryWait {
    return discoveryWait(this.#ctx.env.clock, this.#ctx.discoveryTimeout, call ? () => this.policyFor(undefined).timeoutMs : undefined);
  }

  async settle(wait: DiscoveryWait = this.discoveryWait(false), signal?: AbortSignal): Promise<void> {
    const clock = this.#ctx.env.clock;
    for (let left = wait.until - clock.now(); this.#status === "pending" && left > 0 && signal?.aborted !== true; left = wait.until - clock.now()) {
      await this.#waiters.next(left, signal);
    }
  }

  unavailableError(wait?: DiscoveryWait): MeshError {
    const facts = { service: this.service, status: this.#status, knownServices: this.#knownServices, lastError: this.#lastError, discoveryTimeout: this.#ctx.discoveryTimeout, endpoints: this.#pool.endpoints };
    return unavailableError(facts, wait);
  }

  /**
   * Whether nothing is lost if the mesh forgets this service: the registry says it is missing, no config
   * routes it anywhere (a splitter or router can make a service with no instance of its own), and no
   * request is still on its way to an endpoint it had.
   */
  get forgettable(): boolean {
    return this.#status === "missing" && !this.#routing.active && Object.keys(this.#config).length === 0 && this.#pool.empty;
  }

  /**
   * Whether work for this service is under way: a request on one of its endpoints (draining ones
   * included), a call holding or queued for a concurrency slot, a wait for the registry, or a mirrored
   * copy. The mesh does not release an idle service while it is.
   */
  get busy(): boolean {
    if (this.mirrorsInFlight > 0 || this.#waiters.size > 0) return true;
    const limit = this.#policies.guard.limit;
    if (limit !== undefined && (limit.active > 0 || limit.waiting > 0)) return true;
    for (const handle of this.#pool.allHandles()) if (handle.load.pending > 0) return true;
    return false;
  }

  /**
   * Stops watching a service the registry says is missing, keeping that answer for anyone who still
   * holds this state: the mesh forgets it.
   */
  forget(): void {
    this.#watch?.close();
    this.#watch = undefined;
  }

  /** Stops the watch, then lets in-flight requests finish and closes every pool. Idempotent. */
  async close(): Promise<void> {
    if (this.#status !== "closed") {
      this.#status = "closed";
      this.#pool.stop();
      this.#shadow.abort(meshClosedError());
      this.#policies.close();
      this.#watch?.close();
      this.#waiters.wake();
      this.#pool.retireAll();
    }
    await this.#pool.drained();
  }

  /**
   * Like {@link UpstreamState.close}, but aborts requests in flight, including those on endpoints that
   * were already draining.
   *
   * @param error - what the aborted requests fail with
   */
  async destroy(error: Error): Promise<void> {
    const handles = this.#pool.allHandles();
    const closing = this.close();
    await Promise.all(handles.map((h) => h.destroy(error)));
    await closing;
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
    this.#waiters.wake();
  }

  #applyEndpoints(set: EndpointSet | undefined): void {
    const previous = this.#pool.endpoints;
    this.#pool.replace(set);
    this.#policies.outlier?.retain(this.#pool.ids());
    if (set !== undefined) {
      this.#status = "known";
      this.#lastError = undefined;
    }
    this.#pool.rebuild();
    if (set !== undefined) {
      this.#ctx.events.emit("endpoints_changed", { service: this.service, endpoints: set, diff: set.diff(previous) });
    }
  }

  /**
   * @param config - the config to apply
   * @param reported - for a retry, the message its last refusal was reported with
   */
  #applyConfig(config: ServiceConfig, reported?: string): void {
    let balancer: BoundBalancer;
    let compiled: CompiledServiceConfig;
    this.#waiting = undefined;
    try {
      compiled = compileServiceConfig(config, this.service);
      const configs = this.#ctx.configs;
      if (configs !== undefined) checkDiscoveryChains(this.service, config, configs);
      balancer = this.#bindBalancer(config.loadBalancer);
    } catch (err) {
      if (!(err instanceof MeshError)) throw err;
      // A chain problem may be another service's to fix: the config waits for the next change.
      if (err.details.chain !== undefined) {
        this.#waiting = { config, message: err.message };
        this.#ctx.configs?.waiting(this.service);
      }
      if (err.message !== reported) this.#ctx.events.emit("config_rejected", { service: this.service, error: err });
      return;
    }
    this.#pool.useBalancer(balancer);
    this.#config = compiled.config;
    this.#policies.configure(config.resolver);
    this.#routing = new ServiceRouting(compiled);
    this.#configVersion++;
    this.#configAt = this.#ctx.env.clock.now();
    this.#pool.rebuild();
    this.#ctx.events.emit("config_applied", { service: this.service, policy: balancer.policy, version: this.#configVersion });
    this.#ctx.configs?.applied(this.service);
  }

  #bindBalancer(lb: LoadBalancerConfig | undefined): BoundBalancer {
    return lb === undefined ? this.#ctx.defaultBalancer : this.#ctx.balancers.bind(lb, "loadBalancer");
  }
}

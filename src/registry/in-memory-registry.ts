import { assertServiceName } from "../core/service-name.ts";
import { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { Endpoint, EndpointInput } from "../endpoint/endpoint.ts";
import type { Registry, RegistryListener, RegistryUpdate, RegistryWatch } from "./registry.ts";
import type { ServiceConfig } from "../config/service-config.ts";

/** Services and their endpoints, keyed by service name. */
export type ServiceMap = Readonly<Record<string, readonly (Endpoint | EndpointInput)[]>>;

const EMPTY_CONFIG: ServiceConfig = Object.freeze({});

/**
 * A registry held in memory that tells its watchers synchronously of each change. The base of
 * `StaticRegistry` and of `MockRegistry`. @internal
 */
export class InMemoryRegistry implements Registry {
  readonly #endpoints = new Map<string, EndpointSet>();
  readonly #configs = new Map<string, ServiceConfig>();
  readonly #listeners = new Map<string, Set<RegistryListener>>();

  /**
   * @param services - initial endpoints by service
   * @param configs - initial config by service
   */
  constructor(services: ServiceMap = {}, configs: Readonly<Record<string, ServiceConfig>> = {}) {
    for (const [service, endpoints] of Object.entries(services)) this.putEndpoints(service, endpoints);
    for (const [service, config] of Object.entries(configs)) this.putConfig(service, config);
  }

  /**
   * Starts watching a service: the listener hears the current endpoints (or that the service is
   * missing) and config at once, then every change.
   *
   * @param service - a valid service name
   * @param listener - receives updates, synchronously
   */
  watch(service: string, listener: RegistryListener): RegistryWatch {
    assertServiceName(service);
    let listeners = this.#listeners.get(service);
    if (listeners === undefined) this.#listeners.set(service, (listeners = new Set()));
    listeners.add(listener);
    const endpoints = this.#endpoints.get(service);
    listener(endpoints === undefined ? this.#missing() : { type: "endpoints", endpoints });
    listener({ type: "config", config: this.#configs.get(service) ?? EMPTY_CONFIG });
    return {
      close: () => {
        listeners.delete(listener);
        // No empty set left per name watched once: names may come from request data.
        if (listeners.size === 0 && this.#listeners.get(service) === listeners) this.#listeners.delete(service);
      },
    };
  }

  /**
   * The number of open watches on a service.
   *
   * @param service - a service name
   */
  watchCount(service: string): number {
    return this.#listeners.get(service)?.size ?? 0;
  }

  /**
   * The current endpoint set of a service, or undefined when the service is unknown.
   *
   * @param service - a service name
   */
  endpoints(service: string): EndpointSet | undefined {
    return this.#endpoints.get(service);
  }

  /**
   * The config last given for a service, or undefined.
   *
   * @param service - a service name
   */
  config(service: string): ServiceConfig | undefined {
    return this.#configs.get(service);
  }

  /** Replaces a service's endpoints; validates everything before anything changes. @internal */
  protected putEndpoints(service: string, endpoints: Iterable<Endpoint | EndpointInput>): EndpointSet {
    const set = EndpointSet.of(assertServiceName(service), endpoints);
    this.#endpoints.set(service, set);
    this.emit(service, { type: "endpoints", endpoints: set });
    return set;
  }

  /** Forgets a service: watchers are told it is missing. @internal */
  protected deleteService(service: string): void {
    this.#endpoints.delete(service);
    this.emit(service, this.#missing());
  }

  /** A "missing" message, with the services this registry does know (for close matches). */
  #missing(): RegistryUpdate {
    return { type: "missing", services: [...this.#endpoints.keys()] };
  }

  /** Replaces a service's config. @internal */
  protected putConfig(service: string, config: ServiceConfig): void {
    const frozen = Object.freeze({ ...config });
    this.#configs.set(assertServiceName(service), frozen);
    this.emit(service, { type: "config", config: frozen });
  }

  /** Sends an update to every watcher of a service. @internal */
  protected emit(service: string, update: RegistryUpdate): void {
    const listeners = this.#listeners.get(service);
    if (listeners === undefined) return;
    for (const listener of [...listeners]) listener(update);
  }
}

import { MeshError } from "../core/errors.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import { withHealth, type Endpoint, type EndpointInput, type HealthStatus } from "../endpoint/endpoint.ts";
import { InMemoryRegistry, type ServiceMap } from "../registry/in-memory-registry.ts";
import type { Registration, ServiceRegistration } from "../registry/registration.ts";
import type { ServiceConfig } from "../config/service-config.ts";
import { decodeConsulEntry, type ConsulEntryKind } from "../config/decode-consul.ts";

/** The fields of a ServiceConfig each kind of entry sets. */
const KIND_FIELDS: Readonly<Record<ConsulEntryKind, readonly (keyof ServiceConfig)[]>> = {
  "service-router": ["router"],
  "service-splitter": ["splitter"],
  "service-resolver": ["resolver", "loadBalancer"],
  "service-defaults": ["defaults"],
};

/** A config without the fields an entry kind sets. */
function without(config: ServiceConfig | undefined, kind: ConsulEntryKind): ServiceConfig {
  const fields: readonly string[] = KIND_FIELDS[kind];
  return Object.fromEntries(Object.entries(config ?? {}).filter(([key]) => !fields.includes(key)));
}

/**
 * An in-memory registry driven by tests. Every change reaches the mesh synchronously, so the next
 * request sees it.
 *
 * @example
 * ```ts
 * const registry = new MockRegistry();
 * registry.setEndpoints("orders", [{ address: "127.0.0.1", port: 8081 }, { address: "127.0.0.1", port: 8082 }]);
 * const mesh = createMesh({ registry });
 * registry.setHealth("orders", "127.0.0.1:8081", "critical"); // the next request goes to 8082
 * ```
 */
export class MockRegistry extends InMemoryRegistry {
  /**
   * @param services - initial endpoints by service
   * @param configs - initial config by service
   */
  constructor(services: ServiceMap = {}, configs: Readonly<Record<string, ServiceConfig>> = {}) {
    super(services, configs);
  }

  /**
   * Replaces all endpoints of a service (and makes the service known). Inputs are validated first; on a
   * bad one nothing changes.
   *
   * @param service - the service name
   * @param endpoints - every endpoint of the service; `[]` makes it *known empty*
   * @returns the new endpoint set
   * @throws MeshError `ERR_INVALID_ENDPOINT` or `ERR_INVALID_SERVICE_NAME`
   */
  setEndpoints(service: string, endpoints: Iterable<Endpoint | EndpointInput>): EndpointSet {
    return this.putEndpoints(service, endpoints);
  }

  /**
   * Adds one endpoint to a service, or replaces the one with the same id.
   *
   * @param service - the service name
   * @param endpoint - the endpoint
   */
  addEndpoint(service: string, endpoint: Endpoint | EndpointInput): EndpointSet {
    const current = this.endpoints(service)?.all ?? [];
    const id = endpoint.id ?? `${endpoint.address}:${endpoint.port}`;
    return this.putEndpoints(service, [...current.filter((e) => e.id !== id), endpoint]);
  }

  /**
   * Changes the health of one endpoint (its weight follows: `weights.warning` when warning, none when
   * critical).
   *
   * @param service - the service name
   * @param id - the endpoint id (`address:port` unless one was given)
   * @param health - the new health
   * @throws MeshError `ERR_INVALID_ENDPOINT` when there is no such endpoint
   */
  setHealth(service: string, id: string, health: HealthStatus): EndpointSet {
    const endpoint = this.#find(service, id);
    const all = this.endpoints(service)?.all ?? [];
    return this.putEndpoints(service, all.map((e) => (e === endpoint ? withHealth(e, health) : e)));
  }

  /**
   * Removes one endpoint from a service.
   *
   * @param service - the service name
   * @param id - the endpoint id
   * @throws MeshError `ERR_INVALID_ENDPOINT` when there is no such endpoint
   */
  removeEndpoint(service: string, id: string): EndpointSet {
    const endpoint = this.#find(service, id);
    return this.putEndpoints(service, (this.endpoints(service)?.all ?? []).filter((e) => e !== endpoint));
  }

  /**
   * Forgets a service entirely: it becomes *unknown* (`ERR_UNKNOWN_SERVICE`), not empty.
   *
   * @param service - the service name
   */
  removeService(service: string): void {
    this.deleteService(service);
  }

  /**
   * Replaces a service's configuration. The mesh validates it: an invalid config is refused with a
   * `config_rejected` event and the previous one keeps serving.
   *
   * @param service - the service name
   * @param config - the whole config; `{}` for defaults
   */
  setConfig(service: string, config: ServiceConfig): void {
    this.putConfig(service, config);
  }

  /**
   * Applies Consul config entries (`service-router`, `service-splitter`, `service-resolver`,
   * `service-defaults`) as `consul config write` would: each replaces its kind's part of its service's
   * config. So tests can use the very JSON applied to Consul. Every entry is decoded first; if one is
   * invalid, nothing changes. Entries of namespaces other than `default` are left out.
   *
   * @param entries - one entry's JSON, or several
   * @throws MeshError `ERR_INVALID_CONFIG` naming the entry (`details.entry`) and Consul field (`details.field`)
   */
  applyConsulEntries(entries: unknown): void {
    const decoded = (Array.isArray(entries) ? entries : [entries]).map((e) => decodeConsulEntry(e));
    for (const { kind, name, namespace, config } of decoded) {
      // Like decodeConsulEntries: an entry of another namespace configures another service.
      if (namespace === "default") this.putConfig(name, { ...without(this.config(name), kind), ...config });
    }
  }

  /**
   * Deletes a Consul config entry's part of a service's config, as `consul config delete` would.
   *
   * @param kind - the entry's kind
   * @param name - the service
   */
  deleteConsulEntry(kind: ConsulEntryKind, name: string): void {
    this.putConfig(name, without(this.config(name), kind));
  }

  /**
   * Registers an instance, as `ConsulRegistry.register` does against Consul: it is added to the
   * service's endpoints (address 127.0.0.1 unless given) until deregistered. Checks are not run: the
   * instance is passing.
   *
   * @param registration - the instance
   */
  register(registration: ServiceRegistration): Promise<Registration> {
    const { name, port } = registration;
    const id = registration.id ?? `${name}-${registration.address ?? "127.0.0.1"}-${port}`;
    try {
      this.addEndpoint(name, {
        id,
        address: registration.address ?? "127.0.0.1",
        port,
        tags: registration.tags ?? [],
        meta: registration.meta ?? {},
        ...(registration.weights === undefined ? {} : { weights: registration.weights }),
        ...(registration.connectNative === true ? { tls: true } : {}),
      });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    let done = false;
    return Promise.resolve({
      id,
      deregister: () => {
        if (!done && this.endpoints(name)?.get(id) !== undefined) this.removeEndpoint(name, id);
        done = true;
        return Promise.resolve();
      },
    });
  }

  /**
   * Reports a registry failure for a service, as a real registry does when its backend is unreachable.
   * Watchers keep their last good state.
   *
   * @param service - the service name
   * @param error - what failed
   */
  fail(service: string, error: Error): void {
    this.emit(service, { type: "error", error });
  }

  #find(service: string, id: string): Endpoint {
    const endpoint = this.endpoints(service)?.get(id);
    if (endpoint === undefined) {
      throw new MeshError("ERR_INVALID_ENDPOINT", `Service '${service}' has no endpoint with id '${id}'.`, {
        details: { service, field: "id" },
      });
    }
    return endpoint;
  }
}

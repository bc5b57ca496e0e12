import type { ServiceConfig } from "../config/service-config.ts";
import { InMemoryRegistry, type ServiceMap } from "./in-memory-registry.ts";

/**
 * A fixed list of services and endpoints, for small deployments, scripts and local runs. Services not in
 * the list are unknown (`ERR_UNKNOWN_SERVICE`).
 *
 * @example
 * ```ts
 * const registry = new StaticRegistry({ orders: [{ address: "10.0.0.5", port: 8080 }] });
 * const mesh = createMesh({ registry });
 * ```
 */
export class StaticRegistry extends InMemoryRegistry {
  /**
   * @param services - endpoints by service name
   * @param configs - optional config by service name
   * @throws MeshError `ERR_INVALID_ENDPOINT` or `ERR_INVALID_SERVICE_NAME` on bad input
   */
  constructor(services: ServiceMap, configs: Readonly<Record<string, ServiceConfig>> = {}) {
    super(services, configs);
  }
}

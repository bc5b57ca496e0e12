import type { ConnectAuthority } from "../security/consul-authorizer.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { Registration, ServiceRegistration } from "./registration.ts";
import type { ServiceConfig } from "../config/service-config.ts";

/**
 * One message from a registry about one service. Each carries whole state (a full endpoint set, a full
 * config), never a delta, so a listener that missed nothing needs nothing else.
 */
export type RegistryUpdate = EndpointsUpdate | MissingUpdate | ConfigUpdate | ErrorUpdate;

/** The service exists; these are all its endpoints (possibly none: *known empty*). */
export interface EndpointsUpdate {
  /** Discriminator. */
  readonly type: "endpoints";
  /** Every endpoint of the service. */
  readonly endpoints: EndpointSet;
}

/** The registry knows no service of this name (`ERR_UNKNOWN_SERVICE` for requests). */
export interface MissingUpdate {
  /** Discriminator. */
  readonly type: "missing";
  /** The services the registry does know, if it can tell: the error names close matches among them (a typo). */
  readonly services?: readonly string[];
}

/** The service's configuration, whole. An empty object means defaults. */
export interface ConfigUpdate {
  /** Discriminator. */
  readonly type: "config";
  /** The whole config. */
  readonly config: ServiceConfig;
}

/** The registry could not refresh; the last good state stays in force. */
export interface ErrorUpdate {
  /** Discriminator. */
  readonly type: "error";
  /** What failed. */
  readonly error: Error;
}

/** Receives the updates for one watched service. Called synchronously by the registry. */
export type RegistryListener = (update: RegistryUpdate) => void;

/** A running watch; close it to stop updates. */
export interface RegistryWatch {
  /** Stops the watch. Idempotent. */
  close(): void;
  /**
   * How long the registry has been unable to refresh this service, in ms (since its first failure after
   * its last good answer); undefined while it answers. Optional: for a registry that does not say, the mesh
   * counts from its first `error` update to its next good one, which suits registries that send an
   * update on every answer, not ones that send only changes (and warnings as errors), as Consul does.
   */
  failingForMs?(): number | undefined;
}

/**
 * A source of endpoints and configuration. Implementations: `StaticRegistry`, `MockRegistry`
 * (`proxyless/testing`), and your own.
 *
 * Until the first update for a service arrives, the mesh treats the service as *not yet known* and lets
 * requests wait briefly; after it, requests are served from the last update.
 */
export interface Registry {
  /**
   * Starts watching a service. The registry sends what it knows as soon as it knows it (it may do so
   * before `watch` returns), then every change.
   *
   * @param service - a valid service name
   * @param listener - receives updates
   */
  watch(service: string, listener: RegistryListener): RegistryWatch;
  /**
   * Registers this process as an instance of a service, for registries that support it. Prefer
   * `mesh.register()`, which deregisters on `mesh.close()`.
   *
   * @param registration - the instance
   */
  register?(registration: ServiceRegistration): Promise<Registration>;
  /**
   * Authorization of incoming mTLS callers by the registry's intentions (Consul Connect), for
   * registries that have them: `mesh.inbound({ authorize: "consul" })` uses it.
   */
  connectAuthority?(): ConnectAuthority;
}

import type { EndpointWeights } from "../endpoint/endpoint.ts";

/** How the registry checks an instance's health. Give exactly one of `http`, `tcp`, `grpc` or `ttl`. */
export interface CheckDefinition {
  /** A URL the agent GETs: 2xx is passing, 429 warning, anything else critical. */
  readonly http?: string;
  /** `host:port` the agent connects to. */
  readonly tcp?: string;
  /** `host:port` (or `host:port/service`) of a gRPC health service. */
  readonly grpc?: string;
  /** Time to live, in ms: the mesh reports the instance passing every third of it. */
  readonly ttl?: number;
  /** How often the agent runs an `http`, `tcp` or `grpc` check, in ms. Default 10000. */
  readonly interval?: number;
  /** Time allowed for one check, in ms. Consul's default is 10000. */
  readonly timeout?: number;
  /** Remove the instance after it has been critical this long, in ms (at least 60000). */
  readonly deregisterCriticalServiceAfter?: number;
}

/** This process as an instance of a service, for {@link Registry.register}. */
export interface ServiceRegistration {
  /** The service name, a DNS label. */
  readonly name: string;
  /** Unique on the agent. Default `name-address-port`. */
  readonly id?: string;
  /** The address others reach this instance on. Default: the agent's node address. */
  readonly address?: string;
  /** The port others reach this instance on. */
  readonly port: number;
  /** Tags (Consul `Tags`). */
  readonly tags?: readonly string[];
  /** Metadata (Consul `Meta`). */
  readonly meta?: Readonly<Record<string, string>>;
  /** Balancing weights by health (Consul `Weights`). Default `{ passing: 1, warning: 1 }`. */
  readonly weights?: EndpointWeights;
  /** The health check. Without one, the instance is passing as long as its node is. */
  readonly check?: CheckDefinition;
  /** Registers the instance as Consul Connect native (it serves mTLS itself, with `mesh.inbound()`), so meshes with mTLS call it. */
  readonly connectNative?: boolean;
  /** Deregister on SIGTERM and SIGINT, then let the signal do what it would have done. Default false. */
  readonly deregisterOnSignals?: boolean;
}

/** A registration in force; deregister it to take the instance out. */
export interface Registration {
  /** The instance ID the registry knows it by. */
  readonly id: string;
  /** Removes the instance from the registry and stops its heartbeats. Idempotent. */
  deregister(): Promise<void>;
}

/** A named part of a service's instances (Consul's `Subsets` value). */
export interface SubsetConfig {
  /** A Consul filter expression on `Service.Tags`, `Service.Meta.<key>`, ...; empty means every instance. */
  readonly filter?: string;
  /** Only passing instances (warning ones are left out). */
  readonly onlyPassing?: boolean;
}

/**
 * A place traffic can be sent instead: a service, a subset, a datacenter. A target in a datacenter,
 * namespace or peer the registry cannot reach has no endpoints.
 */
export interface TargetRef {
  /** The service; default the resolved service. */
  readonly service?: string;
  /** A subset of that service. */
  readonly subset?: string;
  /** A datacenter, where the registry supports more than one. */
  readonly datacenter?: string;
  /** A namespace (Consul Enterprise), where the registry supports them. */
  readonly namespace?: string;
  /** A cluster peer, where the registry supports peering. */
  readonly peer?: string;
}

/** Where traffic goes, in order, when a subset has no healthy instance (Consul's `Failover` value). */
export interface FailoverConfig {
  /** The targets, tried in order. */
  readonly targets: readonly TargetRef[];
}

/** How a service's name resolves to instances (Consul's `service-resolver`, less `LoadBalancer`, which is `loadBalancer`). */
export interface ResolverConfig {
  /** Named subsets. Names are DNS labels. */
  readonly subsets?: Readonly<Record<string, SubsetConfig>>;
  /** The subset used when a request names none. */
  readonly defaultSubset?: string;
  /** Send all traffic elsewhere; nothing else in the resolver applies then. */
  readonly redirect?: TargetRef;
  /** Failover by subset name, or `*` for any. */
  readonly failover?: Readonly<Record<string, FailoverConfig>>;
  /** Time allowed to connect, in ms. */
  readonly connectTimeoutMs?: number;
  /** Time allowed for a request, in ms. */
  readonly requestTimeoutMs?: number;
}

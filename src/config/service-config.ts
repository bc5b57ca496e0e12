import type { LoadBalancerConfig } from "../balancer/load-balancer-config.ts";
import type { ServiceDefaultsConfig } from "./defaults-config.ts";
import type { ResolverConfig } from "./resolver-config.ts";
import type { RouterConfig } from "./route-config.ts";
import type { SplitterConfig } from "./split-config.ts";

/**
 * Central configuration for one upstream service, as a registry delivers it: Consul's
 * `service-router`, `service-splitter`, `service-resolver` and `service-defaults` entries for the
 * service, in proxyless's names (`decodeConsulEntries` turns Consul's JSON into this). Every field is
 * optional; what is left out falls back to the mesh options.
 */
export interface ServiceConfig {
  /** The balancer for this service (the resolver's `LoadBalancer`); overrides the mesh's `loadBalancer` option. */
  readonly loadBalancer?: LoadBalancerConfig;
  /** Routes for requests to this service (`service-router`). */
  readonly router?: RouterConfig;
  /** Weighted splits of this service's traffic (`service-splitter`). */
  readonly splitter?: SplitterConfig;
  /** Subsets, redirect and failover (`service-resolver`). */
  readonly resolver?: ResolverConfig;
  /** The service's protocol and how it calls its upstreams (`service-defaults`). */
  readonly defaults?: ServiceDefaultsConfig;
}

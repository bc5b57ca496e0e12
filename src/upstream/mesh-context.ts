import type { EventEmitter } from "node:events";
import type { BalancerRegistry, BoundBalancer } from "../balancer/balancer-registry.ts";
import type { BalancerEnv } from "../balancer/picker.ts";
import type { ServiceDefaultsConfig } from "../config/defaults-config.ts";
import type { KnownConfigs } from "../config/discovery-chain-check.ts";
import type { ResilienceOptions } from "../config/resilience-options.ts";
import type { Clock } from "../core/clock.ts";
import type { Registry } from "../registry/registry.ts";
import type { MeshEvents } from "../telemetry/mesh-events.ts";
import type { MeshTelemetry } from "../telemetry/mesh-telemetry.ts";
import type { HandleFactory, PoolHandle } from "./pool-handle.ts";
import type { SlowStart } from "./slow-start.ts";

/**
 * What every upstream state of one mesh shares; the mesh (the assembler) makes one and hands it to
 * each state. `H` is the transport's endpoint handle. @internal
 */
export interface MeshContext<H extends PoolHandle> {
  /** Makes the handle of an endpoint that joins a pool (the transport's, with mTLS when the mesh has an identity). */
  readonly createHandle: HandleFactory<H>;
  /** Where the states watch their services. */
  readonly registry: Registry;
  /** The balancer plugins by name, for a service's `loadBalancer` config. */
  readonly balancers: BalancerRegistry;
  /** The balancer of services whose config names none. */
  readonly defaultBalancer: BoundBalancer;
  /** The mesh's clock and random source. */
  readonly env: BalancerEnv & { readonly clock: Clock };
  /** The headers timeout the pools enforce themselves, in ms. */
  readonly poolHeadersTimeout: number;
  /** How long a wait for the registry's first answer about a service may last, in ms. */
  readonly discoveryTimeout: number;
  /** The mesh's event emitter. */
  readonly events: EventEmitter<MeshEvents>;
  /** Whether the mesh's close() or destroy() has begun: no call may start from then on. */
  readonly closing?: () => boolean;
  /** Told when the registry says a service is missing (the mesh forgets services only request data named). */
  readonly missing?: (service: string) => void;
  /**
   * The configs applied to the services the mesh watches, for the discovery-chain checks that span
   * services; `applied` is told after each service's config is applied (configs refused for a chain
   * problem are then tried again). Left out, each config is checked on its own.
   */
  readonly configs?: KnownConfigs & { applied(service: string): void; waiting(service: string): void };
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

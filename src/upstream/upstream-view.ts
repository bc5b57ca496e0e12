import type { EventEmitter } from "node:events";
import type { RequestHasher } from "../balancer/hash-policy.ts";
import type { BalancerEnv, Picker } from "../balancer/picker.ts";
import type { CallPolicy } from "../config/resilience-options.ts";
import type { RouteDestination } from "../config/route-config.ts";
import type { ServiceConfig } from "../config/service-config.ts";
import type { ServiceRouting } from "../config/service-routing.ts";
import type { Clock } from "../core/clock.ts";
import type { MeshError } from "../core/errors.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { CallLabel } from "../telemetry/call-telemetry.ts";
import type { MeshEvents } from "../telemetry/mesh-events.ts";
import type { MeshTelemetry } from "../telemetry/mesh-telemetry.ts";
import type { DiscoveryWait } from "./discovery-wait.ts";
import type { PickedEndpoints } from "./endpoint-pool.ts";
import type { PoolHandle } from "./pool-handle.ts";
import type { UpstreamGuard } from "./upstream-guard.ts";

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
 * One upstream service as the layers above it see it: what the registry said, the picker over the
 * ready endpoints (swapped whole on every change: read it once per request), the compiled routing,
 * the guard and call policies, and the discovery wait. Routing, the engine, the transports, gRPC and
 * telemetry read an upstream only through this view; the mesh alone holds the state behind it and
 * drives its lifecycle (start, forget, close, destroy).
 *
 * `H` is the transport's endpoint handle (the pool hands out the handles it was given).
 * @internal
 */
export interface UpstreamView<H extends PoolHandle = PoolHandle> {
  /** The service's name. */
  readonly service: string;
  /** The call label of calls that no route sent here. */
  readonly plainLabel: CallLabel;
  /** Where discovery stands: waiting for the registry's first answer, known, missing from it, or closed. */
  readonly status: Status;
  /** Whether the registry has answered for the service (or the state is closed): a wait would not help. */
  readonly settled: boolean;
  /** Whether calls are refused: the mesh's close() or destroy() has begun, or this upstream closed. */
  readonly closing: boolean;
  /** How the registry is doing for this service. */
  readonly registryStatus: RegistryStatus;
  /** The current endpoint set, if the registry has answered. */
  readonly endpoints: EndpointSet | undefined;
  /** The config in force (the last one that validated); `{}` until one arrives. */
  readonly config: ServiceConfig;
  /** The routing compiled from the config in force. */
  readonly routing: ServiceRouting;
  /** The picker over ready endpoints; undefined when none can take traffic or nothing is known yet. */
  readonly picker: Picker<H> | undefined;
  /** The handles the current picker was built over. */
  readonly targets: readonly H[];
  /** Every endpoint's handle, ready or not. */
  readonly handles: Iterable<H>;
  /** Whether too few endpoints are ready and traffic is spread over all of them. */
  readonly panic: boolean;
  /** The balancer policy in force (its plugin's name). */
  readonly policy: string;
  /** How the balancer in force hashes requests, if it does. */
  readonly hasher: RequestHasher | undefined;
  /** Open connections to this service's endpoints. */
  readonly openConnections: number;
  /** The number of endpoint handles whose pool has been created. */
  readonly openPools: number;
  /**
   * The budget, outlier detection, breaker and limits of this upstream; rebuilt when the calling
   * service's Consul service-defaults change.
   */
  readonly guard: UpstreamGuard;
  /** The mesh's telemetry. */
  readonly telemetry: MeshTelemetry;
  /** The mesh's event emitter. */
  readonly events: EventEmitter<MeshEvents>;
  /** The mesh's clock and random source. */
  readonly env: BalancerEnv & { readonly clock: Clock };
  /** The headers timeout the pools enforce themselves, in ms. */
  readonly poolHeadersTimeout: number;
  /** The headers timeout the user set in the mesh's `pool` options, if any: no call waits longer. */
  readonly userHeadersTimeout: number | undefined;
  /** Aborted when the upstream closes; mirrored copies to this service carry it. */
  readonly shadowSignal: AbortSignal;
  /** Mirrored copies in flight to this service: the one field callers write (they count their copies in and out). */
  mirrorsInFlight: number;
  /**
   * The policy of a call to this service (timeouts, retries), for the route destination that sent it
   * here, if any. Cached per config.
   */
  policyFor(destination: RouteDestination | undefined): CallPolicy;
  /**
   * The picker over a resolver subset's ready endpoints (those that match its filter, and pass when it
   * wants only passing ones), with the endpoints it balances over. A subset does not enter panic: an
   * empty subset fails over instead.
   *
   * @param name - a subset the resolver defines
   */
  subsetPicker(name: string): PickedEndpoints<H>;
  /**
   * How long a wait for the registry may last, from now: the discovery timeout; for a call (`call`),
   * its own deadline when that comes first (the timeout of calls to this upstream, or an incoming
   * deadline).
   */
  discoveryWait(call: boolean): DiscoveryWait;
  /**
   * Waits until the registry has answered for the service, or until `wait.until` (by default the
   * discovery timeout from now), or until `signal` aborts. A call waits on it, so the wait keeps the
   * process alive. Never throws.
   */
  settle(wait?: DiscoveryWait, signal?: AbortSignal): Promise<void>;
  /**
   * The error for a request that finds no picker.
   *
   * @param wait - the wait for the registry that the request gave up, if any: when the call's own
   *   deadline ended it, the error is `ERR_TIMEOUT`
   */
  unavailableError(wait?: DiscoveryWait): MeshError;
}

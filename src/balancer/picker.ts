import type { Clock } from "../core/clock.ts";
import type { Random } from "../core/random.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";
import type { EndpointLoad } from "./load.ts";
import type { RequestHasher } from "./hash-policy.ts";

/** Anything a picker can choose: an endpoint handle in the HTTP transport, a simulated backend in tests. */
export interface PickTarget {
  /** The endpoint this target sends to. */
  readonly endpoint: Endpoint;
  /**
   * The weight to balance by, read when a picker is built: the endpoint's weight for its health, reduced
   * while it is in slow start. Always > 0.
   */
  readonly weight: number;
  /** Requests in flight and the round-trip estimate, kept by the transport; pickers only read it. */
  readonly load: EndpointLoad;
}

/** Facts about the request that a picker may use. */
export interface PickContext {
  /** A 32-bit hash of the request's affinity key, for hash-based policies; undefined when it has none. */
  readonly hash: number | undefined;
}

/**
 * An immutable choice over a fixed, non-empty list of targets. A new picker replaces the old one whole
 * whenever the list or the config changes; a pick never sees a half-applied update. Pickers may keep
 * private counters (a round-robin cursor) but never change the list.
 */
export interface Picker<T extends PickTarget> {
  /**
   * Chooses one target. O(1) or O(log n); no allocation.
   *
   * @param context - facts about the request
   */
  pick(context: PickContext): T;
}

/** What a balancer may use besides the targets: injected time and randomness. */
export interface BalancerEnv {
  /** The mesh's clock. */
  readonly clock: Clock;
  /** The mesh's random source; seed it in tests. */
  readonly random: Random;
}

/**
 * A load-balancing policy, registered by name. The config is parsed once, when a mesh or a service
 * config selects the policy; pickers are built from it each time the endpoints change.
 *
 * @typeParam C - the parsed config type
 */
export interface BalancerPlugin<C = unknown> {
  /** The name used in config, such as `round_robin`. Lower-case letters, digits and `_`. */
  readonly name: string;
  /**
   * True for policies that map keys to endpoints (`ring_hash`, `maglev`): slow start does not change
   * their weights, since that would move keys at every step of the ramp (Envoy does the same).
   */
  readonly consistentHashing?: boolean;
  /**
   * Validates raw config (from code or a registry) and returns the typed config.
   *
   * @param raw - the user's config, `undefined` when none was given
   * @param field - the config path of `raw`, for error messages
   * @throws MeshError `ERR_INVALID_CONFIG` naming the field at fault
   */
  parseConfig(raw: unknown, field: string): C;
  /**
   * Builds a picker over a non-empty list of targets.
   *
   * @param targets - the ready targets, at least one
   * @param config - the parsed config
   * @param env - clock and random source
   */
  createPicker<T extends PickTarget>(targets: readonly T[], config: C, env: BalancerEnv): Picker<T>;
  /**
   * For hash-based policies: how to compute a request's hash (from a header, cookie or query parameter),
   * compiled once from the config. Omit it, or return undefined, when the policy does not hash.
   *
   * @param config - the parsed config
   */
  requestHasher?(config: C): RequestHasher | undefined;
}

import { MeshError, invalidConfig } from "../core/errors.ts";
import { describe } from "../core/validate.ts";
import type { LoadBalancerConfig } from "./load-balancer-config.ts";
import type { BalancerEnv, BalancerPlugin, PickTarget, Picker } from "./picker.ts";
import type { RequestHasher } from "./hash-policy.ts";
import { leastRequest } from "./least-request.ts";
import { maglev } from "./maglev.ts";
import { peakEwma } from "./peak-ewma.ts";
import { random } from "./random.ts";
import { ringHash } from "./ring-hash.ts";
import { roundRobin } from "./round-robin.ts";
import { weightedRoundRobin } from "./weighted-round-robin.ts";

/** A balancer with its config parsed: ready to build pickers. */
export interface BoundBalancer {
  /** The policy name. */
  readonly policy: string;
  /**
   * Builds a picker over a non-empty list of targets.
   *
   * @param targets - at least one target
   * @param env - clock and random source
   */
  createPicker<T extends PickTarget>(targets: readonly T[], env: BalancerEnv): Picker<T>;
  /** How to hash a request, for hash-based policies; undefined otherwise. */
  readonly hasher: RequestHasher | undefined;
  /** Whether the policy maps keys to endpoints (no slow start). */
  readonly consistentHashing: boolean;
}

const NAME = /^[a-z][a-z0-9_]*$/;

/** The balancers shipped with proxyless. */
export const builtinBalancers: readonly BalancerPlugin[] = Object.freeze([
  roundRobin,
  weightedRoundRobin,
  leastRequest,
  peakEwma,
  random,
  ringHash,
  maglev,
] as BalancerPlugin[]);

/**
 * The balancer plugins one mesh knows, by name. Each mesh has its own; nothing is global.
 * @internal
 */
export class BalancerRegistry {
  readonly #plugins = new Map<string, BalancerPlugin>();

  /** @param plugins - plugins to register, built-ins first then the user's */
  constructor(plugins: Iterable<BalancerPlugin>) {
    for (const plugin of plugins) this.register(plugin);
  }

  /** Adds a plugin; a name can be registered once. */
  register(plugin: BalancerPlugin): void {
    if (plugin === null || typeof plugin !== "object" || typeof plugin.name !== "string" || !NAME.test(plugin.name)) {
      throw invalidConfig("balancers", `a balancer plugin needs a name of lower-case letters, digits and '_'`);
    }
    if (typeof plugin.parseConfig !== "function" || typeof plugin.createPicker !== "function") {
      throw invalidConfig("balancers", `balancer '${plugin.name}' must have parseConfig() and createPicker()`);
    }
    if (this.#plugins.has(plugin.name)) {
      throw invalidConfig("balancers", `a balancer named '${plugin.name}' is already registered`);
    }
    this.#plugins.set(plugin.name, plugin);
  }

  /** The registered names. */
  names(): string[] {
    return [...this.#plugins.keys()];
  }

  /**
   * Resolves and validates a load-balancer config.
   *
   * @param lb - policy name and raw config
   * @param field - the config path of `lb`, for error messages
   * @throws MeshError `ERR_INVALID_CONFIG` for an unknown policy or a bad config
   */
  bind(lb: LoadBalancerConfig, field: string): BoundBalancer {
    if (lb === null || typeof lb !== "object") throw invalidConfig(field, `expected { policy, config? }, got ${describe(lb)}`);
    const plugin = typeof lb.policy === "string" ? this.#plugins.get(lb.policy) : undefined;
    if (plugin === undefined) {
      throw invalidConfig(
        `${field}.policy`,
        `unknown balancer ${describe(lb.policy)}; registered: ${this.names().join(", ")}`,
      );
    }
    let config: unknown;
    try {
      config = plugin.parseConfig(lb.config, `${field}.config`);
    } catch (err) {
      if (err instanceof MeshError) throw err;
      const reason = err instanceof Error ? err.message : describe(err);
      throw invalidConfig(`${field}.config`, `balancer '${plugin.name}' refused its config: ${reason}`, { cause: err });
    }
    return {
      policy: plugin.name,
      createPicker: (targets, env) => plugin.createPicker(targets, config, env),
      hasher: plugin.requestHasher?.(config),
      consistentHashing: plugin.consistentHashing === true,
    };
  }
}

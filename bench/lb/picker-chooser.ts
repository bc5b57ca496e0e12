import type { PickContext } from "proxyless";
import { builtinBalancers } from "../../src/balancer/balancer-registry.ts";
import type { Chooser, SimState } from "./sim-state.ts";

/** Policies that route by the request's hash: they get a random key per request. */
const HASHED: ReadonlySet<string> = new Set(["ring_hash", "maglev"]);
const NO_HASH: PickContext = { hash: undefined };

/** One row of the simulation: a built-in policy with a config. */
export interface PolicyRun {
  /** The row's name in tables and in the summary keys. */
  readonly label: string;
  /** The built-in balancer. */
  readonly policy: string;
  /** Raw config for `parseConfig`; undefined for the defaults. */
  readonly config?: unknown;
}

/**
 * Every built-in balancer with its default config, in registry order, then the variants worth comparing:
 * `least_request` and `peak_ewma` with three choices instead of two.
 */
export function policyRuns(): PolicyRun[] {
  return [
    ...builtinBalancers.map((plugin) => ({ label: plugin.name, policy: plugin.name })),
    { label: "least_request_c3", policy: "least_request", config: { choiceCount: 3 } },
    { label: "peak_ewma_c3", policy: "peak_ewma", config: { choiceCount: 3 } },
  ];
}

/**
 * A chooser backed by a real built-in picker: the plugin's `parseConfig` then `createPicker` over the
 * simulation's targets, with its virtual clock and seeded random source.
 *
 * @param policy - a built-in balancer name
 * @param sim - the simulation state
 * @param hashes - the workload's per-request keys
 * @param rawConfig - the raw config handed to `parseConfig`; undefined for the defaults
 * @throws Error for an unknown policy
 */
export function pickerChooser(policy: string, sim: SimState, hashes: Uint32Array, rawConfig?: unknown): Chooser {
  const plugin = builtinBalancers.find((p) => p.name === policy);
  if (plugin === undefined) throw new Error(`no built-in balancer named ${policy}`);
  const config = plugin.parseConfig(rawConfig, "config");
  const picker = plugin.createPicker(sim.targets, config, { clock: sim.clock, random: sim.random });
  if (HASHED.has(policy)) return { choose: (request) => picker.pick({ hash: hashes[request]! }).index };
  return { choose: () => picker.pick(NO_HASH).index };
}

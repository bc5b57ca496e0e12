import { MeshError } from "../core/errors.ts";
import { discoveryChainProblem, type ChainProblem, type ChainRule, type ConfigLookup } from "./discovery-chain.ts";
import type { ServiceConfig } from "./service-config.ts";

/** The configs a mesh has applied, for the checks that span services. @internal */
export interface KnownConfigs {
  /** The config applied to a service, or undefined while it has none (not watched, or not arrived yet). */
  readonly configOf: ConfigLookup;
  /** The services that have a config applied. */
  services(): Iterable<string>;
}

const HINTS: Readonly<Record<ChainRule, string>> = {
  protocol: "Every service a chain reaches must have the same protocol (service-defaults Protocol).",
  "advanced-routing": "A router or splitter needs the protocol http, http2 or grpc.",
  subset: "Define the subset in that service's resolver, or name one it defines.",
  "redirect-loop": "Break the loop of redirects.",
  "split-loop": "Break the loop of splits: a split to a service without a subset meets that service's splitter.",
};

/** The field of the applied config that the problem comes through, or the one its rule is about. */
function fieldOf(problem: ChainProblem, service: string, config: ServiceConfig, before: ServiceConfig | undefined): string {
  const own = problem.path.findLast((step) => step.service === service);
  if (own !== undefined) return own.field;
  switch (problem.rule) {
    case "protocol":
      return "defaults.protocol";
    case "advanced-routing":
      if (config.router !== undefined && before?.router === undefined) return "router";
      if (config.splitter !== undefined && before?.splitter === undefined) return "splitter";
      return "defaults.protocol";
    case "subset":
      return "resolver.subsets";
    case "redirect-loop":
      return "resolver.redirect";
    case "split-loop":
      return "splitter.splits";
  }
}

function chainError(problem: ChainProblem, service: string, config: ServiceConfig, before: ServiceConfig | undefined): MeshError {
  const field = fieldOf(problem, service, config, before);
  const through = problem.path.length === 0 ? "" : ` (through ${problem.path.map((s) => s.consul).join(" -> ")})`;
  const whose = problem.chain === service || problem.message.includes(`discovery chain "${problem.chain}"`) ? "" : ` in the discovery chain of "${problem.chain}"`;
  return new MeshError("ERR_INVALID_CONFIG", `Invalid configuration at '${field}': ${problem.message}${whose}${through}. ${HINTS[problem.rule]}`, {
    details: { service, field, chain: problem.chain, rule: problem.rule },
  });
}

/**
 * Checks a service's new config against the discovery chains it takes part in, as Consul checks a
 * config entry write against the chains it changes, and throws what Consul would refuse. The
 * service's own chain must compile with the new config. A service whose config was applied before
 * (a change, not its first config) must also leave every other known chain compiling that compiled
 * with its previous config: the config being applied is the one refused, as Consul refuses the write
 * that breaks a chain, never an entry already accepted. A service's first config is news rather than a
 * change, so other chains do not refuse it (they were accepted while it was unknown).
 *
 * @param service - the service the config is for
 * @param config - its new config, already validated on its own
 * @param known - the configs in force
 * @throws MeshError `ERR_INVALID_CONFIG` with Consul's message, `details.field` (the field of the new
 *   config the problem comes through), `details.chain` (whose chain fails) and `details.rule`
 * @internal
 */
export function checkDiscoveryChains(service: string, config: ServiceConfig, known: KnownConfigs): void {
  const before = known.configOf(service);
  const after: ConfigLookup = (s) => (s === service ? config : known.configOf(s));
  const own = discoveryChainProblem(service, after);
  if (own !== undefined) throw chainError(own, service, config, before);
  if (before === undefined) return;
  for (const other of known.services()) {
    if (other === service) continue;
    const problem = discoveryChainProblem(other, after);
    if (problem === undefined || discoveryChainProblem(other, known.configOf) !== undefined) continue;
    throw chainError(problem, service, config, before);
  }
}

/**
 * Whether configs refused one at a time compile together: each of them with the others applied, and
 * every other known chain that compiled before still compiling. Consul checks each write, and a
 * migration it accepted step by step (a router removed, two services' protocols changed, the router
 * written again) reaches a mesh as the net change only, whose parts each break the other's old chain.
 *
 * @param configs - the waiting configs, by service
 * @param known - the configs in force
 * @internal
 */
export function compileTogether(configs: ReadonlyMap<string, ServiceConfig>, known: KnownConfigs): boolean {
  const after: ConfigLookup = (s) => configs.get(s) ?? known.configOf(s);
  for (const service of configs.keys()) if (discoveryChainProblem(service, after) !== undefined) return false;
  for (const other of known.services()) {
    if (configs.has(other)) continue;
    if (discoveryChainProblem(other, after) !== undefined && discoveryChainProblem(other, known.configOf) === undefined) return false;
  }
  return true;
}

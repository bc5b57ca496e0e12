import type { TargetRef } from "./resolver-config.ts";
import type { ServiceConfig } from "./service-config.ts";

/**
 * The config the mesh holds for a service, or undefined when it holds none yet (the service is not
 * watched, or its config has not arrived): such a service is not judged. @internal
 */
export type ConfigLookup = (service: string) => ServiceConfig | undefined;

/** An entry field on the way from a chain's start to a problem. @internal */
export interface ChainStep {
  /** The service whose entry holds the field. */
  readonly service: string;
  /** The entry and field in Consul's words: `service-router "web" Routes[0].Destination`. */
  readonly consul: string;
  /** The same field in proxyless's config: `router.routes[0].destination`. */
  readonly field: string;
}

/** Which of Consul's chain rules failed. @internal */
export type ChainRule = "protocol" | "advanced-routing" | "subset" | "redirect-loop" | "split-loop";

/** Why Consul would refuse a discovery chain. @internal */
export interface ChainProblem {
  /** The service whose chain it is. */
  readonly chain: string;
  readonly rule: ChainRule;
  /** Consul's own message (`discovery chain "web" uses inconsistent protocols; ...`). */
  readonly message: string;
  /** The entry fields that lead from the chain's start to the problem, in order (empty at the start). */
  readonly path: readonly ChainStep[];
}

/** Protocols that permit routers and splitters (Consul's `IsProtocolHTTPLike`). */
const L7 = new Set(["http", "http2", "grpc"]);

/** A target as Consul's compiler holds it: a service, a subset, and where it lives. */
interface Target {
  readonly service: string;
  readonly subset: string | undefined;
  readonly datacenter: string | undefined;
  readonly namespace: string | undefined;
  readonly peer: string | undefined;
}

const plain = (service: string, subset?: string): Target => ({ service, subset, datacenter: undefined, namespace: undefined, peer: undefined });
const keyOf = (t: Target): string => `${t.service}/${t.subset ?? ""}/${t.datacenter ?? ""}/${t.namespace ?? ""}/${t.peer ?? ""}`;

function labelOf(t: Target): string {
  let label = t.subset === undefined ? t.service : `${t.service}/${t.subset}`;
  if (t.datacenter !== undefined) label += ` in datacenter ${t.datacenter}`;
  if (t.namespace !== undefined) label += ` in namespace ${t.namespace}`;
  if (t.peer !== undefined) label += ` of peer ${t.peer}`;
  return label;
}

/** Consul's `rewriteTarget`: a redirect or failover applied to a target. */
function rewrite(t: Target, ref: TargetRef): Target {
  const otherService = ref.service !== undefined && ref.service !== t.service;
  return {
    service: otherService ? (ref.service ?? t.service) : t.service,
    subset: ref.subset ?? (otherService ? undefined : t.subset),
    datacenter: ref.datacenter ?? t.datacenter,
    namespace: ref.namespace !== undefined || ref.peer !== undefined ? ref.namespace : t.namespace,
    peer: ref.peer,
  };
}

class Problem extends Error {
  readonly problem: ChainProblem;

  constructor(problem: ChainProblem) {
    super(problem.message);
    this.problem = problem;
  }
}

/**
 * One discovery chain compiled as Consul's `discoverychain.Compile` walks it, for its checks only:
 * the service's router (the only router consulted), the splitters a destination without a subset
 * meets, and the resolvers (redirects, default subset, subset existence, failover targets).
 */
class ChainWalk {
  readonly #name: string;
  readonly #lookup: ConfigLookup;
  #protocol: string | undefined;
  #advanced = false;
  /** Splitter nodes by service: the splitters each one's splits lead to. */
  readonly #splitters = new Map<string, string[]>();
  /** Targets already resolved (Consul's resolveNodes, by target). */
  readonly #resolved = new Set<string>();

  constructor(name: string, lookup: ConfigLookup) {
    this.#name = name;
    this.#lookup = lookup;
  }

  run(): void {
    const name = this.#name;
    const router = this.#lookup(name)?.router;
    const starts: string[] = [];
    if (router === undefined) {
      const first = this.#splitterOrResolver(name, []);
      if (first !== undefined) starts.push(first);
    } else {
      this.#advanced = true;
      this.#record(name, []);
      router.routes.forEach((route, i) => {
        const destination = route.destination;
        const step: ChainStep = { service: name, consul: `service-router "${name}" Routes[${i}].Destination`, field: `router.routes[${i}].destination` };
        const service = destination?.service ?? name;
        if (destination?.subset === undefined) {
          const next = this.#splitterOrResolver(service, [step]);
          if (next !== undefined) starts.push(next);
        } else {
          this.#resolve(plain(service, destination.subset), false, [step]);
        }
      });
      const fallback = this.#splitterOrResolver(name, []);
      if (fallback !== undefined) starts.push(fallback);
    }
    for (const start of starts) this.#findSplitLoop(start, []);
    if (this.#advanced && this.#protocol !== undefined && !L7.has(this.#protocol)) {
      this.#fail("advanced-routing", `discovery chain "${name}" uses a protocol "${this.#protocol}" that does not permit advanced routing or splitting behavior`, []);
    }
  }

  #fail(rule: ChainRule, message: string, path: readonly ChainStep[]): never {
    throw new Problem({ chain: this.#name, rule, message, path });
  }

  /** Consul's recordServiceProtocol, for the protocols the mesh knows (a service-defaults `Protocol`). */
  #record(service: string, path: readonly ChainStep[]): void {
    const protocol = this.#lookup(service)?.defaults?.protocol;
    if (protocol === undefined) return;
    if (this.#protocol === undefined) this.#protocol = protocol;
    else if (this.#protocol !== protocol) {
      this.#fail("protocol", `discovery chain "${this.#name}" uses inconsistent protocols; service "${service}" has "${protocol}" which is not "${this.#protocol}"`, path);
    }
  }

  /** The splitter node of `service`, if it has a splitter; else its resolver is walked. */
  #splitterOrResolver(service: string, path: readonly ChainStep[]): string | undefined {
    const splitter = this.#splitter(service, path);
    if (splitter === undefined) this.#resolve(plain(service), false, path);
    return splitter;
  }

  #splitter(service: string, path: readonly ChainStep[]): string | undefined {
    if (this.#splitters.has(service)) return service;
    const splitter = this.#lookup(service)?.splitter;
    if (splitter === undefined) return undefined;
    const next: string[] = [];
    // Recorded before the splits are walked, so a loop ends here (and is reported by #findSplitLoop).
    this.#splitters.set(service, next);
    splitter.splits.forEach((split, i) => {
      const step: ChainStep = { service, consul: `service-splitter "${service}" Splits[${i}]`, field: `splitter.splits[${i}]` };
      const to = split.service ?? service;
      if (to !== service && split.subset === undefined) {
        const nested = this.#splitter(to, [...path, step]);
        if (nested !== undefined) {
          next.push(nested);
          return;
        }
      }
      this.#resolve(plain(to, split.subset), false, [...path, step]);
    });
    this.#advanced = true;
    return service;
  }

  /** Consul's detectCircularReferences, over the splitter nodes (resolvers end a path). */
  #findSplitLoop(service: string, trail: readonly string[]): void {
    if (trail.includes(service)) {
      const loop = [...trail, service].map((s) => `splitter:${s}`).join(" -> ");
      const path: ChainStep[] = trail.map((s) => ({ service: s, consul: `service-splitter "${s}" Splits`, field: "splitter.splits" }));
      this.#fail("split-loop", `detected circular reference: [${loop}]`, path);
    }
    for (const next of this.#splitters.get(service) ?? []) this.#findSplitLoop(next, [...trail, service]);
  }

  /** Consul's getResolverNode: redirects, the default subset, the subset's existence, then failover. */
  #resolve(start: Target, forFailover: boolean, startPath: readonly ChainStep[]): void {
    let target = start;
    let path = startPath;
    const seen = new Set<string>();
    const order: string[] = [];
    for (;;) {
      const key = keyOf(target);
      if (this.#resolved.has(key)) return;
      // Entries of other namespaces and peers are not the mesh's to see: nothing is known of them.
      if (target.namespace !== undefined || target.peer !== undefined) return;
      this.#record(target.service, path);
      order.push(labelOf(target));
      if (seen.has(key)) this.#fail("redirect-loop", `detected circular resolver redirect: [${order.join(" -> ")}]`, path);
      seen.add(key);
      const config = this.#lookup(target.service);
      if (config === undefined) return;
      const resolver = config.resolver;
      const service = target.service;
      if (resolver?.redirect !== undefined) {
        const next = rewrite(target, resolver.redirect);
        if (keyOf(next) !== key) {
          path = [...path, { service, consul: `service-resolver "${service}" Redirect`, field: "resolver.redirect" }];
          target = next;
          continue;
        }
      }
      if (target.subset === undefined && resolver?.defaultSubset !== undefined) {
        path = [...path, { service, consul: `service-resolver "${service}" DefaultSubset`, field: "resolver.defaultSubset" }];
        target = { ...target, subset: resolver.defaultSubset };
        continue;
      }
      if (target.subset !== undefined && resolver?.subsets?.[target.subset] === undefined) {
        this.#fail("subset", `service "${service}" does not have a subset named "${target.subset}"`, path);
      }
      if (forFailover) return;
      this.#resolved.add(keyOf(target));
      const failover = resolver?.failover;
      if (failover === undefined) return;
      const key2 = target.subset !== undefined && failover[target.subset] !== undefined ? target.subset : "*";
      const here = target;
      failover[key2]?.targets.forEach((ref, j) => {
        const to = rewrite(here, ref);
        if (keyOf(to) === keyOf(here)) return;
        const step: ChainStep = { service, consul: `service-resolver "${service}" Failover["${key2}"].Targets[${j}]`, field: `resolver.failover.${key2}.targets[${j}]` };
        this.#resolve(to, true, [...path, step]);
      });
      return;
    }
  }
}

/**
 * Compiles `service`'s discovery chain as Consul does when it validates a config entry write, from
 * the configs `lookup` gives, and says why Consul would refuse it. Consul's rules: every service the
 * chain reaches (by route, split, redirect, default subset or failover) has one protocol; a chain with
 * a router or a splitter has an HTTP-like protocol (`http`, `http2`, `grpc`); a subset named on the
 * way exists in its service's resolver; no resolver redirects loop; no splitters loop. A service whose
 * config `lookup` does not give is not judged: its protocol, resolver and splitter are unknown, so it
 * neither passes nor fails a rule (Consul would use the stored entries, and `tcp` for a service with no
 * protocol; the mesh does not read `proxy-defaults`, so a protocol counts only where a service-defaults
 * entry declares it). Targets in other namespaces or peers are not judged either.
 *
 * @param service - the service whose chain it is
 * @param lookup - the config of every service, as far as it is known
 * @returns the first problem Consul would report, or undefined when the chain compiles
 * @internal
 */
export function discoveryChainProblem(service: string, lookup: ConfigLookup): ChainProblem | undefined {
  try {
    new ChainWalk(service, lookup).run();
    return undefined;
  } catch (err) {
    if (err instanceof Problem) return err.problem;
    throw err;
  }
}

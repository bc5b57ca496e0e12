import { defined } from "../../core/defined.ts";
import { discoveryChainProblem } from "../../config/discovery-chain.ts";
import type { ServiceDefaultsConfig } from "../../config/defaults-config.ts";
import type { FailoverConfig, ResolverConfig, TargetRef } from "../../config/resolver-config.ts";
import type { ServiceConfig } from "../../config/service-config.ts";

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** The stored entries a chain check reads: an entry by kind and name, and every entry of a kind. @internal */
export interface ChainEntries {
  get(kind: string, name: string): Json | undefined;
  list(kind: string): readonly Json[];
}

const CHAIN_KINDS = ["service-router", "service-splitter", "service-resolver", "service-defaults"];
const L7 = new Set(["http", "http2", "grpc"]);

function targetRef(o: Json): TargetRef {
  const namespace = str(o.Namespace);
  return defined<TargetRef>({
    service: str(o.Service),
    subset: str(o.ServiceSubset),
    datacenter: str(o.Datacenter),
    namespace: namespace === "default" ? undefined : namespace,
    peer: str(o.Peer),
  });
}

function resolver(e: Json): ResolverConfig {
  const subsets = obj(e.Subsets);
  const redirect = obj(e.Redirect);
  const failover: Record<string, FailoverConfig> = {};
  for (const [key, raw] of Object.entries(obj(e.Failover) ?? {})) {
    const o = obj(raw) ?? {};
    const base = targetRef(o);
    const targets = arr(o.Targets).map((t) => targetRef(obj(t) ?? {}));
    const datacenters = arr(o.Datacenters).filter((d): d is string => typeof d === "string" && d !== "");
    failover[key] = { targets: targets.length > 0 ? targets : datacenters.length > 0 ? datacenters.map((datacenter) => ({ ...base, datacenter })) : [base] };
  }
  return defined<ResolverConfig>({
    subsets: subsets === undefined ? undefined : Object.fromEntries(Object.keys(subsets).map((name) => [name, {}])),
    defaultSubset: str(e.DefaultSubset),
    redirect: redirect === undefined ? undefined : targetRef(redirect),
    failover: Object.keys(failover).length === 0 ? undefined : failover,
  });
}

/**
 * A service's protocol as Consul's chain compiler reads it: its service-defaults `Protocol`, else
 * proxy-defaults `Config.protocol`, else `tcp`. @internal
 */
export function serviceProtocol(entries: ChainEntries, service: string): string {
  return str(entries.get("service-defaults", service)?.Protocol) ?? str(obj(entries.get("proxy-defaults", "global")?.Config)?.protocol) ?? "tcp";
}

/**
 * The stored entries of one service in the mesh's config model, with only what the chain walk
 * reads: route and split destinations, the resolver's subsets (names), default subset, redirect and
 * failover, and the protocol. Every service has a protocol here (Consul's default `tcp`), so the walk
 * judges every service as Consul does, not only those with a service-defaults entry.
 */
function configOf(entries: ChainEntries, service: string): ServiceConfig {
  const router = entries.get("service-router", service);
  const splitter = entries.get("service-splitter", service);
  const res = entries.get("service-resolver", service);
  return defined<ServiceConfig>({
    defaults: { protocol: serviceProtocol(entries, service) as NonNullable<ServiceDefaultsConfig["protocol"]> },
    router:
      router === undefined
        ? undefined
        : {
            routes: arr(router.Routes).map((r) => {
              const d = obj(obj(r)?.Destination);
              return d === undefined ? {} : { destination: defined({ service: str(d.Service), subset: str(d.ServiceSubset) }) };
            }),
          },
    splitter:
      splitter === undefined
        ? undefined
        : { splits: arr(splitter.Splits).map((s) => defined({ weight: 0, service: str(obj(s)?.Service), subset: str(obj(s)?.ServiceSubset) })) },
    resolver: res === undefined ? undefined : resolver(res),
  });
}

/**
 * What Consul's graph validation (`validateProposedConfigEntryInServiceGraph`) would refuse in the
 * stored entries, as its message, or undefined. It compiles the discovery chain of every service that
 * has a router, splitter, resolver or service-defaults entry with the mesh's own chain walk
 * (`src/config/discovery-chain.ts`: protocols, advanced routing, subsets, redirect and split loops), then
 * checks that no `service-intentions` entry with L7 `Permissions` names a service whose protocol is not
 * HTTP-like. The entries are checked with the write applied; every earlier write was checked the same
 * way, so checking all chains refuses exactly what Consul, which checks only the chains a write
 * touches, refuses. @internal
 */
export function chainProblem(entries: ChainEntries): string | undefined {
  const services = new Set<string>();
  for (const kind of CHAIN_KINDS) for (const e of entries.list(kind)) if (typeof e.Name === "string") services.add(e.Name);
  const lookup = (service: string): ServiceConfig => configOf(entries, service);
  for (const service of [...services].sort()) {
    const problem = discoveryChainProblem(service, lookup);
    if (problem !== undefined) return problem.message;
  }
  for (const ixn of entries.list("service-intentions")) {
    const name = typeof ixn.Name === "string" ? ixn.Name : "";
    if (name === "*" || !arr(ixn.Sources).some((s) => arr(obj(s)?.Permissions).length > 0)) continue;
    const protocol = serviceProtocol(entries, name);
    if (!L7.has(protocol)) return `service "${name}" has protocol "${protocol}", which is incompatible with L7 intentions permissions`;
  }
  return undefined;
}

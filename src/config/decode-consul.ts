import { defined } from "../core/defined.ts";
import { MeshError } from "../core/errors.ts";
import { describe } from "../core/validate.ts";
import type { LoadBalancerConfig } from "../balancer/load-balancer-config.ts";
import type { ServiceConfig } from "./service-config.ts";
import type { ServiceDefaultsConfig, UpstreamPolicy } from "./defaults-config.ts";
import { parseGoDuration } from "./duration.ts";
import type { FailoverConfig, ResolverConfig, SubsetConfig, TargetRef } from "./resolver-config.ts";
import type { HeaderChanges, HeaderMatch, QueryMatch, RouteConfig, RouteDestination, RouteMatch, RouterConfig } from "./route-config.ts";
import type { SplitConfig, SplitterConfig } from "./split-config.ts";
import { validateServiceConfig } from "./compile-config.ts";

/** The config-entry kinds proxyless reads. */
export type ConsulEntryKind = "service-router" | "service-splitter" | "service-resolver" | "service-defaults";

/** The config-entry kinds proxyless reads, in the order a request meets them. */
export const CONSUL_ENTRY_KINDS: readonly ConsulEntryKind[] = ["service-router", "service-splitter", "service-resolver", "service-defaults"];

/** One Consul config entry, decoded. */
export interface DecodedConsulEntry {
  /** The entry's kind. */
  readonly kind: ConsulEntryKind;
  /** The service it configures. */
  readonly name: string;
  /** Its namespace (Consul Enterprise); `default` when the entry names none. */
  readonly namespace: string;
  /** The part of the service's config this entry sets (`router`, `splitter`, `resolver` and `loadBalancer`, or `defaults`). */
  readonly config: ServiceConfig;
}

type Json = Readonly<Record<string, unknown>>;

/** Reads Consul's JSON, naming the Consul field (`Routes[0].Match.HTTP.PathPrefix`) in every complaint. */
class Reader {
  readonly #kind: string;
  readonly #name: string;

  constructor(kind: string, name: string) {
    this.#kind = kind;
    this.#name = name;
  }

  fail(field: string, problem: string, cause?: unknown): MeshError {
    return new MeshError("ERR_INVALID_CONFIG", `Invalid config entry ${this.#kind} "${this.#name}" at '${field}': ${problem}`, {
      cause,
      details: { entry: `${this.#kind}/${this.#name}`, field },
    });
  }

  object(v: unknown, field: string): Json | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw this.fail(field, `expected an object, got ${describe(v)}`);
    return v as Json;
  }

  array(v: unknown, field: string): readonly unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.fail(field, `expected an array, got ${describe(v)}`);
    return v;
  }

  /** A string; Consul's empty string means *not set*. */
  string(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw this.fail(field, `expected a string, got ${describe(v)}`);
    return v;
  }

  /** A boolean; Consul's false means *not set*. */
  flag(v: unknown, field: string): true | undefined {
    if (v === undefined || v === null || v === false) return undefined;
    if (v !== true) throw this.fail(field, `expected true or false, got ${describe(v)}`);
    return true;
  }

  number(v: unknown, field: string): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw this.fail(field, `expected a number, got ${describe(v)}`);
    return v;
  }

  /** A Go duration string, in ms; `"0s"` and `""` mean *not set*. */
  duration(v: unknown, field: string): number | undefined {
    const text = this.string(v, field);
    if (text === undefined) return undefined;
    const ms = parseGoDuration(text);
    if (ms === undefined) throw this.fail(field, `expected a duration such as "15s", got ${describe(text)}`);
    return ms === 0 ? undefined : ms;
  }

  strings(v: unknown, field: string): string[] | undefined {
    const list = this.array(v, field).map((s, i) => this.string(s, `${field}[${i}]`) ?? "");
    return list.length === 0 ? undefined : list;
  }
}

/**
 * Decodes one Consul config entry (`service-router`, `service-splitter`, `service-resolver`,
 * `service-defaults`, as `GET /v1/config/:kind/:name` returns it or as you `consul config write` it)
 * into proxyless's config model, then validates it as the mesh would.
 *
 * @param entry - the entry's JSON, parsed
 * @returns the entry's kind, name and the part of the service's config it sets
 * @throws MeshError `ERR_INVALID_CONFIG` whose `details.entry` is `kind/name` and `details.field` the Consul field at fault
 */
export function decodeConsulEntry(entry: unknown): DecodedConsulEntry {
  const top = new Reader("?", "?").object(entry, "entry");
  if (top === undefined) throw new Reader("?", "?").fail("entry", "expected a config entry object");
  const kind = top.Kind;
  const name = top.Name;
  if (typeof kind !== "string" || !(CONSUL_ENTRY_KINDS as readonly string[]).includes(kind)) {
    throw new Reader(String(kind), String(name)).fail("Kind", `expected one of ${CONSUL_ENTRY_KINDS.join(", ")}, got ${describe(kind)}`);
  }
  if (typeof name !== "string" || name === "") throw new Reader(kind, "?").fail("Name", "a config entry needs a Name");
  const r = new Reader(kind, name);
  const namespace = r.string(top.Namespace, "Namespace") ?? "default";
  const k = kind as ConsulEntryKind;
  const config: ServiceConfig = k === "service-router" ? { router: router(r, top) } : k === "service-splitter" ? { splitter: splitter(r, top) } : k === "service-resolver" ? resolver(r, top) : { defaults: defaults(r, top) };
  try {
    validateServiceConfig(config, name);
  } catch (err) {
    if (!(err instanceof MeshError)) throw err;
    const field = consulField(typeof err.details.field === "string" ? err.details.field : "");
    throw r.fail(field, err.message.replace(/^Invalid configuration at '[^']*': /, ""), err);
  }
  return { kind: k, name, namespace, config };
}

/**
 * Decodes a set of Consul config entries into one config per service, merging each service's router,
 * splitter, resolver and defaults. Entries of other namespaces than `default` are left out.
 *
 * @param entries - entries' JSON, parsed (for instance a `config-*.json` file you apply with `consul config write`)
 * @returns the config of every service named
 * @throws MeshError `ERR_INVALID_CONFIG` for the first invalid entry, or when two entries have the same kind and name
 */
export function decodeConsulEntries(entries: Iterable<unknown>): Record<string, ServiceConfig> {
  const out: Record<string, ServiceConfig> = {};
  const seen = new Set<string>();
  for (const raw of entries) {
    const decoded = decodeConsulEntry(raw);
    if (decoded.namespace !== "default") continue;
    const key = `${decoded.kind}/${decoded.name}`;
    if (seen.has(key)) throw new Reader(decoded.kind, decoded.name).fail("Name", "the same entry is given twice");
    seen.add(key);
    out[decoded.name] = { ...out[decoded.name], ...decoded.config };
  }
  return out;
}

function headerChanges(r: Reader, v: unknown, field: string): HeaderChanges | undefined {
  const o = r.object(v, field);
  if (o === undefined) return undefined;
  const map = (m: unknown, f: string): Record<string, string> | undefined => {
    const rec = r.object(m, f);
    if (rec === undefined || Object.keys(rec).length === 0) return undefined;
    return Object.fromEntries(Object.entries(rec).map(([k, val]) => [k, typeof val === "string" ? val : String(r.string(val, `${f}.${k}`))]));
  };
  const out = defined<HeaderChanges>({ add: map(o.Add, `${field}.Add`), set: map(o.Set, `${field}.Set`), remove: r.strings(o.Remove, `${field}.Remove`) });
  return Object.keys(out).length === 0 ? undefined : out;
}

function onlyDefaultNamespace(r: Reader, o: Json, field: string): void {
  for (const key of ["Namespace", "Partition"]) {
    const value = r.string(o[key], `${field}.${key}`);
    if (value !== undefined && value !== "default") throw r.fail(`${field}.${key}`, `${key.toLowerCase()}s (Consul Enterprise) are not supported here`);
  }
}

/**
 * proxyless's extensions, which Consul's entries have no field for, ride in the entry's `Meta` under
 * the key `proxyless`, as JSON: for a service-router `{"routes": {"<index>": {"mirror": ..., "fault": ...}}}`,
 * for a service-splitter `{"sticky": {"header": "x-user"}}`. Consul stores Meta as given.
 */
function extensions(r: Reader, e: Json): Json {
  const text = r.string(r.object(e.Meta, "Meta")?.proxyless, "Meta.proxyless");
  if (text === undefined) return {};
  try {
    return r.object(JSON.parse(text), "Meta.proxyless") ?? {};
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw r.fail("Meta.proxyless", `expected JSON, such as {"sticky":{"header":"x-user"}}: ${(err as Error).message}`, err);
  }
}

function router(r: Reader, e: Json): RouterConfig {
  const extra = r.object(extensions(r, e).routes, "Meta.proxyless.routes") ?? {};
  const routes = r.array(e.Routes, "Routes").map((raw, i): RouteConfig => {
    const at = `Routes[${i}]`;
    const route = r.object(raw, at) ?? {};
    const http = r.object(r.object(route.Match, `${at}.Match`)?.HTTP, `${at}.Match.HTTP`) ?? {};
    const h = `${at}.Match.HTTP`;
    const headers = r.array(http.Header, `${h}.Header`).map((x, j): HeaderMatch => {
      const o = r.object(x, `${h}.Header[${j}]`) ?? {};
      const f = `${h}.Header[${j}]`;
      return defined<HeaderMatch>({
        name: r.string(o.Name, `${f}.Name`) ?? "",
        present: r.flag(o.Present, `${f}.Present`),
        exact: r.string(o.Exact, `${f}.Exact`),
        prefix: r.string(o.Prefix, `${f}.Prefix`),
        suffix: r.string(o.Suffix, `${f}.Suffix`),
        regex: r.string(o.Regex, `${f}.Regex`),
        invert: r.flag(o.Invert, `${f}.Invert`),
      });
    });
    const query = r.array(http.QueryParam, `${h}.QueryParam`).map((x, j): QueryMatch => {
      const o = r.object(x, `${h}.QueryParam[${j}]`) ?? {};
      const f = `${h}.QueryParam[${j}]`;
      return defined<QueryMatch>({ name: r.string(o.Name, `${f}.Name`) ?? "", present: r.flag(o.Present, `${f}.Present`), exact: r.string(o.Exact, `${f}.Exact`), regex: r.string(o.Regex, `${f}.Regex`) });
    });
    const match = defined<RouteMatch>({
      pathExact: r.string(http.PathExact, `${h}.PathExact`),
      pathPrefix: r.string(http.PathPrefix, `${h}.PathPrefix`),
      pathRegex: r.string(http.PathRegex, `${h}.PathRegex`),
      caseInsensitive: r.flag(http.CaseInsensitive, `${h}.CaseInsensitive`),
      headers: headers.length === 0 ? undefined : headers,
      query: query.length === 0 ? undefined : query,
      methods: r.strings(http.Methods, `${h}.Methods`),
    });
    const d = r.object(route.Destination, `${at}.Destination`);
    let destination: RouteDestination | undefined;
    if (d !== undefined) {
      const f = `${at}.Destination`;
      onlyDefaultNamespace(r, d, f);
      const numRetries = r.number(d.NumRetries, `${f}.NumRetries`);
      const codes = r.array(d.RetryOnStatusCodes, `${f}.RetryOnStatusCodes`).map((c, j) => r.number(c, `${f}.RetryOnStatusCodes[${j}]`) ?? 0);
      destination = defined<RouteDestination>({
        service: r.string(d.Service, `${f}.Service`),
        subset: r.string(d.ServiceSubset, `${f}.ServiceSubset`),
        prefixRewrite: r.string(d.PrefixRewrite, `${f}.PrefixRewrite`),
        requestTimeoutMs: r.duration(d.RequestTimeout, `${f}.RequestTimeout`),
        idleTimeoutMs: r.duration(d.IdleTimeout, `${f}.IdleTimeout`),
        // Consul: 0 means "not set" (one retry); it cannot be set to 0.
        numRetries: numRetries === 0 ? undefined : numRetries,
        retryOnConnectFailure: r.flag(d.RetryOnConnectFailure, `${f}.RetryOnConnectFailure`),
        retryOnStatusCodes: codes.length === 0 ? undefined : codes,
        retryOn: r.strings(d.RetryOn, `${f}.RetryOn`),
        requestHeaders: headerChanges(r, d.RequestHeaders, `${f}.RequestHeaders`),
        responseHeaders: headerChanges(r, d.ResponseHeaders, `${f}.ResponseHeaders`),
      });
    }
    const ext = r.object(extra[String(i)], `Meta.proxyless.routes.${i}`);
    return defined<RouteConfig>({
      match: Object.keys(match).length === 0 ? undefined : match,
      destination,
      mirror: ext?.mirror as RouteConfig["mirror"],
      fault: ext?.fault as RouteConfig["fault"],
    });
  });
  for (const key of Object.keys(extra)) {
    if (!/^\d+$/.test(key) || Number(key) >= routes.length) throw r.fail(`Meta.proxyless.routes.${key}`, `there is no route ${key}`);
  }
  return { routes };
}

function splitter(r: Reader, e: Json): SplitterConfig {
  const splits = r.array(e.Splits, "Splits").map((raw, i): SplitConfig => {
    const f = `Splits[${i}]`;
    const s = r.object(raw, f) ?? {};
    onlyDefaultNamespace(r, s, f);
    return defined<SplitConfig>({
      weight: r.number(s.Weight, `${f}.Weight`) ?? 0,
      service: r.string(s.Service, `${f}.Service`),
      subset: r.string(s.ServiceSubset, `${f}.ServiceSubset`),
      requestHeaders: headerChanges(r, s.RequestHeaders, `${f}.RequestHeaders`),
      responseHeaders: headerChanges(r, s.ResponseHeaders, `${f}.ResponseHeaders`),
    });
  });
  const sticky = extensions(r, e).sticky;
  return sticky === undefined ? { splits } : { splits, sticky: sticky as SplitterConfig["sticky"] & object };
}

function targetRef(r: Reader, o: Json, f: string): TargetRef {
  const namespace = r.string(o.Namespace, `${f}.Namespace`);
  return defined<TargetRef>({
    service: r.string(o.Service, `${f}.Service`),
    subset: r.string(o.ServiceSubset, `${f}.ServiceSubset`),
    datacenter: r.string(o.Datacenter, `${f}.Datacenter`),
    namespace: namespace === "default" ? undefined : namespace,
    peer: r.string(o.Peer, `${f}.Peer`),
  });
}

function resolver(r: Reader, e: Json): { resolver?: ResolverConfig; loadBalancer?: LoadBalancerConfig } {
  const subsets: Record<string, SubsetConfig> = {};
  for (const [name, raw] of Object.entries(r.object(e.Subsets, "Subsets") ?? {})) {
    const s = r.object(raw, `Subsets.${name}`) ?? {};
    subsets[name] = defined<SubsetConfig>({ filter: r.string(s.Filter, `Subsets.${name}.Filter`), onlyPassing: r.flag(s.OnlyPassing, `Subsets.${name}.OnlyPassing`) });
  }
  const redirect = r.object(e.Redirect, "Redirect");
  const failover: Record<string, FailoverConfig> = {};
  for (const [key, raw] of Object.entries(r.object(e.Failover, "Failover") ?? {})) {
    const f = `Failover.${key}`;
    const o = r.object(raw, f) ?? {};
    const base = targetRef(r, o, f);
    const targets = r.array(o.Targets, `${f}.Targets`).map((t, i) => targetRef(r, r.object(t, `${f}.Targets[${i}]`) ?? {}, `${f}.Targets[${i}]`));
    const datacenters = r.strings(o.Datacenters, `${f}.Datacenters`);
    if (targets.length > 0 && (datacenters !== undefined || base.service !== undefined || base.subset !== undefined)) {
      throw r.fail(f, "Targets cannot be set with Datacenters, Service or ServiceSubset");
    }
    failover[key] = { targets: targets.length > 0 ? targets : datacenters !== undefined ? datacenters.map((datacenter) => ({ ...base, datacenter })) : [base] };
  }
  const out = defined<ResolverConfig>({
    subsets: Object.keys(subsets).length === 0 ? undefined : subsets,
    defaultSubset: r.string(e.DefaultSubset, "DefaultSubset"),
    redirect: redirect === undefined ? undefined : targetRef(r, redirect, "Redirect"),
    failover: Object.keys(failover).length === 0 ? undefined : failover,
    connectTimeoutMs: r.duration(e.ConnectTimeout, "ConnectTimeout"),
    requestTimeoutMs: r.duration(e.RequestTimeout, "RequestTimeout"),
  });
  return defined({ resolver: Object.keys(out).length === 0 ? undefined : out, loadBalancer: loadBalancer(r, r.object(e.LoadBalancer, "LoadBalancer")) });
}

/**
 * The resolver's `LoadBalancer`: `Policy` names the balancer; `LeastRequestConfig.ChoiceCount`,
 * `RingHashConfig.MinimumRingSize`/`MaximumRingSize` and `HashPolicies` (header, cookie, query
 * parameter) carry over. `SourceIP` hashing is skipped: in-process, every request has this process's address.
 */
function loadBalancer(r: Reader, lb: Json | undefined): LoadBalancerConfig | undefined {
  const policy = r.string(lb?.Policy, "LoadBalancer.Policy");
  if (lb === undefined || policy === undefined) return undefined;
  const config: Record<string, unknown> = {};
  const choiceCount = r.object(lb.LeastRequestConfig, "LoadBalancer.LeastRequestConfig")?.ChoiceCount;
  if (policy === "least_request" && choiceCount !== undefined) config.choiceCount = choiceCount;
  const ring = r.object(lb.RingHashConfig, "LoadBalancer.RingHashConfig");
  if (policy === "ring_hash" && ring?.MinimumRingSize !== undefined) config.minimumRingSize = ring.MinimumRingSize;
  if (policy === "ring_hash" && ring?.MaximumRingSize !== undefined) config.maximumRingSize = ring.MaximumRingSize;
  if (policy === "ring_hash" || policy === "maglev") {
    const policies = r.array(lb.HashPolicies, "LoadBalancer.HashPolicies").map((p, i) => r.object(p, `LoadBalancer.HashPolicies[${i}]`) ?? {});
    if (policies.length > 0) {
      config.hashPolicies = policies
        .filter((p) => p.SourceIP !== true)
        .map((p) => ({ field: p.Field, name: p.FieldValue, ...(p.Terminal === undefined ? {} : { terminal: p.Terminal }) }));
    }
  }
  return Object.keys(config).length === 0 ? { policy } : { policy, config };
}

function upstream(r: Reader, o: Json | undefined, f: string): UpstreamPolicy | undefined {
  if (o === undefined) return undefined;
  const limits = r.object(o.Limits, `${f}.Limits`);
  const phc = r.object(o.PassiveHealthCheck, `${f}.PassiveHealthCheck`);
  const out = defined<UpstreamPolicy>({
    connectTimeoutMs: r.number(o.ConnectTimeoutMs, `${f}.ConnectTimeoutMs`) || undefined,
    limits:
      limits === undefined
        ? undefined
        : defined({
            maxConnections: r.number(limits.MaxConnections, `${f}.Limits.MaxConnections`),
            maxPendingRequests: r.number(limits.MaxPendingRequests, `${f}.Limits.MaxPendingRequests`),
            maxConcurrentRequests: r.number(limits.MaxConcurrentRequests, `${f}.Limits.MaxConcurrentRequests`),
          }),
    passiveHealthCheck:
      phc === undefined
        ? undefined
        : defined({
            intervalMs: r.duration(phc.Interval, `${f}.PassiveHealthCheck.Interval`),
            maxFailures: r.number(phc.MaxFailures, `${f}.PassiveHealthCheck.MaxFailures`),
            enforcingConsecutive5xx: r.number(phc.EnforcingConsecutive5xx, `${f}.PassiveHealthCheck.EnforcingConsecutive5xx`),
            maxEjectionPercent: r.number(phc.MaxEjectionPercent, `${f}.PassiveHealthCheck.MaxEjectionPercent`),
            baseEjectionTimeMs: r.duration(phc.BaseEjectionTime, `${f}.PassiveHealthCheck.BaseEjectionTime`),
          }),
  });
  return Object.keys(out).length === 0 ? undefined : out;
}

function defaults(r: Reader, e: Json): ServiceDefaultsConfig {
  const protocol = r.string(e.Protocol, "Protocol");
  const up = r.object(e.UpstreamConfig, "UpstreamConfig");
  const overrides: Record<string, UpstreamPolicy> = {};
  r.array(up?.Overrides, "UpstreamConfig.Overrides").forEach((raw, i) => {
    const f = `UpstreamConfig.Overrides[${i}]`;
    const o = r.object(raw, f) ?? {};
    const name = r.string(o.Name, `${f}.Name`);
    if (name === undefined) throw r.fail(`${f}.Name`, "an override needs the Name of the upstream");
    const namespace = r.string(o.Namespace, `${f}.Namespace`);
    if (namespace !== undefined && namespace !== "default") return;
    const policy = upstream(r, o, f);
    if (policy !== undefined) overrides[name] = policy;
  });
  return defined<ServiceDefaultsConfig>({
    protocol: protocol as ServiceDefaultsConfig["protocol"],
    upstreamDefaults: upstream(r, r.object(up?.Defaults, "UpstreamConfig.Defaults"), "UpstreamConfig.Defaults"),
    upstreamOverrides: Object.keys(overrides).length === 0 ? undefined : overrides,
  });
}

const SEGMENTS: Readonly<Record<string, string>> = {
  match: "Match.HTTP",
  headers: "Header",
  query: "QueryParam",
  subset: "ServiceSubset",
  requestTimeoutMs: "RequestTimeout",
  idleTimeoutMs: "IdleTimeout",
  connectTimeoutMs: "ConnectTimeout",
  intervalMs: "Interval",
  baseEjectionTimeMs: "BaseEjectionTime",
  upstreamDefaults: "UpstreamConfig.Defaults",
  upstreamOverrides: "UpstreamConfig.Overrides",
};
/** Segments after which the next one is a key (a subset, a header name) to keep as is. */
const KEYED = new Set(["subsets", "failover", "add", "set", "upstreamOverrides"]);

/** A model path (`router.routes[0].match.pathPrefix`) in Consul's names (`Routes[0].Match.HTTP.PathPrefix`). */
function consulField(path: string): string {
  // The extensions came from Meta.proxyless: name them there.
  const ext = /^router\.routes\[(\d+)\]\.((?:mirror|fault).*)$/.exec(path) ?? /^splitter\.(sticky.*)$/.exec(path);
  if (ext !== null) return ext.length === 3 ? `Meta.proxyless.routes.${ext[1]}.${ext[2]}` : `Meta.proxyless.${ext[1]}`;
  const parts = path.split(".").slice(1);
  return parts
    .map((part, i) => {
      if (i > 0 && KEYED.has(parts[i - 1]?.replace(/\[\d+\]$/, "") ?? "")) return part;
      const m = /^([^[]+)(\[\d+\])?$/.exec(part);
      const name = m?.[1] ?? part;
      return (SEGMENTS[name] ?? name.charAt(0).toUpperCase() + name.slice(1)) + (m?.[2] ?? "");
    })
    .join(".");
}

import { invalidConfig } from "../core/errors.ts";
import { assertServiceName } from "../core/service-name.ts";
import { describe } from "../core/validate.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";
import type { ServiceConfig } from "./service-config.ts";
import type { RouteConfig } from "./route-config.ts";
import { PROTOCOLS, RETRY_CONDITIONS, ROUTE_METHODS, SUBSET_NAME } from "./consul-vocabulary.ts";
import { compileFilter, type FilterPredicate } from "./filter-expression.ts";
import { compileMatch, type RouteMatcher } from "./compile-match.ts";
import { compileHeaderChanges, headerName, type CompiledHeaderChanges } from "./header-rules.ts";

/** A route, compiled: its matcher and header changes, what requests run. @internal */
export interface CompiledRoute {
  /** Its position in the router's list. */
  readonly index: number;
  readonly config: RouteConfig;
  readonly matches: RouteMatcher;
  readonly requestHeaders: CompiledHeaderChanges | undefined;
  readonly responseHeaders: CompiledHeaderChanges | undefined;
}

/** A split, compiled. @internal */
export interface CompiledSplit {
  /** Its weight, in percent. */
  readonly weight: number;
  readonly service: string | undefined;
  readonly subset: string | undefined;
  readonly requestHeaders: CompiledHeaderChanges | undefined;
  readonly responseHeaders: CompiledHeaderChanges | undefined;
}

/** A resolver subset, compiled. @internal */
export interface CompiledSubset {
  readonly name: string;
  /** Whether an endpoint belongs to the subset. */
  readonly includes: (endpoint: Endpoint) => boolean;
}

/** A service's config as requests run it: the config itself, and every part compiled once. @internal */
export interface CompiledServiceConfig {
  readonly config: ServiceConfig;
  readonly routes: readonly CompiledRoute[] | undefined;
  readonly splits: readonly CompiledSplit[] | undefined;
  /** Sticky splitting by a (lower-case) header or a cookie. */
  readonly sticky: { readonly header?: string; readonly cookie?: string } | undefined;
  readonly subsets: ReadonlyMap<string, CompiledSubset>;
}

type Json = Readonly<Record<string, unknown>>;

/** Reads one level of a config object, naming the path of every field it complains about. */
class Fields {
  readonly path: string;
  readonly #value: Json;

  constructor(value: unknown, path: string, allowed: readonly string[]) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalidConfig(path, `expected an object, got ${describe(value)}`);
    this.#value = value as Json;
    this.path = path;
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) throw invalidConfig(`${path}.${key}`, `unknown field (known: ${allowed.join(", ")})`);
    }
  }

  has(key: string): boolean {
    return this.#value[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.#value[key];
  }

  at(key: string): string {
    return `${this.path}.${key}`;
  }

  string(key: string, options: { readonly required?: boolean; readonly nonEmpty?: boolean } = {}): string | undefined {
    const v = this.#value[key];
    if (v === undefined && options.required !== true) return undefined;
    if (typeof v !== "string" || (options.nonEmpty === true && v === "")) {
      throw invalidConfig(this.at(key), `expected ${options.nonEmpty === true ? "a non-empty string" : "a string"}, got ${describe(v)}`);
    }
    return v;
  }

  boolean(key: string): boolean | undefined {
    const v = this.#value[key];
    if (v !== undefined && typeof v !== "boolean") throw invalidConfig(this.at(key), `expected true or false, got ${describe(v)}`);
    return v;
  }

  number(key: string, min: number, max: number, integer = false): number | undefined {
    const v = this.#value[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      throw invalidConfig(this.at(key), `expected ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${describe(v)}`);
    }
    return v;
  }

  array(key: string): readonly unknown[] | undefined {
    const v = this.#value[key];
    if (v !== undefined && !Array.isArray(v)) throw invalidConfig(this.at(key), `expected an array, got ${describe(v)}`);
    return v as readonly unknown[] | undefined;
  }

  record(key: string): Json | undefined {
    const v = this.#value[key];
    if (v === undefined) return undefined;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw invalidConfig(this.at(key), `expected an object, got ${describe(v)}`);
    return v as Json;
  }
}

const MAX_MS = 2_147_483_647;

/**
 * Validates a service's configuration as a whole: every field's type and range, and Consul's rules
 * (one path match per route, known methods and retry conditions, splits that sum to 100 at 0.01
 * precision with no destination twice, subsets with valid filters, a default subset that exists,
 * redirect and failover not both), and that everything a request would carry is something the HTTP
 * client and gRPC accept (header names and values, rewritten paths). It is the mesh's compile step
 * (`compileServiceConfig`) with the compiled form left out. What spans services (other services'
 * subsets and protocols, loops) is checked when the config is applied, against the configs the mesh
 * holds (`discovery-chain-check.ts`), and when a request is routed.
 *
 * @param config - the config, as a registry delivered it
 * @param service - the service it configures, for messages
 * @returns the same config
 * @throws MeshError `ERR_INVALID_CONFIG` whose `details.field` names the field at fault (`router.routes[2].match.pathPrefix`)
 */
export function validateServiceConfig(config: unknown, service: string): ServiceConfig {
  compileServiceConfig(config, service);
  return config as ServiceConfig;
}

/**
 * The one compile step from a service's config (from Consul entries, `setConfig` or code) to what its
 * requests run: route matchers (RE2 regexes), header changes, splits, subset filters. Validation is
 * this compilation: it throws, naming the field, or returns what will run; nothing is compiled again
 * later and no request reads the config's raw form.
 *
 * @param config - the config, as a registry delivered it
 * @param service - the service it configures, for messages
 * @throws MeshError `ERR_INVALID_CONFIG` whose `details.field` names the field at fault
 * @internal
 */
export function compileServiceConfig(input: unknown, service: string): CompiledServiceConfig {
  // A frozen copy is what is checked and what runs: the caller's object may change afterwards.
  const config = frozenCopy(input);
  const c = new Fields(config, "config", ["loadBalancer", "router", "splitter", "resolver", "defaults"]);
  const routes = c.has("router") ? compileRouter(new Fields(c.raw("router"), "router", ["routes"])) : undefined;
  const splitter = c.has("splitter") ? compileSplitter(new Fields(c.raw("splitter"), "splitter", ["splits", "sticky"]), service) : undefined;
  const subsets = c.has("resolver") ? compileResolver(new Fields(c.raw("resolver"), "resolver", ["subsets", "defaultSubset", "redirect", "failover", "connectTimeoutMs", "requestTimeoutMs"]), service) : new Map<string, CompiledSubset>();
  if (c.has("defaults")) validateDefaults(new Fields(c.raw("defaults"), "defaults", ["protocol", "upstreamDefaults", "upstreamOverrides"]));
  return Object.freeze({ config: config as ServiceConfig, routes, splits: splitter?.splits, sticky: splitter?.sticky, subsets });
}

function serviceRef(f: Fields, key: string): void {
  const name = f.string(key);
  if (name === undefined) return;
  try {
    assertServiceName(name);
  } catch (err) {
    throw invalidConfig(f.at(key), `${describe(name)} is not a valid service name`, { cause: err });
  }
}

function subsetRef(f: Fields, key: string): void {
  const name = f.string(key);
  if (name !== undefined && !SUBSET_NAME.test(name)) throw invalidConfig(f.at(key), `${describe(name)} is not a valid subset name (a DNS label)`);
}

function oneOf(f: Fields, keys: readonly string[], path: string): void {
  const set = keys.filter((k) => f.has(k) && f.raw(k) !== false);
  if (set.length > 1) throw invalidConfig(path, `give only one of ${keys.join(", ")} (got ${set.join(" and ")})`);
}

/** A path a request may be sent with: what undici accepts (from `!` to U+00FF), starting with `/`. */
const SENDABLE_PATH = /^\/[\u0021-\u00ff]*$/;

function compileRouter(router: Fields): CompiledRoute[] {
  const routes = router.array("routes");
  if (routes === undefined) throw invalidConfig(router.at("routes"), "expected an array of routes");
  return routes.map((raw, i): CompiledRoute => {
    const path = `router.routes[${i}]`;
    const route = new Fields(raw, path, ["match", "destination", "mirror", "fault"]);
    if (route.has("mirror")) {
      const m = new Fields(route.raw("mirror"), `${path}.mirror`, ["service", "subset", "percent"]);
      serviceRef(m, "service");
      subsetRef(m, "subset");
      if (!m.has("percent")) throw invalidConfig(m.at("percent"), "expected the share of requests to copy, 0 to 100");
      m.number("percent", 0, 100);
    }
    if (route.has("fault")) {
      const f = new Fields(route.raw("fault"), `${path}.fault`, ["delay", "abort"]);
      if (f.has("delay")) {
        const d = new Fields(f.raw("delay"), f.at("delay"), ["ms", "percent", "header"]);
        if (!d.has("ms")) throw invalidConfig(d.at("ms"), "expected the delay in ms");
        d.number("ms", 0, MAX_MS);
        d.number("percent", 0, 100);
        if (d.has("header")) headerName(d.raw("header"), d.at("header"));
      }
      if (f.has("abort")) {
        const a = new Fields(f.raw("abort"), f.at("abort"), ["status", "percent", "header"]);
        if (!a.has("status")) throw invalidConfig(a.at("status"), "expected the status to answer, such as 503");
        a.number("status", 200, 599, true);
        a.number("percent", 0, 100);
        if (a.has("header")) headerName(a.raw("header"), a.at("header"));
      }
    }
    let hasPathMatch = false;
    if (route.has("match")) {
      const m = new Fields(route.raw("match"), `${path}.match`, ["pathExact", "pathPrefix", "pathRegex", "caseInsensitive", "headers", "query", "methods"]);
      oneOf(m, ["pathExact", "pathPrefix", "pathRegex"], m.path);
      for (const key of ["pathExact", "pathPrefix"]) {
        const p = m.string(key);
        if (p !== undefined && !p.startsWith("/")) throw invalidConfig(m.at(key), `must start with "/", got ${describe(p)}`);
        if (p !== undefined) hasPathMatch = true;
      }
      m.boolean("caseInsensitive");
      m.string("pathRegex");
      (m.array("headers") ?? []).forEach((h, j) => {
        const header = new Fields(h, `${m.path}.headers[${j}]`, ["name", "present", "exact", "prefix", "suffix", "regex", "invert"]);
        header.string("name", { required: true, nonEmpty: true });
        header.boolean("present");
        header.boolean("invert");
        for (const k of ["exact", "prefix", "suffix"]) header.string(k);
        oneOf(header, ["present", "exact", "prefix", "suffix", "regex"], header.path);
        header.string("regex");
      });
      (m.array("query") ?? []).forEach((q, j) => {
        const param = new Fields(q, `${m.path}.query[${j}]`, ["name", "present", "exact", "regex"]);
        param.string("name", { required: true, nonEmpty: true });
        param.boolean("present");
        param.string("exact");
        oneOf(param, ["present", "exact", "regex"], param.path);
        param.string("regex");
      });
      const seen = new Set<string>();
      (m.array("methods") ?? []).forEach((method, j) => {
        if (typeof method !== "string" || !ROUTE_METHODS.has(method)) {
          throw invalidConfig(`${m.path}.methods[${j}]`, `${describe(method)} is not a method (known: ${[...ROUTE_METHODS].join(", ")})`);
        }
        if (seen.has(method)) throw invalidConfig(`${m.path}.methods[${j}]`, `"${method}" is listed more than once`);
        seen.add(method);
      });
    }
    let requestHeaders: CompiledHeaderChanges | undefined;
    let responseHeaders: CompiledHeaderChanges | undefined;
    if (route.has("destination")) {
      const d = new Fields(route.raw("destination"), `${path}.destination`, [
        "service",
        "subset",
        "prefixRewrite",
        "requestTimeoutMs",
        "idleTimeoutMs",
        "numRetries",
        "retryOnConnectFailure",
        "retryOnStatusCodes",
        "retryOn",
        "requestHeaders",
        "responseHeaders",
      ]);
      serviceRef(d, "service");
      subsetRef(d, "subset");
      const rewrite = d.string("prefixRewrite");
      if (rewrite !== undefined && !hasPathMatch) {
        throw invalidConfig(d.at("prefixRewrite"), "a prefix rewrite needs a pathExact or pathPrefix match to replace");
      }
      // It starts the path sent: it must be one (a leading '/', no space, control character or character beyond U+00FF).
      if (rewrite !== undefined && !SENDABLE_PATH.test(rewrite)) {
        throw invalidConfig(d.at("prefixRewrite"), `must start with "/" and hold no space, control character or character beyond U+00FF, got ${describe(rewrite)}`);
      }
      d.number("requestTimeoutMs", 0, MAX_MS);
      d.number("idleTimeoutMs", 0, MAX_MS);
      d.number("numRetries", 0, 100, true);
      d.boolean("retryOnConnectFailure");
      (d.array("retryOnStatusCodes") ?? []).forEach((code, j) => {
        if (typeof code !== "number" || !Number.isInteger(code) || code < 100 || code > 599) {
          throw invalidConfig(`${d.path}.retryOnStatusCodes[${j}]`, `expected an HTTP status code, got ${describe(code)}`);
        }
      });
      (d.array("retryOn") ?? []).forEach((condition, j) => {
        if (typeof condition !== "string" || !RETRY_CONDITIONS.has(condition)) {
          throw invalidConfig(`${d.path}.retryOn[${j}]`, `${describe(condition)} is not a retry condition (known: ${[...RETRY_CONDITIONS].join(", ")})`);
        }
      });
      if (d.has("requestHeaders")) requestHeaders = compileHeaderChanges(d.raw("requestHeaders"), d.at("requestHeaders"), "request");
      if (d.has("responseHeaders")) responseHeaders = compileHeaderChanges(d.raw("responseHeaders"), d.at("responseHeaders"), "response");
    }
    const config = raw as RouteConfig;
    // The match's fields were checked above: the matcher compiles its regexes (RE2), naming the field of one RE2 refuses.
    return { index: i, config, matches: compileMatch(config.match, `${path}.match`), requestHeaders, responseHeaders };
  });
}

function compileSplitter(splitter: Fields, service: string): { readonly splits: CompiledSplit[]; readonly sticky: CompiledServiceConfig["sticky"] } {
  const splits = splitter.array("splits");
  if (splits === undefined || splits.length === 0) throw invalidConfig(splitter.at("splits"), "expected at least one split");
  const seen = new Set<string>();
  let sum = 0;
  const compiled = splits.map((raw, i): CompiledSplit => {
    const s = new Fields(raw, `splitter.splits[${i}]`, ["weight", "service", "subset", "requestHeaders", "responseHeaders"]);
    if (!s.has("weight")) throw invalidConfig(s.at("weight"), "expected a weight from 0 to 100");
    const weight = s.number("weight", 0, 100) ?? 0;
    sum += Math.round(weight * 100);
    serviceRef(s, "service");
    subsetRef(s, "subset");
    const key = `${s.string("service") ?? service}/${s.string("subset") ?? ""}`;
    if (seen.has(key)) throw invalidConfig(s.path, `the destination ${key} occurs more than once`);
    seen.add(key);
    return {
      weight,
      service: s.string("service"),
      subset: s.string("subset"),
      requestHeaders: s.has("requestHeaders") ? compileHeaderChanges(s.raw("requestHeaders"), s.at("requestHeaders"), "request") : undefined,
      responseHeaders: s.has("responseHeaders") ? compileHeaderChanges(s.raw("responseHeaders"), s.at("responseHeaders"), "response") : undefined,
    };
  });
  if (sum !== 10_000) throw invalidConfig(splitter.at("splits"), `the weights must sum to 100, not ${(sum / 100).toFixed(2)}`);
  if (!splitter.has("sticky")) return { splits: compiled, sticky: undefined };
  const sticky = new Fields(splitter.raw("sticky"), splitter.at("sticky"), ["header", "cookie"]);
  const header = sticky.has("header") ? headerName(sticky.raw("header"), sticky.at("header")) : undefined;
  const cookie = sticky.string("cookie", { nonEmpty: true });
  if (sticky.has("header") === sticky.has("cookie")) throw invalidConfig(sticky.path, "give one of header or cookie");
  return { splits: compiled, sticky: header !== undefined ? { header } : { cookie: cookie ?? "" } };
}

function target(value: unknown, path: string): void {
  const t = new Fields(value, path, ["service", "subset", "datacenter", "namespace", "peer"]);
  serviceRef(t, "service");
  subsetRef(t, "subset");
  for (const key of ["datacenter", "namespace", "peer"]) t.string(key, { nonEmpty: true });
  if (["service", "subset", "datacenter", "namespace", "peer"].every((k) => !t.has(k))) throw invalidConfig(path, "name a service, subset, datacenter, namespace or peer");
}

function compileResolver(r: Fields, service: string): Map<string, CompiledSubset> {
  const subsets = r.record("subsets") ?? {};
  const compiled = new Map<string, CompiledSubset>();
  for (const [name, raw] of Object.entries(subsets)) {
    const path = `resolver.subsets.${name}`;
    if (!SUBSET_NAME.test(name)) throw invalidConfig(path, `${describe(name)} is not a valid subset name (a DNS label)`);
    const s = new Fields(raw, path, ["filter", "onlyPassing"]);
    const onlyPassing = s.boolean("onlyPassing") === true;
    const filter = s.string("filter");
    let predicate: FilterPredicate | undefined;
    if (filter !== undefined && filter !== "") {
      try {
        predicate = compileFilter(filter);
      } catch (err) {
        throw invalidConfig(s.at("filter"), `not a valid filter expression: ${(err as Error).message}`, { cause: err });
      }
    }
    compiled.set(name, { name, includes: (e) => (!onlyPassing || e.health === "passing") && (predicate === undefined || predicate(filterView(service, e))) });
  }
  const defaultSubset = r.string("defaultSubset");
  if (defaultSubset !== undefined && subsets[defaultSubset] === undefined) throw invalidConfig(r.at("defaultSubset"), `no subset named ${describe(defaultSubset)} is defined`);
  if (r.has("redirect")) {
    if (r.has("failover")) throw invalidConfig(r.at("redirect"), "a resolver has a redirect or failover, not both");
    target(r.raw("redirect"), r.at("redirect"));
    const redirect = r.record("redirect") ?? {};
    // As Consul: a redirect to a subset names the service too.
    if (redirect.subset !== undefined && redirect.service === undefined) throw invalidConfig(`${r.at("redirect")}.subset`, "a redirect to a subset names its service too");
  }
  for (const [key, raw] of Object.entries(r.record("failover") ?? {})) {
    const path = `resolver.failover.${key}`;
    if (key !== "*" && subsets[key] === undefined) throw invalidConfig(path, `failover for ${describe(key)}, which is not a subset (use "*" for any)`);
    const f = new Fields(raw, path, ["targets"]);
    const targets = f.array("targets");
    if (targets === undefined || targets.length === 0) throw invalidConfig(f.at("targets"), "expected at least one target");
    targets.forEach((t, i) => target(t, `${path}.targets[${i}]`));
  }
  r.number("connectTimeoutMs", 0, MAX_MS);
  r.number("requestTimeoutMs", 0, MAX_MS);
  return compiled;
}

/** An endpoint as Consul's filter expressions see an instance (`Service.Tags`, `Service.Meta.version`, ...). */
function filterView(service: string, e: Endpoint): unknown {
  const [node, id] = e.id.includes("/") ? [e.id.slice(0, e.id.indexOf("/")), e.id.slice(e.id.indexOf("/") + 1)] : ["", e.id];
  return {
    Service: { ID: id, Service: service, Tags: e.tags, Meta: e.meta, Address: e.address, Port: e.port, Weights: { Passing: e.weights.passing, Warning: e.weights.warning } },
    Node: { Node: node, Address: e.address },
    Checks: [{ Status: e.health }],
  };
}

function upstreamPolicy(value: unknown, path: string): void {
  const u = new Fields(value, path, ["limits", "passiveHealthCheck", "connectTimeoutMs"]);
  u.number("connectTimeoutMs", 0, MAX_MS);
  if (u.has("limits")) {
    const l = new Fields(u.raw("limits"), u.at("limits"), ["maxConnections", "maxPendingRequests", "maxConcurrentRequests"]);
    for (const k of ["maxConnections", "maxPendingRequests", "maxConcurrentRequests"]) l.number(k, 0, 1_000_000_000, true);
  }
  if (u.has("passiveHealthCheck")) {
    const p = new Fields(u.raw("passiveHealthCheck"), u.at("passiveHealthCheck"), ["intervalMs", "maxFailures", "enforcingConsecutive5xx", "maxEjectionPercent", "baseEjectionTimeMs"]);
    p.number("intervalMs", 0, MAX_MS);
    p.number("maxFailures", 0, 1_000_000, true);
    p.number("enforcingConsecutive5xx", 0, 100);
    p.number("maxEjectionPercent", 0, 100);
    p.number("baseEjectionTimeMs", 0, MAX_MS);
  }
}

function validateDefaults(d: Fields): void {
  const protocol = d.string("protocol");
  if (protocol !== undefined && !PROTOCOLS.has(protocol)) throw invalidConfig(d.at("protocol"), `${describe(protocol)} is not a protocol (known: ${[...PROTOCOLS].join(", ")})`);
  if (d.has("upstreamDefaults")) upstreamPolicy(d.raw("upstreamDefaults"), d.at("upstreamDefaults"));
  for (const [name, raw] of Object.entries(d.record("upstreamOverrides") ?? {})) upstreamPolicy(raw, `defaults.upstreamOverrides.${name}`);
}

/** A deep copy of plain config data, frozen. */
function frozenCopy(input: unknown): unknown {
  let copy: unknown;
  try {
    copy = structuredClone(input);
  } catch (err) {
    throw invalidConfig("config", "expected plain data (objects, arrays, strings, numbers, booleans)", { cause: err });
  }
  return deepFreeze(copy);
}

function deepFreeze(value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

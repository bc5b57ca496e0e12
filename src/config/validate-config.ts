import { invalidConfig } from "../core/errors.ts";
import { assertServiceName } from "../core/service-name.ts";
import { describe } from "../core/validate.ts";
import type { ServiceConfig } from "./service-config.ts";
import { PROTOCOLS, RETRY_CONDITIONS, ROUTE_METHODS, SUBSET_NAME } from "./consul-vocabulary.ts";
import { compileFilter } from "./filter-expression.ts";
import { compileRe2 } from "./re2-pattern.ts";

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
 * redirect and failover not both). Regular expressions and filters are compiled to check them.
 * What spans services (other services' subsets and protocols, loops) is checked when the config is
 * applied, against the configs the mesh holds (`discovery-chain-check.ts`), and when a request is routed.
 *
 * @param config - the config, as a registry delivered it
 * @param service - the service it configures, for messages
 * @returns the same config
 * @throws MeshError `ERR_INVALID_CONFIG` whose `details.field` names the field at fault (`router.routes[2].match.pathPrefix`)
 */
export function validateServiceConfig(config: unknown, service: string): ServiceConfig {
  const c = new Fields(config, "config", ["loadBalancer", "router", "splitter", "resolver", "defaults"]);
  if (c.has("router")) validateRouter(new Fields(c.raw("router"), "router", ["routes"]));
  if (c.has("splitter")) validateSplitter(new Fields(c.raw("splitter"), "splitter", ["splits", "sticky"]), service);
  if (c.has("resolver")) validateResolver(new Fields(c.raw("resolver"), "resolver", ["subsets", "defaultSubset", "redirect", "failover", "connectTimeoutMs", "requestTimeoutMs"]));
  if (c.has("defaults")) validateDefaults(new Fields(c.raw("defaults"), "defaults", ["protocol", "upstreamDefaults", "upstreamOverrides"]));
  return config as ServiceConfig;
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

function validateHeaderChanges(value: unknown, path: string): void {
  const f = new Fields(value, path, ["add", "set", "remove"]);
  for (const key of ["add", "set"]) {
    for (const [name, v] of Object.entries(f.record(key) ?? {})) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw invalidConfig(`${path}.${key}`, `${describe(name)} is not a valid header name`);
      if (typeof v !== "string" || /[\r\n\0]/.test(v)) throw invalidConfig(`${path}.${key}.${name}`, `expected a string without CR, LF or NUL, got ${describe(v)}`);
    }
  }
  (f.array("remove") ?? []).forEach((name, i) => {
    if (typeof name !== "string" || name === "") throw invalidConfig(`${path}.remove[${i}]`, `expected a header name, got ${describe(name)}`);
  });
}

function oneOf(f: Fields, keys: readonly string[], path: string): void {
  const set = keys.filter((k) => f.has(k) && f.raw(k) !== false);
  if (set.length > 1) throw invalidConfig(path, `give only one of ${keys.join(", ")} (got ${set.join(" and ")})`);
}

function validateRouter(router: Fields): void {
  const routes = router.array("routes");
  if (routes === undefined) throw invalidConfig(router.at("routes"), "expected an array of routes");
  routes.forEach((raw, i) => {
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
        d.string("header", { nonEmpty: true });
      }
      if (f.has("abort")) {
        const a = new Fields(f.raw("abort"), f.at("abort"), ["status", "percent", "header"]);
        if (!a.has("status")) throw invalidConfig(a.at("status"), "expected the status to answer, such as 503");
        a.number("status", 200, 599, true);
        a.number("percent", 0, 100);
        a.string("header", { nonEmpty: true });
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
      const insensitive = m.boolean("caseInsensitive") === true;
      const pathRegex = m.string("pathRegex");
      if (pathRegex !== undefined) compileRe2(pathRegex, m.at("pathRegex"), { caseInsensitive: insensitive });
      (m.array("headers") ?? []).forEach((h, j) => {
        const header = new Fields(h, `${m.path}.headers[${j}]`, ["name", "present", "exact", "prefix", "suffix", "regex", "invert"]);
        header.string("name", { required: true, nonEmpty: true });
        header.boolean("present");
        header.boolean("invert");
        for (const k of ["exact", "prefix", "suffix"]) header.string(k);
        oneOf(header, ["present", "exact", "prefix", "suffix", "regex"], header.path);
        const r = header.string("regex");
        if (r !== undefined) compileRe2(r, header.at("regex"));
      });
      (m.array("query") ?? []).forEach((q, j) => {
        const param = new Fields(q, `${m.path}.query[${j}]`, ["name", "present", "exact", "regex"]);
        param.string("name", { required: true, nonEmpty: true });
        param.boolean("present");
        param.string("exact");
        oneOf(param, ["present", "exact", "regex"], param.path);
        const r = param.string("regex");
        if (r !== undefined) compileRe2(r, param.at("regex"));
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
      if (d.string("prefixRewrite") !== undefined && !hasPathMatch) {
        throw invalidConfig(d.at("prefixRewrite"), "a prefix rewrite needs a pathExact or pathPrefix match to replace");
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
      if (d.has("requestHeaders")) validateHeaderChanges(d.raw("requestHeaders"), d.at("requestHeaders"));
      if (d.has("responseHeaders")) validateHeaderChanges(d.raw("responseHeaders"), d.at("responseHeaders"));
    }
  });
}

function validateSplitter(splitter: Fields, service: string): void {
  const splits = splitter.array("splits");
  if (splits === undefined || splits.length === 0) throw invalidConfig(splitter.at("splits"), "expected at least one split");
  const seen = new Set<string>();
  let sum = 0;
  splits.forEach((raw, i) => {
    const s = new Fields(raw, `splitter.splits[${i}]`, ["weight", "service", "subset", "requestHeaders", "responseHeaders"]);
    if (!s.has("weight")) throw invalidConfig(s.at("weight"), "expected a weight from 0 to 100");
    const weight = s.number("weight", 0, 100) ?? 0;
    sum += Math.round(weight * 100);
    serviceRef(s, "service");
    subsetRef(s, "subset");
    const key = `${s.string("service") ?? service}/${s.string("subset") ?? ""}`;
    if (seen.has(key)) throw invalidConfig(s.path, `the destination ${key} occurs more than once`);
    seen.add(key);
    if (s.has("requestHeaders")) validateHeaderChanges(s.raw("requestHeaders"), s.at("requestHeaders"));
    if (s.has("responseHeaders")) validateHeaderChanges(s.raw("responseHeaders"), s.at("responseHeaders"));
  });
  if (sum !== 10_000) throw invalidConfig(splitter.at("splits"), `the weights must sum to 100, not ${(sum / 100).toFixed(2)}`);
  if (splitter.has("sticky")) {
    const sticky = new Fields(splitter.raw("sticky"), splitter.at("sticky"), ["header", "cookie"]);
    sticky.string("header", { nonEmpty: true });
    sticky.string("cookie", { nonEmpty: true });
    if (sticky.has("header") === sticky.has("cookie")) throw invalidConfig(sticky.path, "give one of header or cookie");
  }
}

function target(value: unknown, path: string): void {
  const t = new Fields(value, path, ["service", "subset", "datacenter", "namespace", "peer"]);
  serviceRef(t, "service");
  subsetRef(t, "subset");
  for (const key of ["datacenter", "namespace", "peer"]) t.string(key, { nonEmpty: true });
  if (["service", "subset", "datacenter", "namespace", "peer"].every((k) => !t.has(k))) throw invalidConfig(path, "name a service, subset, datacenter, namespace or peer");
}

function validateResolver(r: Fields): void {
  const subsets = r.record("subsets") ?? {};
  for (const [name, raw] of Object.entries(subsets)) {
    const path = `resolver.subsets.${name}`;
    if (!SUBSET_NAME.test(name)) throw invalidConfig(path, `${describe(name)} is not a valid subset name (a DNS label)`);
    const s = new Fields(raw, path, ["filter", "onlyPassing"]);
    s.boolean("onlyPassing");
    const filter = s.string("filter");
    if (filter !== undefined && filter !== "") {
      try {
        compileFilter(filter);
      } catch (err) {
        throw invalidConfig(s.at("filter"), `not a valid filter expression: ${(err as Error).message}`, { cause: err });
      }
    }
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

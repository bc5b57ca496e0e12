import { compileFilter } from "../../config/filter-expression.ts";
import { RESOLVER_POLICIES as POLICIES, RETRY_CONDITIONS as RETRY_ON, ROUTE_METHODS as METHODS } from "../../config/consul-vocabulary.ts";
import { parseGoDuration } from "../../config/duration.ts";
import { chainProblem } from "./chain-check.ts";

/** A config entry as stored: Consul's JSON plus its indexes. */
export type ConfigEntry = Record<string, unknown> & { Kind: string; Name: string; CreateIndex: number; ModifyIndex: number };

/** A write Consul refuses, with the status and plain-text message it answers. @internal */
export class ConfigEntryError extends Error {
  /** The HTTP status Consul answers with. */
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const KINDS = new Set([
  "service-defaults",
  "proxy-defaults",
  "service-router",
  "service-splitter",
  "service-resolver",
  "service-intentions",
  "mesh",
  "ingress-gateway",
  "terminating-gateway",
  "api-gateway",
  "exported-services",
  "sameness-group",
]);

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const invalid = (message: string): ConfigEntryError => new ConfigEntryError(500, message);

/**
 * The config entries of a fake Consul, validated as Consul validates them: each entry's own rules,
 * then the discovery-chain checks of Consul's graph validation (see {@link chainProblem}). @internal
 */
export class ConfigEntries {
  readonly #entries = new Map<string, ConfigEntry>();
  /** The index of the last write (deletes included) to each kind: it only rises, as Consul's tables do. */
  readonly #kindIndex = new Map<string, number>();

  /** An entry, or undefined. */
  get(kind: string, name: string): ConfigEntry | undefined {
    return this.#entries.get(`${kind}/${name}`);
  }

  /** Every entry of a kind, by name. */
  list(kind: string): ConfigEntry[] {
    return [...this.#entries.values()].filter((e) => e.Kind === kind).sort((a, b) => a.Name.localeCompare(b.Name));
  }

  /** What a blocking read reports: an entry's ModifyIndex, or for a list or a missing entry the kind's last write. */
  index(kind: string, name?: string): number {
    const entry = name === undefined ? undefined : this.get(kind, name);
    return entry?.ModifyIndex ?? this.#kindIndex.get(kind) ?? 0;
  }

  /**
   * Validates and stores an entry; false on a `cas` mismatch (as Consul answers `false`).
   *
   * @param body - the request body
   * @param index - the index to stamp the entry with
   * @param cas - the `?cas` parameter, if given
   */
  apply(body: string, index: number, cas: number | undefined): boolean {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw new ConfigEntryError(400, `Request decoding failed: ${(err as Error).message}`);
    }
    const entry = obj(parsed);
    if (entry === undefined) throw new ConfigEntryError(400, "Request decoding failed: expected a JSON object");
    const kind = str(entry.Kind);
    if (!KINDS.has(kind)) throw new ConfigEntryError(400, `Request decoding failed: invalid config entry kind: ${kind}`);
    const name = str(entry.Name);
    if (name === "") throw invalid("Name is required");
    if (kind === "proxy-defaults" && name !== "global") throw invalid(`invalid name ("${name}"), only "global" is supported`);
    if (kind === "mesh" && name !== "mesh") throw invalid(`invalid name ("${name}"), only "mesh" is supported`);
    if (kind === "service-router") validateRouter(entry);
    if (kind === "service-splitter") validateSplitter(entry, name);
    if (kind === "service-resolver") validateResolver(entry);
    const previous = this.get(kind, name);
    if (cas !== undefined && (previous?.ModifyIndex ?? 0) !== cas) return false;
    const stored: ConfigEntry = { ...entry, Kind: kind, Name: name, CreateIndex: previous?.CreateIndex ?? index, ModifyIndex: index };
    // The discovery-chain checks look at the catalog as it would be with the new entry in it.
    const before = this.#entries.get(`${kind}/${name}`);
    this.#entries.set(`${kind}/${name}`, stored);
    try {
      this.#checkChains();
    } catch (err) {
      if (before === undefined) this.#entries.delete(`${kind}/${name}`);
      else this.#entries.set(`${kind}/${name}`, before);
      throw err;
    }
    this.#kindIndex.set(kind, index);
    return true;
  }

  /** Deletes an entry at `index`; false on a `cas` mismatch. */
  delete(kind: string, name: string, cas: number | undefined, index: number): boolean {
    const previous = this.get(kind, name);
    if (cas !== undefined && (previous?.ModifyIndex ?? 0) !== cas) return false;
    if (previous === undefined) return true;
    this.#entries.delete(`${kind}/${name}`);
    try {
      this.#checkChains();
    } catch (err) {
      this.#entries.set(`${kind}/${name}`, previous);
      throw err;
    }
    this.#kindIndex.set(kind, index);
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear();
    this.#kindIndex.clear();
  }

  #checkChains(): void {
    const problem = chainProblem(this);
    if (problem !== undefined) throw invalid(problem);
  }
}

function validateRouter(entry: Json): void {
  arr(entry.Routes).forEach((raw, i) => {
    const route = obj(raw) ?? {};
    const http = obj(obj(route.Match)?.HTTP) ?? {};
    const paths = ["PathExact", "PathPrefix", "PathRegex"].filter((k) => str(http[k]) !== "");
    if (paths.length > 1) throw invalid(`Route[${i}] should only contain at most one of PathExact, PathPrefix, or PathRegex`);
    for (const k of ["PathExact", "PathPrefix"]) {
      if (str(http[k]) !== "" && !str(http[k]).startsWith("/")) throw invalid(`Route[${i}] ${k} doesn't start with '/'`);
    }
    arr(http.Header).forEach((h, j) => {
      const header = obj(h) ?? {};
      if (str(header.Name) === "") throw invalid(`Route[${i}] Header[${j}] missing required Name field`);
      const set = ["Present", "Exact", "Prefix", "Suffix", "Regex"].filter((k) => header[k] !== undefined && header[k] !== "" && header[k] !== false);
      if (set.length > 1) throw invalid(`Route[${i}] Header[${j}] should only contain one of Present, Exact, Prefix, Suffix, or Regex`);
    });
    arr(http.QueryParam).forEach((q, j) => {
      const param = obj(q) ?? {};
      if (str(param.Name) === "") throw invalid(`Route[${i}] QueryParam[${j}] missing required Name field`);
      const set = ["Present", "Exact", "Regex"].filter((k) => param[k] !== undefined && param[k] !== "" && param[k] !== false);
      if (set.length > 1) throw invalid(`Route[${i}] QueryParam[${j}] should only contain one of Present, Exact, or Regex`);
    });
    const seen = new Set<string>();
    for (const m of arr(http.Methods)) {
      const method = str(m);
      if (!METHODS.has(method)) throw invalid(`Route[${i}] Methods contains an invalid method "${method}"`);
      if (seen.has(method)) throw invalid(`Route[${i}] Methods contains "${method}" more than once`);
      seen.add(method);
    }
    const destination = obj(route.Destination) ?? {};
    if (str(destination.PrefixRewrite) !== "" && str(http.PathExact) === "" && str(http.PathPrefix) === "") {
      throw invalid(`Route[${i}] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix`);
    }
    for (const c of arr(destination.RetryOn)) {
      if (!RETRY_ON.has(str(c))) throw invalid(`Route[${i}] contains an invalid retry condition: "${str(c)}"`);
    }
  });
}

function validateSplitter(entry: Json, name: string): void {
  const splits = arr(entry.Splits).map((s) => obj(s) ?? {});
  if (splits.length === 0) throw invalid("no splits configured");
  const seen = new Set<string>();
  let sum = 0;
  for (const split of splits) {
    const weight = typeof split.Weight === "number" ? Math.round(split.Weight * 100) / 100 : 0;
    sum += weight;
    const key = `service=${str(split.Service) === "" ? name : str(split.Service)}, subset=${str(split.ServiceSubset)}, namespace=${str(split.Namespace)}, partition=${str(split.Partition)}`;
    if (seen.has(key)) throw invalid(`split destination occurs more than once: ${key}`);
    seen.add(key);
  }
  sum = Math.round(sum * 100) / 100;
  if (sum !== 100) throw invalid(`the sum of all split weights must be 100, not ${sum.toFixed(6)}`);
}

function validateResolver(entry: Json): void {
  const subsets = obj(entry.Subsets) ?? {};
  for (const [name, raw] of Object.entries(subsets)) {
    if (name === "") throw invalid("Subset defined with empty name");
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) throw invalid(`Subset "${name}" is invalid: must be a valid DNS subdomain label`);
    const filter = str(obj(raw)?.Filter);
    if (filter !== "") {
      try {
        compileFilter(filter);
      } catch (err) {
        throw invalid(`Filter for subset "${name}" is not a valid expression: ${(err as Error).message}`);
      }
    }
  }
  const defaultSubset = str(entry.DefaultSubset);
  if (defaultSubset !== "" && subsets[defaultSubset] === undefined) throw invalid(`DefaultSubset "${defaultSubset}" is not a valid subset`);
  const redirect = obj(entry.Redirect);
  const failover = obj(entry.Failover);
  if (redirect !== undefined && failover !== undefined && Object.keys(failover).length > 0) throw invalid("Redirect and Failover cannot both be set");
  if (redirect !== undefined && !Object.values(redirect).some((v) => v !== "" && v !== undefined)) throw invalid("Redirect is empty");
  for (const [key, raw] of Object.entries(failover ?? {})) {
    if (key !== "*" && subsets[key] === undefined) throw invalid(`Bad Failover["${key}"]: not a valid subset subset`);
    const f = obj(raw) ?? {};
    const targets = arr(f.Targets);
    const datacenters = arr(f.Datacenters);
    if (str(f.Service) === "" && str(f.ServiceSubset) === "" && str(f.Namespace) === "" && targets.length === 0 && datacenters.length === 0) {
      throw invalid(`Bad Failover["${key}"]: one of Service, ServiceSubset, Namespace, Targets, or Datacenters is required`);
    }
    if (targets.length > 0 && datacenters.length > 0) throw invalid(`Bad Failover["${key}"]: Targets cannot be set with Datacenters`);
    if (datacenters.some((dc) => str(dc) === "")) throw invalid(`Bad Failover["${key}"].Datacenters: found empty datacenter`);
  }
  for (const k of ["ConnectTimeout", "RequestTimeout"]) {
    const value = entry[k];
    if (value !== undefined && (typeof value !== "string" || parseGoDuration(value) === undefined)) throw invalid(`Bad ${k} '${JSON.stringify(value)}', must be >= 0`);
  }
  const policy = str(obj(entry.LoadBalancer)?.Policy);
  if (!POLICIES.has(policy)) throw invalid(`Bad LoadBalancer policy: "${policy}" is not supported`);
}

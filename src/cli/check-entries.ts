import { MeshError } from "../core/errors.ts";
import { checkDiscoveryChains, type KnownConfigs } from "../config/discovery-chain-check.ts";
import { decodeConsulEntry } from "../config/decode-consul.ts";
import type { ServiceConfig } from "../config/service-config.ts";
import { intentionProblems, type IntentionSource } from "../security/consul-authorizer.ts";

/** A config entry to check, and where it came from (a file, or Consul). */
export interface SourcedEntry {
  /** `orders.json`, `orders.json[2]`, or `consul` */
  readonly source: string;
  /** The entry as parsed JSON. */
  readonly entry: unknown;
}

/** One problem `proxyless check` reports. */
export interface CheckProblem {
  /** Where the entry came from. */
  readonly source: string;
  /** `kind/name`, or `?` when the entry has none readable. */
  readonly entry: string;
  /** The field at fault (Consul's spelling), or `""`. */
  readonly field: string;
  /** What is wrong, and what would fix it. */
  readonly message: string;
}

/**
 * Checks config entries exactly as the mesh would apply them: each router, splitter, resolver and
 * defaults entry decoded and compiled by the mesh's own compiler, then every service's discovery chain
 * checked across the set (protocols, subsets, redirect and split loops), and each `service-intentions`
 * entry's sources compiled as the authorizer compiles them. Collects every problem rather than
 * stopping at the first. @internal
 */
export function checkEntries(entries: readonly SourcedEntry[]): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const configs = new Map<string, ServiceConfig>();
  const origin = new Map<string, string>();
  const seen = new Set<string>();
  for (const { source, entry } of entries) {
    const kind = (entry as { Kind?: unknown } | null)?.Kind;
    const name = (entry as { Name?: unknown } | null)?.Name;
    const label = `${typeof kind === "string" ? kind : "?"}/${typeof name === "string" ? name : "?"}`;
    if (kind === "service-intentions") {
      problems.push(...checkIntentions(source, label, entry as { Name?: unknown; Sources?: unknown }));
      continue;
    }
    try {
      const decoded = decodeConsulEntry(entry);
      if (decoded.namespace !== "default") continue;
      const key = `${decoded.kind}/${decoded.name}`;
      if (seen.has(key)) {
        problems.push({ source, entry: key, field: "Name", message: `the same entry is given twice (also in ${origin.get(decoded.name) ?? "?"})` });
        continue;
      }
      seen.add(key);
      origin.set(decoded.name, source);
      configs.set(decoded.name, { ...configs.get(decoded.name), ...decoded.config });
    } catch (err) {
      problems.push(problemOf(source, label, err));
    }
  }
  // The chains across the set: each service's own, as Consul checks a write against the chains it changes.
  const known: KnownConfigs = { configOf: (s) => configs.get(s), services: () => configs.keys() };
  for (const [service, config] of configs) {
    try {
      checkDiscoveryChains(service, config, known);
    } catch (err) {
      problems.push(problemOf(origin.get(service) ?? "?", `chain/${service}`, err));
    }
  }
  return problems;
}

function checkIntentions(source: string, label: string, entry: { Name?: unknown; Sources?: unknown }): CheckProblem[] {
  if (typeof entry.Name !== "string" || entry.Name === "") return [{ source, entry: label, field: "Name", message: "a service-intentions entry needs a Name" }];
  if (entry.Sources !== undefined && !Array.isArray(entry.Sources)) return [{ source, entry: label, field: "Sources", message: "expected a list of sources" }];
  const sources = (entry.Sources ?? []) as readonly IntentionSource[];
  const bad = sources.findIndex((s) => s === null || typeof s !== "object" || typeof s.Name !== "string");
  if (bad !== -1) return [{ source, entry: label, field: `Sources[${String(bad)}].Name`, message: "each source needs a Name (a service, or *)" }];
  return intentionProblems(sources).map((err) => problemOf(source, label, err));
}

function problemOf(source: string, label: string, err: unknown): CheckProblem {
  if (!(err instanceof MeshError)) return { source, entry: label, field: "", message: err instanceof Error ? err.message : String(err) };
  const entry = typeof err.details.entry === "string" ? err.details.entry : label;
  let field = typeof err.details.field === "string" ? err.details.field : "";
  // The entry and field are printed beside the message: the prefixes that name them again go, the innermost field stays.
  let message = err.message;
  for (let prefix = PREFIX.exec(message); prefix !== null; prefix = PREFIX.exec(message)) {
    field = prefix[1] ?? field;
    message = message.slice(prefix[0].length);
  }
  return { source, entry, field, message };
}

/** How the compiler's messages begin: `Invalid configuration at 'field': `, `Invalid config entry kind "name" at 'field': `. */
const PREFIX = /^Invalid (?:config entry \S+ "[^"]*"|configuration|intention) at '([^']*)': /;

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
  /** Where each entry (`kind/name`) was first given, and where each service's entries are. */
  const origin = new Map<string, string>();
  const sources = new Map<string, Set<string>>();
  for (const { source, entry } of entries) {
    const top = entry !== null && typeof entry === "object" && !Array.isArray(entry) ? (entry as { Kind?: unknown; Name?: unknown; Namespace?: unknown; Partition?: unknown }) : {};
    const label = `${typeof top.Kind === "string" ? top.Kind : "?"}/${typeof top.Name === "string" ? top.Name : "?"}`;
    // Entries of another namespace or partition configure other services: the mesh skips them, and so does check.
    if ((typeof top.Namespace === "string" && top.Namespace !== "" && top.Namespace !== "default") || (typeof top.Partition === "string" && top.Partition !== "" && top.Partition !== "default")) continue;
    const key = label;
    const first = origin.get(key);
    if (first !== undefined && !key.includes("?")) {
      problems.push({ source, entry: key, field: "Name", message: `the same entry is given twice (first in ${first})` });
      continue;
    }
    origin.set(key, source);
    if (top.Kind === "service-intentions") {
      problems.push(...checkIntentions(source, label, entry as { Name?: unknown; Sources?: unknown }));
      continue;
    }
    try {
      const decoded = decodeConsulEntry(entry);
      configs.set(decoded.name, { ...configs.get(decoded.name), ...decoded.config });
      const seen = sources.get(decoded.name) ?? new Set<string>();
      sources.set(decoded.name, seen.add(source));
    } catch (err) {
      problems.push(problemOf(source, label, err));
    }
  }
  // Each service's own chain across the set, once (linear in the services): every chain of the set is
  // some service's own, and the set as a whole is what Consul would hold.
  for (const [service, config] of configs) {
    const known: KnownConfigs = { configOf: (s) => (s === service ? undefined : configs.get(s)), services: () => [] };
    try {
      checkDiscoveryChains(service, config, known);
    } catch (err) {
      problems.push(problemOf([...(sources.get(service) ?? [])].join(", "), `chain/${service}`, err));
    }
  }
  return problems;
}

function checkIntentions(source: string, label: string, entry: { Name?: unknown; Sources?: unknown }): CheckProblem[] {
  if (typeof entry.Name !== "string" || entry.Name === "") return [{ source, entry: label, field: "Name", message: "a service-intentions entry needs a Name" }];
  if (entry.Sources !== undefined && !Array.isArray(entry.Sources)) return [{ source, entry: label, field: "Sources", message: "expected a list of sources" }];
  const sources = (entry.Sources ?? []) as readonly IntentionSource[];
  const problems: CheckProblem[] = [];
  const named = new Set<string>();
  for (const [i, s] of sources.entries()) {
    if (s === null || typeof s !== "object" || typeof s.Name !== "string" || s.Name === "") return [{ source, entry: label, field: `Sources[${String(i)}].Name`, message: "each source needs a Name (a service, or *)" }];
    const who = JSON.stringify([s.Name, s.Namespace, s.Partition, s.Peer, s.SamenessGroup]);
    if (named.has(who)) problems.push({ source, entry: label, field: `Sources[${String(i)}]`, message: `the source '${s.Name}' is given twice` });
    named.add(who);
    const permissions = s.Permissions as readonly { Action?: unknown }[] | undefined;
    const hasPermissions = Array.isArray(permissions) && permissions.length > 0;
    if (!hasPermissions && s.Action !== "allow" && s.Action !== "deny") problems.push({ source, entry: label, field: `Sources[${String(i)}].Action`, message: `expected allow or deny (or Permissions), got ${JSON.stringify(s.Action) ?? "nothing"}` });
    if (hasPermissions && s.Action !== undefined) problems.push({ source, entry: label, field: `Sources[${String(i)}].Action`, message: "a source has an Action or Permissions, not both" });
    const list: readonly unknown[] = hasPermissions ? permissions : [];
    for (const [j, p] of list.entries()) {
      // The authorizer allows on "allow" only: any other Action would deny without saying so.
      const action = p !== null && typeof p === "object" ? (p as { Action?: unknown }).Action : undefined;
      if (action !== "allow" && action !== "deny") problems.push({ source, entry: label, field: `Sources[${String(i)}].Permissions[${String(j)}].Action`, message: `expected allow or deny, got ${JSON.stringify(action) ?? "nothing"}` });
    }
  }
  return [...problems, ...intentionProblems(sources).map((err) => problemOf(source, label, err))];
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

import { invalidConfig } from "../core/errors.ts";
import { describe, expectOptions } from "../core/validate.ts";
import { hash32 } from "./hash.ts";

/** Where a hash-based balancer finds a request's affinity key (Consul's `HashPolicies`). */
export interface HashPolicy {
  /** `header`, `cookie` or `query_parameter`. */
  readonly field: "header" | "cookie" | "query_parameter";
  /** The header, cookie or query parameter name. Header names match case-insensitively. */
  readonly name: string;
  /** When this policy finds a value, ignore the policies after it. Default false. */
  readonly terminal?: boolean;
}

/** What a hasher reads of a request. */
export interface HashableRequest {
  /** Path with query string. */
  readonly path: string;
  /** Request headers in any shape undici accepts. */
  readonly headers?: unknown;
}

/** Computes a request's hash, or undefined when none of its policies finds a value. */
export type RequestHasher = (request: HashableRequest) => number | undefined;

const FIELDS = ["header", "cookie", "query_parameter"] as const;

/**
 * Validates hash policies and compiles them into one hasher. As in Envoy, the hashes of every policy
 * that finds a value are combined (rotate and xor), stopping after a `terminal` one that matched.
 *
 * @param raw - the `hashPolicies` array from a balancer config
 * @param field - its config path, for error messages
 * @throws MeshError `ERR_INVALID_CONFIG` naming the entry at fault
 */
export function compileHashPolicies(raw: unknown, field: string): RequestHasher | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw invalidConfig(field, `expected an array of { field, name, terminal? }, got ${describe(raw)}`);
  const policies = (raw as unknown[]).map((entry, i): HashPolicy => {
    const at = `${field}[${i}]`;
    const o = expectOptions(entry, at, ["field", "name", "terminal"]);
    if (!FIELDS.includes(o.field as HashPolicy["field"])) {
      throw invalidConfig(`${at}.field`, `expected one of ${FIELDS.join(", ")}, got ${describe(o.field)}`);
    }
    if (typeof o.name !== "string" || o.name.length === 0) throw invalidConfig(`${at}.name`, "expected a non-empty string");
    if (o.terminal !== undefined && typeof o.terminal !== "boolean") throw invalidConfig(`${at}.terminal`, "expected a boolean");
    return { field: o.field as HashPolicy["field"], name: o.field === "header" ? o.name.toLowerCase() : o.name, terminal: o.terminal === true };
  });
  if (policies.length === 0) return undefined;
  return (request) => {
    let hash: number | undefined;
    for (const policy of policies) {
      const value = lookup(policy, request);
      if (value === undefined) continue;
      const h = hash32(value);
      hash = hash === undefined ? h : (((hash << 1) | (hash >>> 31)) ^ h) >>> 0;
      if (policy.terminal === true) break;
    }
    return hash;
  };
}

function lookup(policy: HashPolicy, request: HashableRequest): string | undefined {
  switch (policy.field) {
    case "header":
      return headerValue(request.headers, policy.name);
    case "cookie":
      return cookieValue(headerValue(request.headers, "cookie"), policy.name);
    case "query_parameter":
      return queryValue(request.path, policy.name);
  }
}

/**
 * The value of a header (lower-case `name`) in any shape undici accepts; several values are joined
 * with `,`. @internal
 */
export function headerValue(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== "object") return undefined;
  if (Array.isArray(headers)) {
    const flat = headers as readonly unknown[];
    if (flat.length > 0 && Array.isArray(flat[0])) return pairsValue(flat as Iterable<readonly unknown[]>, name);
    const found: unknown[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      if (String(flat[i]).toLowerCase() === name) found.push(flat[i + 1]);
    }
    return found.length === 0 ? undefined : headerText(found.length === 1 ? found[0] : found, name);
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    return pairsValue(headers as Iterable<readonly unknown[]>, name);
  }
  const record = headers as Record<string, unknown>;
  // for-in with a length check first: no array per call, and no lower-casing of names that cannot match.
  for (const key in record) {
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    const value = record[key];
    if (value !== undefined) return headerText(value, name);
  }
  return undefined;
}

function headerText(value: unknown, name = ""): string {
  if (typeof value === "string") return value;
  // Several Cookie headers join with "; " (RFC 6265), the others with ",".
  if (Array.isArray(value)) return (value as unknown[]).map((v) => headerText(v)).join(name === "cookie" ? "; " : ",");
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return "";
}

/** Every value of `name` among `[name, value]` pairs, combined as one header (a repeated header is a list). */
function pairsValue(pairs: Iterable<readonly unknown[]>, name: string): string | undefined {
  const found: unknown[] = [];
  for (const [key, value] of pairs) {
    if (String(key).toLowerCase() === name && value !== undefined) found.push(value);
  }
  return found.length === 0 ? undefined : headerText(found.length === 1 ? found[0] : found, name);
}

/** The value of cookie `name` in a `Cookie` header. @internal */
export function cookieValue(cookie: string | undefined, name: string): string | undefined {
  if (cookie === undefined) return undefined;
  for (const part of cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The first value of query parameter `name` in a path with query string. @internal */
export function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf("?");
  if (q < 0) return undefined;
  return new URLSearchParams(path.slice(q + 1)).get(name) ?? undefined;
}

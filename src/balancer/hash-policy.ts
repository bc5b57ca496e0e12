import { invalidConfig } from "../core/errors.ts";
import { describe, expectOptions } from "../core/validate.ts";
import { headerValue } from "../core/headers.ts";
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

/**
 * Computes a request's hash, or undefined when none of its policies finds a value. `host` is the `Host`
 * the request goes with when its headers name none (the service's pool sends it): a policy on the
 * `host` header reads it.
 */
export type RequestHasher = (request: HashableRequest, host?: string) => number | undefined;

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
  return (request, host) => {
    let hash: number | undefined;
    for (const policy of policies) {
      const value = lookup(policy, request, host);
      if (value === undefined) continue;
      const h = hash32(value);
      hash = hash === undefined ? h : (((hash << 1) | (hash >>> 31)) ^ h) >>> 0;
      if (policy.terminal === true) break;
    }
    return hash;
  };
}

function lookup(policy: HashPolicy, request: HashableRequest, host: string | undefined): string | undefined {
  switch (policy.field) {
    case "header":
      return headerValue(request.headers, policy.name) ?? (policy.name === "host" ? host : undefined);
    case "cookie":
      return cookieValue(headerValue(request.headers, "cookie"), policy.name);
    case "query_parameter":
      return queryValue(request.path, policy.name);
  }
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

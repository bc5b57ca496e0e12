import type { AuthorizationDecision, Authorizer, CompiledPermission, IntentionPermission } from "./authorization.ts";
import { compilePermission } from "./authorization.ts";

/** One source of a `service-intentions` entry, as Consul writes it. */
export interface IntentionSource {
  /** The source service, or `*`. */
  readonly Name: string;
  /** `allow` or `deny` (L4 intentions). */
  readonly Action?: string;
  /** L7 permissions, in order; the first that matches decides. */
  readonly Permissions?: readonly IntentionPermission[];
}

/** What a registry that knows Consul Connect offers for authorizing callers. */
export interface ConnectAuthority {
  /** Consul's L4 answer (`POST /v1/agent/connect/authorize`). */
  authorize(target: string, clientCertUri: string, clientCertSerial: string): Promise<AuthorizationDecision>;
  /** The sources of the target's `service-intentions` entry, or undefined when it has none. */
  intentions(target: string): Promise<readonly IntentionSource[] | undefined>;
}

/** A source with its L7 permissions compiled. */
interface CompiledSource {
  readonly name: string;
  readonly permissions: readonly CompiledPermission[] | undefined;
}

/** Compiles the sources' permissions once, as they are loaded: no request compiles a regex. */
function compileSources(sources: readonly IntentionSource[] | undefined): readonly CompiledSource[] | undefined {
  return sources?.map((s, i) => ({
    name: s.Name,
    permissions:
      s.Permissions === undefined || (s.Permissions as unknown) === null
        ? undefined
        : Array.isArray(s.Permissions)
          ? (s.Permissions as readonly IntentionPermission[]).map((p, j) => compilePermission(p, `Sources[${i}].Permissions[${j}]`))
          : // Not a list, as Consul never writes it: one permission that denies.
            [{ allowed: false, invalid: `Invalid intention at 'Sources[${i}].Permissions': expected a list`, matches: () => true }],
  }));
}

/**
 * Authorizes callers of `target` with Consul's intentions: an intention with L7 `Permissions` for the
 * caller (or `*`) is evaluated here on the request's path, method and headers (Consul's authorize
 * endpoint treats those as deny); otherwise Consul's L4 authorize answers. Answers and the intentions
 * are cached for `cacheMs`; the intentions are compiled once per lookup (RE2 regexes), and a permission
 * whose regex RE2 rejects denies the requests that reach it. @internal
 */
export function consulAuthorizer(authority: ConnectAuthority, target: string, cacheMs: number, now: () => number = Date.now): Authorizer {
  let intentions: { readonly at: number; readonly value: Promise<readonly CompiledSource[] | undefined> } | undefined;
  const decisions = new Map<string, { readonly at: number; readonly value: Promise<AuthorizationDecision> }>();
  const fresh = (at: number): boolean => now() - at < cacheMs;
  return async (caller, request) => {
    if (intentions === undefined || !fresh(intentions.at)) {
      const value = authority.intentions(target).then(compileSources);
      intentions = { at: now(), value };
      // A failed lookup is not kept: the next request asks again.
      value.catch(() => {
        if (intentions?.value === value) intentions = undefined;
      });
    }
    const sources = await intentions.value;
    const source = sources?.find((s) => s.name === caller.service) ?? sources?.find((s) => s.name === "*");
    const permissions = source?.permissions;
    if (source !== undefined && permissions !== undefined && permissions.length > 0) {
      for (const [i, permission] of permissions.entries()) {
        if (permission.invalid !== undefined) {
          return { allowed: false, reason: `L7 intention ${source.name} => ${target}, permission ${i} cannot be evaluated, so it denies: ${permission.invalid}` };
        }
        if (permission.matches(request)) {
          const allowed = permission.allowed;
          return { allowed, reason: `L7 intention ${source.name} => ${target}, permission ${i} (${allowed ? "allow" : "deny"}) matches ${request.method} ${request.path}` };
        }
      }
      return { allowed: false, reason: `L7 intention ${source.name} => ${target}: no permission matches ${request.method} ${request.path}` };
    }
    const key = `${caller.spiffeId}|${caller.serialNumber}`;
    let cached = decisions.get(key);
    if (cached === undefined || !fresh(cached.at)) {
      if (decisions.size > 10_000) decisions.clear();
      const value = authority.authorize(target, caller.spiffeId, caller.serialNumber);
      cached = { at: now(), value };
      decisions.set(key, cached);
      value.catch(() => {
        if (decisions.get(key)?.value === value) decisions.delete(key);
      });
    }
    return cached.value;
  };
}

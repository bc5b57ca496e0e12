import { invalidConfig } from "../core/errors.ts";
import { describe } from "../core/validate.ts";
import { parseSpiffeId, sameSpiffeId, type Identity, type SpiffeParts } from "./identity.ts";

/**
 * Where this mesh's own workload sits: its trust domain, namespace and admin partition. A caller named
 * by service name alone (a local policy's `web`, an intention source without `Namespace` or
 * `Partition`) is that service here. @internal
 */
export interface LocalScope {
  /** The mesh's trust domain, lower case; undefined when its identity names none (then no plain name matches). */
  readonly trustDomain: string | undefined;
  /** The mesh's namespace: from its SPIFFE ID in Consul's layout, else `default`. */
  readonly namespace: string;
  /** The mesh's admin partition: from its SPIFFE ID in Consul's layout, else `default`. */
  readonly partition: string;
}

const scopes = new WeakMap<Identity, LocalScope>();

/** The scope of the mesh's current identity (computed once per identity). @internal */
export function localScopeOf(identity: Identity | undefined): LocalScope | undefined {
  if (identity === undefined) return undefined;
  let scope = scopes.get(identity);
  if (scope === undefined) {
    const own = identity.spiffeId === undefined ? undefined : parseSpiffeId(identity.spiffeId);
    scope = { trustDomain: identity.trustDomain?.toLowerCase() ?? own?.trustDomain, namespace: own?.namespace ?? "default", partition: own?.partition ?? "default" };
    scopes.set(identity, scope);
  }
  return scope;
}

/** Whether the caller is in the mesh's own trust domain (case-insensitively, as SPIFFE compares trust domains). @internal */
export function inLocalTrustDomain(caller: SpiffeParts, local: LocalScope | undefined): boolean {
  return local?.trustDomain !== undefined && caller.trustDomain.toLowerCase() === local.trustDomain;
}

/** The caller's admin partition: undefined outside Consul's layout, `default` without an `/ap/` segment. @internal */
export function partitionOf(caller: SpiffeParts): string | undefined {
  return caller.service === undefined ? undefined : (caller.partition ?? "default");
}

/** A local policy entry, compiled: whether it names a caller. @internal */
export type CallerPattern = (caller: SpiffeParts, local: LocalScope | undefined) => boolean;

/** A plain service name: the SPIFFE spec's path-segment characters. */
const PLAIN_NAME = /^[A-Za-z0-9._-]+$/;

/**
 * Compiles a local policy entry:
 * - `*`: any caller of the mesh's own trust domain;
 * - a full SPIFFE ID (`spiffe://td/ns/ns/dc/dc/svc/web`): that caller exactly, the trust domain
 *   case-insensitively and the path case-sensitively (any datacenter is a different ID: name each);
 * - a service name (`web`): that service in the mesh's own trust domain, namespace and partition, in
 *   any datacenter (as Consul's intention sources name services).
 *
 * @param entry - the entry
 * @param field - where it sits (`inbound.authorize.allow[0]`), for errors
 * @throws MeshError `ERR_INVALID_CONFIG` for an entry that is none of these
 * @internal
 */
export function compileCallerPattern(entry: unknown, field: string): CallerPattern {
  if (typeof entry !== "string") throw invalidConfig(field, `expected a service name, a SPIFFE ID or "*", got ${describe(entry)}`);
  if (entry === "*") return inLocalTrustDomain;
  if (entry.toLowerCase().startsWith("spiffe://")) {
    const id = parseSpiffeId(entry);
    if (id === undefined) {
      throw invalidConfig(field, `${JSON.stringify(entry)} is not a valid SPIFFE ID: expected spiffe://<trust-domain>/<path> with path segments of letters, digits, '.', '-' and '_' (no '.', '..', '%', query or fragment)`);
    }
    return (caller) => sameSpiffeId(caller, id);
  }
  if (!PLAIN_NAME.test(entry)) throw invalidConfig(field, `${JSON.stringify(entry)} is neither a service name (letters, digits, '.', '-', '_'), a spiffe:// ID, nor "*"`);
  return (caller, local) =>
    local !== undefined && caller.service === entry && inLocalTrustDomain(caller, local) && caller.namespace === local.namespace && partitionOf(caller) === local.partition;
}

import { MeshError, invalidConfig } from "../core/errors.ts";
import type { AuthorizationDecision, Authorizer, CallerIdentity, CompiledPermission, IntentionPermission } from "./authorization.ts";
import { compilePermission } from "./authorization.ts";
import { inLocalTrustDomain, partitionOf, type LocalScope } from "./caller-scope.ts";

/** One source of a `service-intentions` entry, as Consul writes it. */
export interface IntentionSource {
  /** The source service, or `*`. */
  readonly Name: string;
  /**
   * The source's namespace, or `*` (Consul Enterprise). Left out: the destination's, which is this
   * mesh's own (from its SPIFFE ID; `default` without one).
   */
  readonly Namespace?: string;
  /** The source's admin partition (Consul Enterprise). Left out: the destination's, which is this mesh's own. */
  readonly Partition?: string;
  /**
   * A cluster peer the source is in. proxyless cannot verify peers' trust bundles: such a source never
   * matches a caller (reported once as `config_rejected`), and callers from other trust domains are refused.
   */
  readonly Peer?: string;
  /**
   * A sameness group the source is in (Consul Enterprise). proxyless cannot resolve sameness groups:
   * such a source never matches (reported once as `config_rejected`), and a caller it may name is refused
   * rather than let through by a less specific L7 source.
   */
  readonly SamenessGroup?: string;
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
  /** How the source reads in reasons: `web`, `ns/web`, `ap/ns/web`. */
  readonly label: string;
  readonly name: string;
  /** Undefined: the destination's (this mesh's) namespace. */
  readonly namespace: string | undefined;
  /** Undefined: the destination's (this mesh's) partition. */
  readonly partition: string | undefined;
  /** The sameness group it names (never matched; a caller it may name is refused before a less specific L7 source). */
  readonly samenessGroup: string | undefined;
  /** Whether it names a peer or a sameness group, which proxyless cannot match. */
  readonly unsupported: boolean;
  /** Wildcards among namespace and name: fewer is more specific (Consul's precedence). */
  readonly wildcards: number;
  readonly permissions: readonly CompiledPermission[] | undefined;
}

/** Options of {@link consulAuthorizer}. @internal */
export interface ConsulAuthorizerOptions {
  /** How long answers and intentions are kept, in ms. */
  readonly cacheMs: number;
  /** The mesh's own scope now (trust domain, namespace, partition). */
  readonly local: () => LocalScope | undefined;
  /** Called once per intention source proxyless cannot honour (`Peer`, `SamenessGroup`). */
  readonly onUnsupported?: (error: MeshError) => void;
  /** The clock. Default `Date.now`. */
  readonly now?: () => number;
}

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** Compiles the sources' permissions once, as they are loaded (no request compiles a regex), most specific first. */
function compileSources(sources: readonly IntentionSource[] | undefined, report: (field: string, source: IntentionSource, problem: string) => void): readonly CompiledSource[] | undefined {
  const compiled = sources?.map((s, i): CompiledSource => {
    const name = s.Name;
    const namespace = text(s.Namespace);
    const partition = text(s.Partition);
    const peer = text(s.Peer);
    const samenessGroup = text(s.SamenessGroup);
    if (peer !== undefined) report(`Sources[${i}].Peer`, s, `names the cluster peer '${peer}': proxyless cannot verify a peer's trust bundle, so this source never matches (callers from other trust domains are refused). Authorize peered callers through a sidecar, or leave proxyless out of that path.`);
    if (samenessGroup !== undefined) report(`Sources[${i}].SamenessGroup`, s, `names the sameness group '${samenessGroup}': proxyless cannot resolve sameness groups, so this source never matches, and a caller it may name is refused unless a more specific source decides. Name the member partitions in sources of their own.`);
    return {
      label: [partition, namespace, name].filter((p) => p !== undefined).join("/"),
      name,
      namespace,
      partition,
      samenessGroup,
      unsupported: peer !== undefined || samenessGroup !== undefined,
      wildcards: (name === "*" ? 1 : 0) + (namespace === "*" ? 1 : 0),
      permissions:
        s.Permissions === undefined || (s.Permissions as unknown) === null
          ? undefined
          : Array.isArray(s.Permissions)
            ? (s.Permissions as readonly IntentionPermission[]).map((p, j) => compilePermission(p, `Sources[${i}].Permissions[${j}]`))
            : // Not a list, as Consul never writes it: one permission that denies.
              [{ allowed: false, invalid: `Invalid intention at 'Sources[${i}].Permissions': expected a list`, matches: () => true }],
    };
  });
  // Stable: among equally specific sources the first written comes first (Consul refuses such entries anyway).
  return compiled?.sort((a, b) => a.wildcards - b.wildcards);
}

/** Whether a source's namespace (or `*`) and name (or `*`) fit the caller; a source without `Namespace` has the mesh's own. */
function fits(source: CompiledSource, caller: CallerIdentity, local: LocalScope): boolean {
  const namespace = source.namespace ?? local.namespace;
  return (namespace === "*" || caller.namespace === namespace) && (source.name === "*" || source.name === caller.service);
}

/**
 * Whether a source names the caller, a caller of the mesh's own trust domain in Consul's layout: its
 * partition (the source's, or the mesh's own when left out), namespace and service, compared exactly
 * (case-sensitively, as SPIFFE paths are). The datacenter does not matter, as in Consul.
 */
function names(source: CompiledSource, caller: CallerIdentity, local: LocalScope): boolean {
  return !source.unsupported && partitionOf(caller) === (source.partition ?? local.partition) && fits(source, caller, local);
}

/**
 * Authorizes callers of `target` with Consul's intentions. The most specific source that names the
 * caller decides (exact names before `*`, exact namespaces before `*`; partition, namespace and trust
 * domain all count: `web` of another namespace, partition or trust domain is not `web`). A source with
 * L7 `Permissions` is evaluated here on the request's path, method and headers (Consul's authorize
 * endpoint treats those as deny); otherwise Consul's L4 authorize answers. A caller from another trust
 * domain, or whose SPIFFE ID is not in Consul's layout, is refused here: Consul names callers of the
 * local trust domain unless a source names a peer, which proxyless does not support.
 *
 * Answers and the intentions are cached for `cacheMs`; the intentions are compiled once per lookup (RE2
 * regexes), and a permission whose regex RE2 rejects denies the requests that reach it. @internal
 */
export function consulAuthorizer(authority: ConnectAuthority, target: string, options: ConsulAuthorizerOptions): Authorizer {
  const { cacheMs, local } = options;
  const now = options.now ?? Date.now;
  let intentions: { readonly at: number; readonly value: Promise<readonly CompiledSource[] | undefined> } | undefined;
  const decisions = new Map<string, { readonly at: number; readonly value: Promise<AuthorizationDecision> }>();
  const reported = new Set<string>();
  const report = (field: string, source: IntentionSource, problem: string): void => {
    const key = `${field}|${JSON.stringify([source.Name, source.Namespace, source.Partition, source.Peer, source.SamenessGroup])}`;
    if (reported.has(key) || reported.size > 1000) return;
    reported.add(key);
    options.onUnsupported?.(invalidConfig(`service-intentions '${target}' ${field}`, `the source '${source.Name}' ${problem}`));
  };
  const fresh = (at: number): boolean => now() - at < cacheMs;
  return async (caller, request) => {
    const scope = local();
    if (scope?.trustDomain === undefined) return { allowed: false, reason: `caller ${caller.spiffeId} refused: this mesh's own trust domain is not known, so no intention can name the caller` };
    if (!inLocalTrustDomain(caller, scope)) {
      return { allowed: false, reason: `caller ${caller.spiffeId} refused: its trust domain is not this mesh's (${scope.trustDomain}); intentions name callers of the local trust domain, and proxyless does not support peered sources` };
    }
    if (caller.service === undefined) return { allowed: false, reason: `caller ${caller.spiffeId} refused: its SPIFFE ID is not a Consul service identity (spiffe://<trust-domain>/[ap/<partition>/]ns/<ns>/dc/<dc>/svc/<name>)` };
    if (intentions === undefined || !fresh(intentions.at)) {
      const value = authority.intentions(target).then((s) => compileSources(s, report));
      intentions = { at: now(), value };
      // A failed lookup is not kept: the next request asks again.
      value.catch(() => {
        if (intentions?.value === value) intentions = undefined;
      });
    }
    const sources = await intentions.value;
    const source = sources?.find((s) => names(s, caller, scope));
    const permissions = source?.permissions;
    if (source !== undefined && permissions !== undefined && permissions.length > 0) {
      // A sameness group may hold the caller's partition: when such a source could name the caller and
      // is as specific as this one, Consul might decide by it; refuse rather than guess.
      const group = sources?.find((s) => s.samenessGroup !== undefined && s.wildcards <= source.wildcards && fits(s, caller, scope));
      if (group !== undefined) return { allowed: false, reason: `caller ${caller.spiffeId} refused: the intention source ${group.label} of sameness group '${group.samenessGroup ?? ""}' may name it, and proxyless cannot resolve sameness groups` };
      for (const [i, permission] of permissions.entries()) {
        if (permission.invalid !== undefined) {
          return { allowed: false, reason: `L7 intention ${source.label} => ${target}, permission ${i} cannot be evaluated, so it denies: ${permission.invalid}` };
        }
        if (permission.matches(request)) {
          const allowed = permission.allowed;
          return { allowed, reason: `L7 intention ${source.label} => ${target}, permission ${i} (${allowed ? "allow" : "deny"}) matches ${request.method} ${request.path}` };
        }
      }
      return { allowed: false, reason: `L7 intention ${source.label} => ${target}: no permission matches ${request.method} ${request.path}` };
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

/**
 * What the mesh would report about a `service-intentions` entry's sources, compiled as the authorizer
 * compiles them: sources it cannot honour (a peer, a sameness group) and L7 permissions that cannot be
 * evaluated (a regex RE2 refuses, a field of the wrong type), which deny the requests that reach them.
 * For `proxyless check`. @internal
 *
 * @param sources - the entry's `Sources`
 */
export function intentionProblems(sources: readonly IntentionSource[]): MeshError[] {
  const problems: MeshError[] = [];
  const compiled = compileSources(sources, (field, source, problem) => problems.push(invalidConfig(field, `the source '${source.Name}' ${problem}`)));
  for (const source of compiled ?? []) {
    for (const permission of source.permissions ?? []) {
      // The message names the permission's field (Sources[i].Permissions[j]...).
      if (permission.invalid !== undefined) problems.push(new MeshError("ERR_INVALID_CONFIG", `${permission.invalid} (such a permission denies every request that reaches it)`, { details: {} }));
    }
  }
  return problems;
}

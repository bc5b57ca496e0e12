import { compileMatch, type MatchableRequest, type RouteMatcher } from "../config/compile-match.ts";
import type { HeaderMatch, RouteMatch } from "../config/route-config.ts";
import { MeshError, invalidConfig } from "../core/errors.ts";
import { describe } from "../core/validate.ts";
import { headerValue } from "../core/headers.ts";
import { compileCallerPattern, type CallerPattern, type LocalScope } from "./caller-scope.ts";
import type { SpiffeParts } from "./identity.ts";

/** Who is calling: the SPIFFE ID from the caller's verified client certificate, and its parts. */
export interface CallerIdentity extends SpiffeParts {
  /** The caller's SPIFFE ID. */
  readonly spiffeId: string;
  /** The client certificate's serial number, hex. */
  readonly serialNumber: string;
}

/** What an authorizer sees of a request. */
export interface AuthorizationRequest {
  /** The method, upper case. */
  readonly method: string;
  /** The path, with the query; from `mesh.inbound()`, the normalized path (docs/security.md), the query as received. */
  readonly path: string;
  /** The request headers (node's object: lower-case names). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** An authorizer's answer. */
export interface AuthorizationDecision {
  /** Whether the call may go on. */
  readonly allowed: boolean;
  /** Why, for the 403 body and logs. */
  readonly reason: string;
}

/**
 * A local policy: callers by service name (`web`), full SPIFFE ID, or `*`. Deny wins over allow; a
 * caller that neither names is refused unless `default` is `allow`.
 *
 * - A service name means that service in this mesh's own trust domain, namespace and admin partition
 *   (read from the mesh's SPIFFE ID; `default` and `default` outside Consul's layout), in any
 *   datacenter: `web` from another trust domain, namespace or partition is not `web`.
 * - A SPIFFE ID (`spiffe://<trust-domain>/ns/<ns>/dc/<dc>/svc/<name>`) names exactly that caller:
 *   the scheme and trust domain compare case-insensitively, the path case-sensitively.
 * - `*` is any caller of this mesh's own trust domain.
 */
export interface LocalPolicy {
  /** Callers allowed. */
  readonly allow?: readonly string[];
  /** Callers refused. */
  readonly deny?: readonly string[];
  /** What happens to other callers (any trust domain). Default `deny`. */
  readonly default?: "allow" | "deny";
}

/** Decides whether a caller may make a request. */
export type Authorizer = (caller: CallerIdentity, request: AuthorizationRequest) => AuthorizationDecision | Promise<AuthorizationDecision>;

/**
 * Builds the authorizer of a local policy; its entries are checked and compiled here.
 *
 * @param policy - the policy
 * @param local - the mesh's own scope now (it follows identity rotations)
 * @throws MeshError `ERR_INVALID_CONFIG` naming an entry that is not a service name, a SPIFFE ID or `*`
 * @internal
 */
export function localPolicyAuthorizer(policy: LocalPolicy, local: () => LocalScope | undefined): Authorizer {
  const compile = (list: readonly string[] | undefined, field: string): readonly (readonly [string, CallerPattern])[] => {
    if (list === undefined) return [];
    if (!Array.isArray(list)) throw invalidConfig(`inbound.authorize.${field}`, `expected a list of callers, got ${describe(list)}`);
    return list.map((entry, i) => [entry, compileCallerPattern(entry, `inbound.authorize.${field}[${i}]`)] as const);
  };
  const deny = compile(policy.deny, "deny");
  const allow = compile(policy.allow, "allow");
  const fallback = policy.default ?? "deny";
  if (fallback !== "allow" && fallback !== "deny") throw invalidConfig("inbound.authorize.default", `expected "allow" or "deny", got ${describe(fallback)}`);
  const matches = (list: readonly (readonly [string, CallerPattern])[], caller: CallerIdentity, scope: LocalScope | undefined): string | undefined =>
    list.find(([, pattern]) => pattern(caller, scope))?.[0];
  return (caller) => {
    const scope = local();
    const denied = matches(deny, caller, scope);
    if (denied !== undefined) return { allowed: false, reason: `caller ${caller.spiffeId} is denied by the local policy (${denied})` };
    const allowed = matches(allow, caller, scope);
    if (allowed !== undefined) return { allowed: true, reason: `caller ${caller.spiffeId} is allowed by the local policy (${allowed})` };
    return { allowed: fallback === "allow", reason: `caller ${caller.spiffeId} is not named by the local policy; its default is ${fallback}` };
  };
}

/** One L7 permission of a Consul intention (`Permissions[i]`), as Consul writes it. */
export interface IntentionPermission {
  /** `allow` or `deny`. */
  readonly Action?: string;
  /** The HTTP match; every field given must match. */
  readonly HTTP?: IntentionHttpMatch;
}

/** The HTTP part of an L7 intention permission. */
export interface IntentionHttpMatch {
  /** The path, exactly. */
  readonly PathExact?: string;
  /** A path prefix. */
  readonly PathPrefix?: string;
  /** A regular expression (RE2) the whole path must match. */
  readonly PathRegex?: string;
  /** Methods, one of which must be the request's. */
  readonly Methods?: readonly string[];
  /** Header matches, all of which must hold. */
  readonly Header?: readonly IntentionHeaderMatch[];
}

/** One header match of an L7 intention permission. */
export interface IntentionHeaderMatch {
  /** The header name. */
  readonly Name?: string;
  /** The header is present. */
  readonly Present?: boolean;
  /** Its value, exactly. */
  readonly Exact?: string;
  /** A prefix of its value. */
  readonly Prefix?: string;
  /** A suffix of its value. */
  readonly Suffix?: string;
  /** A regular expression (RE2) its whole value must match. */
  readonly Regex?: string;
  /** Inverts the match. */
  readonly Invert?: boolean;
}

/**
 * An L7 permission compiled once, when the intentions are loaded: its regexes are RE2, its names and
 * methods normalised, so a request only runs the checks. @internal
 */
export interface CompiledPermission {
  /** Whether the permission allows (`Action: "allow"`) or denies what it matches. */
  readonly allowed: boolean;
  /**
   * Why the permission cannot be evaluated (a regex RE2 rejects), or undefined. Such a permission
   * denies every request that reaches it: it may have been meant to deny, so passing over it could
   * let through what it was written to stop.
   */
  readonly invalid: string | undefined;
  /** Whether the permission's HTTP match matches a request (Consul's rules: every given field must match). */
  matches(request: AuthorizationRequest): boolean;
}

/** A request as a route matcher reads it: intentions and routes share the matchers. */
class PermissionView implements MatchableRequest {
  readonly method: string;
  readonly path: string;
  readonly #headers: AuthorizationRequest["headers"];
  #lower: string | undefined;

  constructor(request: AuthorizationRequest) {
    this.method = request.method.toUpperCase();
    const q = request.path.indexOf("?");
    this.path = q < 0 ? request.path : request.path.slice(0, q);
    this.#headers = request.headers;
  }

  get lowerPath(): string {
    return (this.#lower ??= this.path.toLowerCase());
  }

  header(name: string): string | undefined {
    return headerValue(this.#headers, name);
  }

  query(): string | undefined {
    return undefined;
  }
}

/** Consul's field names of an intention's HTTP match, for errors. */
const INTENTION_FIELDS = Object.freeze({ pathRegex: "PathRegex", headers: "Header", regex: "Regex" });

/**
 * Compiles an L7 permission of a Consul intention, with the route matcher ({@link compileMatch}): the
 * same path, method and header rules, the same RE2. A regex RE2 rejects does not throw: the
 * permission comes back `invalid`, with RE2's reason, and denies what reaches it (see
 * {@link CompiledPermission}).
 *
 * @param permission - the permission, as Consul writes it
 * @param field - where it sits (`Sources[0].Permissions[1]`), for the reason
 * @internal
 */
export function compilePermission(permission: IntentionPermission, field: string): CompiledPermission {
  const allowed = permission.Action === "allow";
  const http = permission.HTTP;
  if (http === undefined) return { allowed, invalid: undefined, matches: () => true };
  let matcher: RouteMatcher;
  try {
    matcher = compileMatch(asRouteMatch(http), `${field}.HTTP`, INTENTION_FIELDS);
  } catch (err) {
    // A regex RE2 rejects, or a permission that is not what Consul writes (Methods not an array...): it denies.
    const invalid = err instanceof MeshError ? err.message : `Invalid intention at '${field}.HTTP': malformed (${err instanceof Error ? err.message : String(err)})`;
    return { allowed: false, invalid, matches: () => true };
  }
  return { allowed, invalid: undefined, matches: (request) => matcher(new PermissionView(request)) };
}

/** An intention's HTTP match as a route match: Consul gives both the same rules (and refuses an intention with more than one path field). */
function asRouteMatch(http: IntentionHttpMatch): RouteMatch {
  const headers: HeaderMatch[] = (http.Header ?? []).map((h) => ({
    name: h.Name ?? "",
    ...(h.Present === true ? { present: true } : {}),
    ...(h.Exact === undefined ? {} : { exact: h.Exact }),
    ...(h.Prefix === undefined ? {} : { prefix: h.Prefix }),
    ...(h.Suffix === undefined ? {} : { suffix: h.Suffix }),
    ...(h.Regex === undefined ? {} : { regex: h.Regex }),
    ...(h.Invert === true ? { invert: true } : {}),
  }));
  return {
    ...(http.PathExact === undefined ? {} : { pathExact: http.PathExact }),
    ...(http.PathPrefix === undefined ? {} : { pathPrefix: http.PathPrefix }),
    ...(http.PathRegex === undefined ? {} : { pathRegex: http.PathRegex }),
    ...(http.Methods === undefined ? {} : { methods: http.Methods.map((m) => m.toUpperCase()) }),
    headers,
  };
}

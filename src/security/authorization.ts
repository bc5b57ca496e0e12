import { compileRegex } from "../config/regex.ts";
import { headerValue } from "../core/headers.ts";
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
  /** The path, with the query. */
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
 * A local policy: callers by service name (`web`), SPIFFE ID, or `*`. Deny wins over allow; a caller
 * that neither names is refused unless `default` is `allow`.
 */
export interface LocalPolicy {
  /** Callers allowed. */
  readonly allow?: readonly string[];
  /** Callers refused. */
  readonly deny?: readonly string[];
  /** What happens to other callers. Default `deny`. */
  readonly default?: "allow" | "deny";
}

/** Decides whether a caller may make a request. */
export type Authorizer = (caller: CallerIdentity, request: AuthorizationRequest) => AuthorizationDecision | Promise<AuthorizationDecision>;

/** Builds the authorizer of a local policy. @internal */
export function localPolicyAuthorizer(policy: LocalPolicy): Authorizer {
  const matches = (list: readonly string[] | undefined, caller: CallerIdentity): string | undefined =>
    list?.find((entry) => entry === "*" || entry === caller.service || entry.toLowerCase() === caller.spiffeId.toLowerCase());
  return (caller) => {
    const denied = matches(policy.deny, caller);
    if (denied !== undefined) return { allowed: false, reason: `caller ${caller.spiffeId} is denied by the local policy (${denied})` };
    const allowed = matches(policy.allow, caller);
    if (allowed !== undefined) return { allowed: true, reason: `caller ${caller.spiffeId} is allowed by the local policy (${allowed})` };
    const fallback = policy.default ?? "deny";
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

/** Whether an L7 permission's HTTP match matches a request (Consul's rules: every given field must match). @internal */
export function permissionMatches(permission: IntentionPermission, request: AuthorizationRequest): boolean {
  const http = permission.HTTP;
  if (http === undefined) return true;
  const path = request.path.split("?")[0] ?? "/";
  if (http.PathExact !== undefined && path !== http.PathExact) return false;
  if (http.PathPrefix !== undefined && !path.startsWith(http.PathPrefix)) return false;
  if (http.PathRegex !== undefined && !compileRegex(http.PathRegex).test(path)) return false;
  if (http.Methods !== undefined && http.Methods.length > 0 && !http.Methods.some((m) => m.toUpperCase() === request.method.toUpperCase())) return false;
  for (const h of http.Header ?? []) {
    const value = headerValue(request.headers, (h.Name ?? "").toLowerCase());
    let ok: boolean;
    if (h.Present === true) ok = value !== undefined;
    else if (value === undefined) ok = false;
    else if (h.Exact !== undefined) ok = value === h.Exact;
    else if (h.Prefix !== undefined) ok = value.startsWith(h.Prefix);
    else if (h.Suffix !== undefined) ok = value.endsWith(h.Suffix);
    else if (h.Regex !== undefined) ok = compileRegex(h.Regex).test(value);
    else ok = true;
    if (h.Invert === true) ok = !ok;
    if (!ok) return false;
  }
  return true;
}

import type { HeaderMatch, QueryMatch, RouteMatch } from "./route-config.ts";
import { compileRe2 } from "./re2-pattern.ts";

/**
 * What a compiled route match reads of a request. Routing's `RequestView` is the one implementation:
 * it splits the path from its query once and keeps the header and query lookups it made. @internal
 */
export interface MatchableRequest {
  /** The method, upper case. */
  readonly method: string;
  /** Path without query string. */
  readonly path: string;
  /** The path without query, lower case (for case-insensitive routes). */
  readonly lowerPath: string;
  /** A header's value (several joined with `,`), or undefined; `name` is lower case. */
  header(name: string): string | undefined;
  /** A query parameter's first value, or undefined. */
  query(name: string): string | undefined;
}

/** The names of a match's fields in errors. @internal */
export interface MatchFieldNames {
  readonly pathRegex: string;
  readonly headers: string;
  readonly regex: string;
}

const ROUTE_FIELDS: MatchFieldNames = Object.freeze({ pathRegex: "pathRegex", headers: "headers", regex: "regex" });

/** Whether a request matches a route. @internal */
export type RouteMatcher = (request: MatchableRequest) => boolean;


/**
 * Whether `text` starts with `prefix`, comparing from the prefix's end: route prefixes share their
 * beginnings (`/api/v1/...`) and differ at the end, so most misses are found in a step or two. (V8's
 * `startsWith` costs about as much as comparing a whole prefix, for every route tried.)
 */
function hasPrefix(text: string, prefix: string): boolean {
  if (text.length < prefix.length) return false;
  for (let i = prefix.length - 1; i >= 0; i--) if (text.charCodeAt(i) !== prefix.charCodeAt(i)) return false;
  return true;
}

function valueMatcher(m: HeaderMatch | QueryMatch, field: string, regexName: string): (value: string | undefined) => boolean {
  if (m.exact !== undefined) {
    const exact = m.exact;
    return (v) => v === exact;
  }
  if (m.regex !== undefined) {
    const re = compileRe2(m.regex, `${field}.${regexName}`);
    return (v) => v !== undefined && re.test(v);
  }
  if ("prefix" in m && m.prefix !== undefined) {
    const prefix = m.prefix;
    return (v) => v !== undefined && v.startsWith(prefix);
  }
  if ("suffix" in m && m.suffix !== undefined) {
    const suffix = m.suffix;
    return (v) => v !== undefined && v.endsWith(suffix);
  }
  return (v) => v !== undefined;
}

/**
 * Compiles a route's match into one function, with Consul's (Envoy's) semantics: every condition must
 * hold; paths compare exactly, by plain string prefix, or by a regex over the whole path, optionally
 * case-insensitively; header conditions are negated by `invert`. Regexes (RE2, see `compileRe2`) are
 * compiled here, once per config, never per request.
 *
 * @param match - the route's match
 * @param field - where the match sits in the config, for errors (`router.routes[2].match`)
 * @param names - the names of its fields in errors, where they are not the route's (an intention's `PathRegex`)
 * @throws MeshError `ERR_INVALID_CONFIG` for a regex RE2 rejects
 * @internal
 */
export function compileMatch(match: RouteMatch | undefined, field = "match", names: MatchFieldNames = ROUTE_FIELDS): RouteMatcher {
  if (match === undefined) return () => true;
  const checks: RouteMatcher[] = [];
  const insensitive = match.caseInsensitive === true;
  if (match.pathExact !== undefined) {
    const exact = insensitive ? match.pathExact.toLowerCase() : match.pathExact;
    checks.push(insensitive ? (r) => r.lowerPath === exact : (r) => r.path === exact);
  } else if (match.pathPrefix !== undefined) {
    const prefix = insensitive ? match.pathPrefix.toLowerCase() : match.pathPrefix;
    checks.push(insensitive ? (r) => hasPrefix(r.lowerPath, prefix) : (r) => hasPrefix(r.path, prefix));
  } else if (match.pathRegex !== undefined) {
    const re = compileRe2(match.pathRegex, `${field}.${names.pathRegex}`, { caseInsensitive: insensitive });
    checks.push((r) => re.test(r.path));
  }
  // Path first: it is what most often tells routes apart.
  if (match.methods !== undefined && match.methods.length > 0) {
    const methods = new Set(match.methods);
    checks.push((r) => methods.has(r.method));
  }
  for (const [i, h] of (match.headers ?? []).entries()) {
    const name = h.name.toLowerCase();
    const test = valueMatcher(h, `${field}.${names.headers}[${i}]`, names.regex);
    const invert = h.invert === true;
    checks.push((r) => test(r.header(name)) !== invert);
  }
  for (const [i, q] of (match.query ?? []).entries()) {
    const name = q.name;
    const test = valueMatcher(q, `${field}.query[${i}]`, names.regex);
    checks.push((r) => test(r.query(name)));
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0] as RouteMatcher;
  return (r) => {
    for (const check of checks) if (!check(r)) return false;
    return true;
  };
}

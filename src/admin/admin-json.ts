/**
 * Header, query and field names whose values the admin server never shows: credentials a route or a
 * default may set or match (`Authorization`, a cookie, an API key, a session) are config, but not for
 * every reader.
 */
const SECRET_NAME = /^(authorization|proxy-authorization|cookie|set-cookie)$|auth|token|secret|password|passwd|api[-_]?key|session|credential|signature/i;

/** The fields of a header or query match that hold the value matched against. */
const MATCH_VALUE_FIELDS: ReadonlySet<string> = new Set(["exact", "prefix", "suffix", "contains", "regex", "value"]);

/** What the admin server shows instead of a secret value. */
export const REDACTED = "<redacted>";

/**
 * `value` as JSON for the admin server: sets as arrays, maps as objects, regular expressions as their
 * source, errors as code and message; a string under a secret-looking name (a header set or added), and
 * the values a header or query match on such a name compares with, redacted; functions left out. @internal
 */
export function adminJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

function replacer(key: string, value: unknown): unknown {
  if (typeof value === "string" && key !== "" && SECRET_NAME.test(key)) return REDACTED;
  if (value instanceof Set) return [...(value as Set<unknown>)];
  if (value instanceof Map) return Object.fromEntries(value as Map<unknown, unknown>);
  if (value instanceof RegExp) return value.source;
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { code: typeof code === "string" ? code : undefined, message: value.message };
  }
  if (typeof value === "function" || typeof value === "symbol") return undefined;
  if (typeof value === "bigint") return value.toString();
  if (isSecretMatch(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, MATCH_VALUE_FIELDS.has(k) && typeof v === "string" ? REDACTED : v]));
  return value;
}

/** A header or query match (`{ name, exact | prefix | regex | ... }`) on a secret's name. */
function isSecretMatch(value: unknown): value is Readonly<Record<string, unknown>> & { readonly name: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const name = (value as { name?: unknown }).name;
  return typeof name === "string" && SECRET_NAME.test(name) && Object.keys(value).some((k) => MATCH_VALUE_FIELDS.has(k));
}

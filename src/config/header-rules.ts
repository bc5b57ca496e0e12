import { invalidConfig } from "../core/errors.ts";
import { describe } from "../core/validate.ts";
import type { HeaderChanges } from "./route-config.ts";

/**
 * A header name a route may write: letters, digits, `-`, `_` and `.`, what both an HTTP/1.1 request
 * (a token) and gRPC metadata (lower-case keys) carry. @internal
 */
export const WRITABLE_HEADER_NAME = /^[A-Za-z0-9_.-]+$/;

/** A header value a route may write: printable ASCII, what both undici and grpc-js send as it is. @internal */
const WRITABLE_HEADER_VALUE = /^[\x20-\x7e]*$/;

/**
 * Request headers the HTTP client and the mesh own: framing and connection headers (undici refuses or
 * manages them), and `host`, which the mesh sets to the service's name (Envoy refuses header changes to
 * `host` as well).
 */
const OWNED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  "content-encoding",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "upgrade",
  "http2-settings",
  "expect",
  "te",
  "trailer",
]);

/** Response headers that frame or encode the response: a change to them would corrupt what the caller reads. */
const OWNED_RESPONSE_HEADERS: ReadonlySet<string> = new Set(["content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "upgrade", "http2-settings", "trailer"]);

/**
 * Headers an HTTP/2 message carries once (Node's `http2` refuses a second value, and grpc-js fails the
 * call): a route may `set` them, not `add` a value the caller may already have sent.
 */
const SINGLE_VALUE_HEADERS: ReadonlySet<string> = new Set([
  "access-control-allow-credentials",
  "access-control-max-age",
  "access-control-request-method",
  "age",
  "authorization",
  "content-language",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "dnt",
  "etag",
  "expires",
  "from",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "tk",
  "upgrade-insecure-requests",
  "user-agent",
  "x-content-type-options",
]);

/**
 * Header changes compiled once per config: names lower-cased, the names to drop as a set, every name
 * and value checked. What requests apply, without reading the config again. @internal
 */
export interface CompiledHeaderChanges {
  /** The changes as configured (for `explain`). */
  readonly source: HeaderChanges;
  /** Lower-case names whose values go before the new ones are written: `remove` and `set`. */
  readonly drop: ReadonlySet<string>;
  /** Headers written in place of any before them, lower-case name first. */
  readonly set: readonly (readonly [string, string])[];
  /** Headers appended, lower-case name first. */
  readonly add: readonly (readonly [string, string])[];
}

/**
 * Checks a header name a route writes or matches on (`fault.delay.header`, a sticky split's header).
 *
 * @param name - the name as configured
 * @param field - where it sits in the config
 * @returns the name, lower case
 * @throws MeshError `ERR_INVALID_CONFIG` naming `field`
 * @internal
 */
export function headerName(name: unknown, field: string): string {
  if (typeof name !== "string" || !WRITABLE_HEADER_NAME.test(name)) {
    throw invalidConfig(field, `${describe(name)} is not a header name the mesh can send (letters, digits, '-', '_' and '.')`);
  }
  return name.toLowerCase();
}

/**
 * Validates and compiles a `requestHeaders` or `responseHeaders` block. Names are letters, digits,
 * `-`, `_` and `.` (not ending in `-bin`, which gRPC reserves for binary values, nor starting with
 * `grpc-`); values printable ASCII; framing, encoding and connection headers (and `host`, on requests)
 * may not be changed; a header HTTP/2 carries once may be `set`, not `add`ed.
 *
 * @param value - the block as configured
 * @param path - where it sits in the config (`router.routes[0].destination.requestHeaders`)
 * @param direction - whether it changes requests or responses
 * @throws MeshError `ERR_INVALID_CONFIG` naming the field at fault
 * @internal
 */
export function compileHeaderChanges(value: unknown, path: string, direction: "request" | "response"): CompiledHeaderChanges {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalidConfig(path, `expected an object, got ${describe(value)}`);
  const raw = value as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(raw)) {
    if (key !== "add" && key !== "set" && key !== "remove") throw invalidConfig(`${path}.${key}`, "unknown field (known: add, set, remove)");
  }
  const owned = direction === "request" ? OWNED_REQUEST_HEADERS : OWNED_RESPONSE_HEADERS;
  const checkName = (name: unknown, field: string): string => {
    const lower = headerName(name, field);
    if (lower.endsWith("-bin")) throw invalidConfig(field, `${describe(name)}: names ending in '-bin' carry binary values in gRPC; a route writes text`);
    if (owned.has(lower)) throw invalidConfig(field, `${describe(name)} is managed by the HTTP client and the mesh; a route may not change it`);
    if (lower.startsWith("grpc-")) throw invalidConfig(field, `${describe(name)}: names starting with 'grpc-' are reserved by gRPC`);
    return lower;
  };
  const pairs = (key: "add" | "set"): (readonly [string, string])[] => {
    const block = raw[key];
    if (block === undefined) return [];
    if (block === null || typeof block !== "object" || Array.isArray(block)) throw invalidConfig(`${path}.${key}`, `expected an object of header names and values, got ${describe(block)}`);
    return Object.entries(block).map(([name, v]) => {
      const lower = checkName(name, `${path}.${key}`);
      if (key === "add" && SINGLE_VALUE_HEADERS.has(lower)) {
        throw invalidConfig(`${path}.add`, `${describe(name)} carries one value (HTTP/2 and gRPC refuse a second): use set`);
      }
      if (typeof v !== "string" || !WRITABLE_HEADER_VALUE.test(v)) {
        // The value itself is not shown: a header a route sets may carry a credential.
        const shown = typeof v === "string" ? `text with U+${(v.codePointAt(v.search(/[^\x20-\x7e]/)) ?? 0).toString(16).toUpperCase().padStart(4, "0")} at position ${v.search(/[^\x20-\x7e]/)}` : describe(v);
        throw invalidConfig(`${path}.${key}.${name}`, `expected printable ASCII text (no control characters, nothing beyond '~'), got ${shown}`);
      }
      return [lower, v] as const;
    });
  };
  const set = pairs("set");
  const add = pairs("add");
  const removeRaw = raw.remove;
  if (removeRaw !== undefined && !Array.isArray(removeRaw)) throw invalidConfig(`${path}.remove`, `expected an array of header names, got ${describe(removeRaw)}`);
  const remove = ((removeRaw ?? []) as readonly unknown[]).map((name, i) => checkName(name, `${path}.remove[${i}]`));
  return Object.freeze({ source: raw, drop: new Set([...remove, ...set.map(([n]) => n)]), set, add });
}

import type { Dispatcher } from "undici";

/** Request headers in any of the shapes undici accepts. @internal */
export type HeadersInput = Dispatcher.DispatchOptions["headers"];

/** Headers that are present. @internal */
export type Headers = Exclude<HeadersInput, undefined>;

function isHost(name: string): boolean {
  return name.length === 4 && name.toLowerCase() === "host";
}

/**
 * Returns headers that carry a `Host` header: `headers` itself when the caller set one, otherwise a copy
 * with `host` added. `none` is the shared object used when there are no headers at all. @internal
 */
export function withHost(headers: HeadersInput, host: string, none: Readonly<Record<string, string>>): Headers {
  if (headers === undefined || headers === null) return none;
  if (Array.isArray(headers)) {
    const flat = headers as readonly unknown[];
    if (flat.length > 0 && Array.isArray(flat[0])) return withHostPairs(flat as Iterable<[string, string]>, host);
    for (let i = 0; i < flat.length; i += 2) if (isHost(String(flat[i]))) return headers;
    return [...(flat as readonly string[]), "host", host];
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    return withHostPairs(headers as Iterable<[string, string]>, host);
  }
  const record = headers as Record<string, string | string[]>;
  for (const name in record) if (isHost(name)) return headers;
  return { host, ...record };
}

/** Flattens `[name, value]` pairs (undici takes pairs only from non-array iterables) and adds `host`. */
function withHostPairs(pairs: Iterable<[string, string | string[] | undefined]>, host: string): Headers {
  const out: string[] = [];
  let hasHost = false;
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    if (isHost(name)) hasHost = true;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  if (!hasHost) out.push("host", host);
  return out;
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

/** `[name, value]` pairs of request headers in any shape undici accepts; a header with several values gives one pair each. @internal */
export function headerPairs(headers: unknown): [string, string][] {
  const out: [string, string][] = [];
  if (headers === null || headers === undefined || typeof headers !== "object") return out;
  const text = (v: unknown): string => (typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : "");
  const push = (name: unknown, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) for (const v of value as unknown[]) out.push([text(name), text(v)]);
    else out.push([text(name), text(value)]);
  };
  if (Array.isArray(headers)) {
    const flat = headers as readonly unknown[];
    if (flat.length > 0 && Array.isArray(flat[0])) for (const [n, v] of flat as (readonly unknown[])[]) push(n, v);
    else for (let i = 0; i + 1 < flat.length; i += 2) push(flat[i], flat[i + 1]);
    return out;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    for (const [n, v] of headers as Iterable<readonly unknown[]>) push(n, v);
    return out;
  }
  for (const [n, v] of Object.entries(headers)) push(n, v);
  return out;
}

/**
 * Request headers (any shape undici accepts) with `values` set: each replaces every header of its name,
 * compared case-insensitively, and the others are kept in order. Returns a flat `[name, value, ...]`
 * array. @internal
 */
export function withHeadersSet(headers: unknown, values: Readonly<Record<string, string>>): string[] {
  const list = pairsWithout(headers, new Set(Object.keys(values).map((n) => n.toLowerCase())));
  for (const [n, v] of Object.entries(values)) list.push([n, v]);
  return list.flat();
}

/**
 * Request headers (any shape undici accepts) without the named ones, compared case-insensitively, the
 * others kept in order, as a flat `[name, value, ...]` array. @internal
 *
 * @param names - lower-case header names
 */
export function withoutHeaders(headers: unknown, names: ReadonlySet<string>): string[] {
  return pairsWithout(headers, names).flat();
}

function pairsWithout(headers: unknown, names: ReadonlySet<string>): [string, string][] {
  return headerPairs(headers).filter(([n]) => !names.has(n.toLowerCase()));
}

/**
 * Headers written as `name: value` lines (a form field, a `-H` option, a query's `header=`), by lower-case
 * name; or the first line that is not of that form. @internal
 */
export function headersFromLines(lines: Iterable<string>): { readonly headers: Record<string, string> } | { readonly bad: string } {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { bad: line };
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers };
}

import { MeshError } from "./errors.ts";

/*
 * The checks undici makes of a request's own arguments (method, path, headers), made by the mesh
 * first, so that a bad argument is the mesh's `ERR_INVALID_ARGUMENT` naming what is wrong, not an
 * undici error. The rules are undici's (RFC 9110 tokens; header values without CR, LF or NUL; paths of
 * visible Latin-1 characters). @internal
 */

/** RFC 9110 `token`: a method or a header name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** undici's rule for a path: visible characters of Latin-1 only (no space, no control characters). */
const BAD_PATH = /[^\u0021-\u00ff]/;
/** undici's rule for a header value: tab, visible ASCII and obs-text only. */
const BAD_HEADER_VALUE = /[^\t\u0020-\u007e\u0080-\u00ff]/;
const COMMON_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);

/** `ERR_INVALID_ARGUMENT` with the mesh's wording. @internal */
export function invalidArgument(message: string, cause?: unknown): MeshError {
  return new MeshError("ERR_INVALID_ARGUMENT", `Invalid argument: ${message}`, { cause });
}

/** The problem with a method, or undefined when it is a valid token. Cheap for the usual methods. @internal */
export function methodProblem(method: unknown): string | undefined {
  if (typeof method === "string" && (COMMON_METHODS.has(method) || TOKEN.test(method))) return undefined;
  return `'method' must be an HTTP method such as "GET" (a token, no spaces or control characters), got ${JSON.stringify(method)}`;
}

/**
 * A path as an error message may show it: without its query string, which may hold a secret (a token, a
 * key), and cut short. @internal
 */
export function shownPath(path: string): string {
  const q = path.indexOf("?");
  const bare = q === -1 ? path : `${path.slice(0, q)}?…`;
  return JSON.stringify(bare.length > 200 ? `${bare.slice(0, 200)}…` : bare);
}

/** The problem with a path relative to a service, or undefined when undici will take it. @internal */
export function pathProblem(path: unknown): string | undefined {
  if (typeof path !== "string") return `'path' must be a string starting with '/' (relative to the service), got ${typeof path}`;
  if (path.charCodeAt(0) !== 47 /* "/" */) return `'path' must start with '/' (it is relative to the service), got ${shownPath(path)}`;
  if (BAD_PATH.test(path)) return `'path' must not contain spaces, control characters or characters outside Latin-1 (percent-encode them), got ${shownPath(path)}`;
  return undefined;
}

/** The problem with request headers (an object, or an array of name/value pairs), or undefined. @internal */
export function headersProblem(headers: unknown): string | undefined {
  if (headers === undefined || headers === null) return undefined;
  const pairs: [unknown, unknown][] = [];
  if (Array.isArray(headers) && headers.every((h) => Array.isArray(h))) {
    // fetch's form: [[name, value], ...]
    for (const pair of headers as unknown[][]) {
      if (pair.length !== 2) return "'headers' as a list must give [name, value] pairs";
      pairs.push([pair[0], pair[1]]);
    }
  } else if (Array.isArray(headers)) {
    // undici's flat form: [name, value, name, value, ...]
    if (headers.length % 2 !== 0) return "'headers' as an array must hold name, value pairs";
    for (let i = 0; i < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
  } else if (typeof headers === "object") {
    const iterable = headers as Partial<Iterable<unknown>>;
    if (typeof iterable[Symbol.iterator] === "function") {
      for (const pair of iterable as Iterable<unknown>) {
        if (!Array.isArray(pair) || pair.length !== 2) return "'headers' as an iterable must give [name, value] pairs";
        pairs.push([pair[0], pair[1]]);
      }
    } else pairs.push(...Object.entries(headers));
  } else return `'headers' must be an object of header names to values, got ${JSON.stringify(headers)}`;
  for (const [name, value] of pairs) {
    if (typeof name !== "string" || !TOKEN.test(name)) return `header name ${JSON.stringify(name)} is not a valid token`;
    for (const v of Array.isArray(value) ? (value as unknown[]) : [value]) {
      if (v === undefined) continue;
      const text = typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
      if (text === undefined) return `header '${name}' must be a string, got ${typeof v}`;
      if (BAD_HEADER_VALUE.test(text)) return `header '${name}' must not contain CR, LF, NUL or other control characters`;
    }
  }
  return undefined;
}

/**
 * undici's refusal of a request's own arguments (its `InvalidArgumentError`: a header, method or body
 * it will not send) as the mesh's `ERR_INVALID_ARGUMENT`, with undici's error as the cause; any other
 * error as it is. Nothing was sent: undici checks before it writes. @internal
 */
export function asArgumentError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== "UND_ERR_INVALID_ARG" && code !== "UND_ERR_NOT_SUPPORTED") return error;
  return invalidArgument(`the request was refused before it was sent: ${(error as Error).message}`, error);
}

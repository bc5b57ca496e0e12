import { headerValue } from "../core/headers.ts";
import type { MatchableRequest } from "../config/compile-match.ts";

/** What routing reads of a request: method, path and query, headers (any shape undici accepts). */
export interface RoutableRequest {
  /** The method; default GET. */
  readonly method?: string;
  /** Path with query string, starting with `/`. */
  readonly path: string;
  /** Request headers in any shape undici accepts. */
  readonly headers?: unknown;
}

/**
 * A request as route matching reads it: the path split from its query once, header and query lookups
 * made on first use and kept (twenty routes asking for one header scan the headers once). @internal
 */
export class RequestView implements MatchableRequest {
  readonly method: string;
  /** Path with query string. */
  readonly rawPath: string;
  /** Path without query string. */
  readonly path: string;
  /** The query string without `?`; empty when none. */
  readonly queryString: string;
  readonly headers: unknown;
  #headerCache: Map<string, string | undefined> | undefined;
  #lowerPath: string | undefined;
  #query: URLSearchParams | undefined;

  constructor(request: RoutableRequest) {
    this.method = (request.method ?? "GET").toUpperCase();
    this.rawPath = request.path;
    const q = request.path.indexOf("?");
    this.path = q < 0 ? request.path : request.path.slice(0, q);
    this.queryString = q < 0 ? "" : request.path.slice(q + 1);
    this.headers = request.headers;
  }

  /** The path without query, lower case (for case-insensitive routes). */
  get lowerPath(): string {
    return (this.#lowerPath ??= this.path.toLowerCase());
  }

  /** A header's value (several joined with `,`), or undefined; `name` is lower case. */
  header(name: string): string | undefined {
    const cache = (this.#headerCache ??= new Map<string, string | undefined>());
    if (cache.has(name)) return cache.get(name);
    const value = headerValue(this.headers, name);
    cache.set(name, value);
    return value;
  }

  /** A query parameter's first value, or undefined. */
  query(name: string): string | undefined {
    if (this.queryString === "") return undefined;
    this.#query ??= new URLSearchParams(this.queryString);
    return this.#query.get(name) ?? undefined;
  }
}

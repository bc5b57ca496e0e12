import { headerValue } from "../../src/core/headers.ts";
import type { ServiceConfig } from "../../src/config/service-config.ts";
import type { RoutableRequest } from "../../src/routing/request-view.ts";

/** How many routes the table has. */
export const ROUTES = 20;

/**
 * The benchmark's router: 20 routes without regex, as a real service might have. Even routes match a
 * path prefix and methods; odd ones a path prefix and a tenant header. A 90/10 splitter over two subsets
 * follows, so a request that matches no route is split.
 */
export function benchConfig(): ServiceConfig {
  return {
    router: {
      routes: Array.from({ length: ROUTES }, (_, i) => ({
        match: i % 2 === 0 ? { pathPrefix: `/api/v1/area${i}/`, methods: ["GET", "POST"] } : { pathPrefix: `/api/v1/area${i}/`, headers: [{ name: "x-tenant", exact: `tenant-${i}` }] },
        destination: { service: `svc${i}`, requestTimeoutMs: 2000 },
      })),
    },
    resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" } } },
    splitter: { splits: [{ weight: 90, subset: "v1" }, { weight: 10, subset: "v2" }] },
  };
}

/** The requests each case routes. */
export const REQUESTS: Readonly<Record<string, RoutableRequest>> = {
  first_route: { method: "GET", path: "/api/v1/area0/orders/42", headers: { host: "web", "x-tenant": "tenant-0", accept: "application/json" } },
  last_route: { method: "GET", path: "/api/v1/area19/orders/42", headers: { host: "web", "x-tenant": "tenant-19", accept: "application/json" } },
  no_route_split: { method: "GET", path: "/static/app.js", headers: { host: "web", "x-tenant": "tenant-3", accept: "*/*" } },
};

/**
 * The baseline: the same 20 conditions written by hand as straight-line code (what a developer would
 * write without a mesh), returning the matched route's index or -1.
 */
export function handWritten(request: RoutableRequest): number {
  const q = request.path.indexOf("?");
  const path = q < 0 ? request.path : request.path.slice(0, q);
  const method = request.method ?? "GET";
  let tenant: string | undefined | null = null;
  for (let i = 0; i < ROUTES; i++) {
    if (!path.startsWith(PREFIXES[i]!)) continue;
    if (i % 2 === 0) {
      if (method === "GET" || method === "POST") return i;
    } else {
      if (tenant === null) tenant = headerValue(request.headers, "x-tenant");
      if (tenant === TENANTS[i]) return i;
    }
  }
  return -1;
}

const PREFIXES = Array.from({ length: ROUTES }, (_, i) => `/api/v1/area${i}/`);
const TENANTS = Array.from({ length: ROUTES }, (_, i) => `tenant-${i}`);

/**
 * The regex case: the same 20 routes, each matching its path with an RE2 `pathRegex` instead of a
 * prefix. With `literalStart`, each pattern starts with its area's literal path (`/api/v1/area7/...`),
 * as most real ones do; without, each starts with an optional group (`(?:/api)?/v1/area7/...`), so no
 * literal prefix can refuse a path before the automaton runs.
 */
export function regexConfig(literalStart: boolean): ServiceConfig {
  return {
    ...benchConfig(),
    router: {
      routes: Array.from({ length: ROUTES }, (_, i) => ({
        match: i % 2 === 0 ? { pathRegex: regexSource(i, literalStart), methods: ["GET", "POST"] } : { pathRegex: regexSource(i, literalStart), headers: [{ name: "x-tenant", exact: `tenant-${i}` }] },
        destination: { service: `svc${i}`, requestTimeoutMs: 2000 },
      })),
    },
  };
}

function regexSource(i: number, literalStart: boolean): string {
  return `${literalStart ? "/api" : "(?:/api)?"}/v1/area${i}/orders/[0-9]+(?:/items/[a-z0-9-]+)?`;
}

/** The requests the regex cases route. */
export const REGEX_REQUESTS: Readonly<Record<string, RoutableRequest>> = {
  first_route: { method: "GET", path: "/api/v1/area0/orders/42/items/ab-12", headers: { host: "web", "x-tenant": "tenant-0", accept: "application/json" } },
  last_route: { method: "GET", path: "/api/v1/area19/orders/42/items/ab-12", headers: { host: "web", "x-tenant": "tenant-19", accept: "application/json" } },
};

/** The regex baseline: the same conditions by hand, with V8's (backtracking) `RegExp`. */
export function handWrittenRegex(literalStart: boolean): (request: RoutableRequest) => number {
  const patterns = Array.from({ length: ROUTES }, (_, i) => new RegExp(`^(?:${regexSource(i, literalStart)})$`));
  return (request) => {
    const q = request.path.indexOf("?");
    const path = q < 0 ? request.path : request.path.slice(0, q);
    const method = request.method ?? "GET";
    let tenant: string | undefined | null = null;
    for (let i = 0; i < ROUTES; i++) {
      if (!patterns[i]!.test(path)) continue;
      if (i % 2 === 0) {
        if (method === "GET" || method === "POST") return i;
      } else {
        if (tenant === null) tenant = headerValue(request.headers, "x-tenant");
        if (tenant === TENANTS[i]) return i;
      }
    }
    return -1;
  };
}

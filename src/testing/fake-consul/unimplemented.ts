/** An answer that ends a request before it is routed: Consul's, or the fake's 501 naming what it lacks. @internal */
export interface Refusal {
  readonly status: number;
  readonly text: string;
}

/**
 * Query parameters Consul serves that the fake does not, with what they do: a request that uses one
 * gets 501 naming it, never an answer that silently ignored it.
 */
const UNIMPLEMENTED_PARAMS: Readonly<Record<string, string>> = {
  near: "sorting by network distance",
  "node-meta": "filtering by node metadata",
  peer: "cluster peering",
  "sameness-group": "sameness groups",
  "merge-central-config": "merging central config into registrations",
  cached: "the agent's cache (X-Cache, Age)",
};

/** Consul Enterprise parameters: Consul CE refuses a value other than `default` with these messages. */
const ENTERPRISE_PARAMS: Readonly<Record<string, string>> = {
  ns: 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature',
  partition: 'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature',
};

/**
 * Why a request is answered before routing, or undefined: a datacenter other than the fake's (Consul:
 * 500 `No path to datacenter`), a Consul Enterprise namespace or partition (Consul CE's 400), or a
 * parameter Consul serves and the fake does not (501).
 *
 * @param url - the request's URL
 * @param datacenter - the fake's datacenter
 * @internal
 */
export function refusal(url: URL, datacenter: string): Refusal | undefined {
  if (!url.pathname.startsWith("/v1/")) return undefined;
  const params = url.searchParams;
  const dc = params.get("dc");
  if (dc !== null && dc !== "" && dc !== datacenter) return { status: 500, text: "No path to datacenter" };
  for (const [param, message] of Object.entries(ENTERPRISE_PARAMS)) {
    const value = params.get(param);
    if (value !== null && value !== "" && value !== "default") return { status: 400, text: message };
  }
  for (const [param, what] of Object.entries(UNIMPLEMENTED_PARAMS)) {
    if (params.has(param)) return notImplemented(`?${param} (${what})`);
  }
  return undefined;
}

/** 501 with `FakeConsul does not implement <what>`. @internal */
export function notImplemented(what: string): Refusal {
  return { status: 501, text: `FakeConsul does not implement ${what}; Consul serves it. See docs/consul.md for what FakeConsul serves.` };
}

/** The first segment after `/v1/` of every endpoint family Consul serves. */
const CONSUL_FAMILIES = new Set([
  "acl",
  "agent",
  "catalog",
  "config",
  "connect",
  "coordinate",
  "discovery-chain",
  "event",
  "exported-services",
  "imported-services",
  "health",
  "internal",
  "kv",
  "namespace",
  "namespaces",
  "operator",
  "partition",
  "partitions",
  "peering",
  "peerings",
  "query",
  "session",
  "snapshot",
  "status",
  "txn",
]);

/**
 * The answer to a path no route of the fake took: 501 naming it when it is in one of Consul's endpoint
 * families (Consul may well serve it), else Consul's own 404 for a path it does not know.
 *
 * @param method - the request's method
 * @param path - the request's path
 * @internal
 */
export function unserved(method: string, path: string): Refusal {
  const family = /^\/v1\/([^/]+)/.exec(path)?.[1];
  if (family !== undefined && CONSUL_FAMILIES.has(family)) return notImplemented(`${method} ${path}`);
  return { status: 404, text: `Invalid URL path: not a recognized HTTP API endpoint: ${path}` };
}

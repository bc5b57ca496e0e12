import type { EndpointInput, HealthStatus } from "../../endpoint/endpoint.ts";

/** Why a `/v1/health/service` answer could not be used. */
export class ConsulDecodeError extends Error {
  /** `ConsulDecodeError`. */
  override readonly name = "ConsulDecodeError";
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Consul's aggregate, as its DNS server computes it: critical (or maintenance) wins, then warning. */
function aggregate(checks: unknown): HealthStatus {
  let status: HealthStatus = "passing";
  for (const check of Array.isArray(checks) ? checks : []) {
    const s = record(check)?.Status;
    if (s === "critical" || s === "maintenance") return "critical";
    if (s === "warning") status = "warning";
  }
  return status;
}

function stringMap(value: unknown): Record<string, string> {
  return Object.fromEntries(Object.entries(record(value) ?? {}).filter((e): e is [string, string] => typeof e[1] === "string"));
}

/** What a decoded answer holds. */
export interface DecodedHealth {
  /** Every usable instance, critical ones included (marked `critical`: the mesh sends them nothing). */
  readonly endpoints: EndpointInput[];
  /** Instances that could not be used (no port, no address), with the reason. */
  readonly skipped: string[];
}

/**
 * Turns a `/v1/health/service/:name` answer into endpoint inputs: the service address, or the node's
 * when it is empty; `Weights.Passing` or `Weights.Warning` by the aggregate of the instance's and its
 * node's checks (critical ones are kept, marked `critical`, and the mesh sends them no traffic, as
 * Consul's DNS does); tags and meta kept. The id is `node/serviceID`, since
 * service IDs are unique per node only.
 *
 * @param body - the parsed JSON answer
 * @throws ConsulDecodeError when the answer is not an array of `{Node, Service, Checks}`
 */
export function decodeHealth(body: unknown): DecodedHealth {
  if (!Array.isArray(body)) throw new ConsulDecodeError(`expected an array of {Node, Service, Checks}, got ${body === null ? "null" : typeof body}`);
  const endpoints: EndpointInput[] = [];
  const skipped: string[] = [];
  for (const [i, raw] of body.entries()) {
    const entry = record(raw);
    const node = record(entry?.Node);
    const service = record(entry?.Service);
    if (entry === undefined || node === undefined || service === undefined) {
      throw new ConsulDecodeError(`entry ${i} is not {Node, Service, Checks}`);
    }
    const health = aggregate(entry.Checks);
    const serviceAddress = typeof service.Address === "string" ? service.Address : "";
    const address = serviceAddress !== "" ? serviceAddress : typeof node.Address === "string" ? node.Address : "";
    const port = service.Port;
    const id = `${String(node.Node)}/${String(service.ID)}`;
    if (address === "" || typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      skipped.push(`${id}: no usable address and port (${JSON.stringify(address)}:${String(port)})`);
      continue;
    }
    const weights = record(service.Weights);
    endpoints.push({
      id,
      address,
      port,
      health,
      weights: {
        passing: typeof weights?.Passing === "number" && weights.Passing > 0 ? weights.Passing : 1,
        warning: typeof weights?.Warning === "number" && weights.Warning >= 0 ? weights.Warning : 1,
      },
      tags: Array.isArray(service.Tags) ? service.Tags.filter((t): t is string => typeof t === "string") : [],
      meta: stringMap(service.Meta),
      // Connect-native instances terminate mTLS themselves; the others are plaintext (or behind a sidecar we do not use).
      tls: record(service.Connect)?.Native === true,
    });
  }
  return { endpoints, skipped };
}

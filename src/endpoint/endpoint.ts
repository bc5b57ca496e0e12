import { isIP } from "node:net";
import { MeshError } from "../core/errors.ts";

/** Health as Consul reports it. `critical` endpoints never take traffic. */
export type HealthStatus = "passing" | "warning" | "critical";

/** Balancing weights by health, as in Consul's `Weights`. */
export interface EndpointWeights {
  /** Weight while the endpoint is passing; > 0. */
  readonly passing: number;
  /** Weight while the endpoint is warning; >= 0 (0 takes it out of rotation while warning). */
  readonly warning: number;
}

/** What a registry is given to describe one instance of a service. Only `address` and `port` are required. */
export interface EndpointInput {
  /** Unique within the service. Defaults to `address:port`. */
  readonly id?: string;
  /** IPv4, IPv6 or host name. */
  readonly address: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
  /** Shorthand for `weights.passing` (the weight while healthy). */
  readonly weight?: number;
  /** Weights by health; defaults `{ passing: 1, warning: 1 }` as in Consul. */
  readonly weights?: Partial<EndpointWeights>;
  /** Defaults to `passing`. */
  readonly health?: HealthStatus;
  /** Free-form tags (Consul `Service.Tags`). */
  readonly tags?: readonly string[];
  /** Free-form metadata (Consul `Service.Meta`). */
  readonly meta?: Readonly<Record<string, string>>;
  /** Locality, for zone-aware routing. */
  readonly zone?: string | undefined;
  /** The identity the endpoint must prove (a SPIFFE ID), when mTLS is in use. */
  readonly identity?: string | undefined;
  /**
   * Whether the endpoint speaks mTLS. `false`: plaintext only (refused with `ERR_TLS_REQUIRED` when the
   * mesh requires mTLS). Left out: unknown, taken as mTLS when the mesh's mTLS is on. From Consul: true
   * for Connect-native instances, false for the others.
   */
  readonly tls?: boolean | undefined;
}

/** One instance of a service: an immutable record. Build it with {@link createEndpoint}. */
export interface Endpoint {
  /** Unique within the service. */
  readonly id: string;
  /** IPv4, IPv6 or host name. */
  readonly address: string;
  /** TCP port. */
  readonly port: number;
  /** `http://address:port`, with IPv6 addresses in brackets. */
  readonly origin: string;
  /** Weights by health. */
  readonly weights: EndpointWeights;
  /** The weight in force for the current health: `weights.passing`, `weights.warning`, or 0 when critical. */
  readonly weight: number;
  /** Current health. */
  readonly health: HealthStatus;
  /** Free-form tags. */
  readonly tags: readonly string[];
  /** Free-form metadata. */
  readonly meta: Readonly<Record<string, string>>;
  /** Locality, if known. */
  readonly zone: string | undefined;
  /** Expected identity, if any. */
  readonly identity: string | undefined;
  /** Whether it speaks mTLS: true, false (plaintext only) or undefined (unknown). */
  readonly tls: boolean | undefined;
}

const HEALTH: ReadonlySet<string> = new Set(["passing", "warning", "critical"]);
const RECORDS = new WeakSet<Endpoint>();

function invalid(message: string, field: string, input: unknown): MeshError {
  return new MeshError("ERR_INVALID_ENDPOINT", `Invalid endpoint: ${message}`, { details: { field, input } });
}

function checkWeight(value: unknown, field: string, min: number, input: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw invalid(`'${field}' must be a finite number >= ${min}, got ${String(value)}`, field, input);
  }
  return value;
}

/**
 * Validates an {@link EndpointInput} and returns a frozen {@link Endpoint}.
 *
 * @param input - the description of the instance
 * @throws MeshError `ERR_INVALID_ENDPOINT` naming the field at fault
 */
export function createEndpoint(input: EndpointInput): Endpoint {
  if (input === null || typeof input !== "object") throw invalid("expected an object", "", input);
  const { address, port } = input;
  if (typeof address !== "string" || address.length === 0 || /[\s/?#@]/.test(address)) {
    throw invalid(`'address' must be an IP address or host name, got ${JSON.stringify(address)}`, "address", input);
  }
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`'port' must be an integer from 1 to 65535, got ${String(port)}`, "port", input);
  }
  const id = input.id ?? `${address}:${port}`;
  if (typeof id !== "string" || id.length === 0) throw invalid("'id' must be a non-empty string", "id", input);
  const health = input.health ?? "passing";
  if (!HEALTH.has(health)) {
    throw invalid(`'health' must be passing, warning or critical, got ${JSON.stringify(health)}`, "health", input);
  }
  const passing = checkWeight(input.weights?.passing ?? input.weight ?? 1, "weights.passing", Number.MIN_VALUE, input);
  const warning = checkWeight(input.weights?.warning ?? 1, "weights.warning", 0, input);
  const tags = input.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) {
    throw invalid("'tags' must be an array of strings", "tags", input);
  }
  const meta = input.meta ?? {};
  if (typeof meta !== "object" || meta === null || !Object.values(meta).every((v) => typeof v === "string")) {
    throw invalid("'meta' must be an object of string values", "meta", input);
  }
  const host = isIP(address) === 6 ? `[${address}]` : address;
  const endpoint: Endpoint = Object.freeze({
    id,
    address,
    port,
    origin: `http://${host}:${port}`,
    weights: Object.freeze({ passing, warning }),
    weight: health === "critical" ? 0 : health === "warning" ? warning : passing,
    health,
    tags: Object.freeze([...tags]),
    meta: Object.freeze({ ...meta }),
    zone: input.zone,
    identity: input.identity,
    tls: input.tls,
  });
  RECORDS.add(endpoint);
  return endpoint;
}

/**
 * Tells whether `value` is a record built by {@link createEndpoint} (and so already validated).
 *
 * @param value - a record or an input
 */
export function isEndpoint(value: Endpoint | EndpointInput): value is Endpoint {
  return RECORDS.has(value as Endpoint);
}

/**
 * Returns a copy of `endpoint` with another health, and the weight that goes with it.
 *
 * @param endpoint - the current record
 * @param health - the new health
 */
export function withHealth(endpoint: Endpoint, health: HealthStatus): Endpoint {
  return createEndpoint({ ...endpoint, health, weights: endpoint.weights });
}

/** Tells whether an endpoint may take traffic: not critical and a weight above 0. */
export function isReady(endpoint: Endpoint): boolean {
  return endpoint.weight > 0;
}

import { MeshError } from "../core/errors.ts";
import { createEndpoint, isEndpoint, isReady, type Endpoint, type EndpointInput } from "./endpoint.ts";

/** What changed between two endpoint sets, by endpoint id. */
export interface EndpointSetDiff {
  /** Endpoints only in the newer set. */
  readonly added: readonly Endpoint[];
  /** Endpoints only in the older set. */
  readonly removed: readonly Endpoint[];
  /** Endpoints in both whose record differs (health, weight, address, metadata). */
  readonly changed: readonly Endpoint[];
}

/**
 * An immutable snapshot of all known instances of one service. A registry emits a whole new set on every
 * change; nothing mutates a set once built, so a request can read one without locks.
 */
export class EndpointSet {
  /** The service these endpoints belong to. */
  readonly service: string;
  /** Every endpoint, in registry order. */
  readonly all: readonly Endpoint[];
  /** The endpoints that may take traffic (not critical, weight above 0), in registry order. */
  readonly ready: readonly Endpoint[];
  readonly #byId: ReadonlyMap<string, Endpoint>;

  private constructor(service: string, all: readonly Endpoint[]) {
    const byId = new Map<string, Endpoint>();
    for (const endpoint of all) {
      if (byId.has(endpoint.id)) {
        throw new MeshError(
          "ERR_INVALID_ENDPOINT",
          `Invalid endpoint: two endpoints of '${service}' share the id '${endpoint.id}'; give each a unique id.`,
          { details: { service, field: "id" } },
        );
      }
      byId.set(endpoint.id, endpoint);
    }
    this.service = service;
    this.all = Object.freeze([...all]);
    this.ready = Object.freeze(all.filter(isReady));
    this.#byId = byId;
    Object.freeze(this);
  }

  /**
   * Builds a set from endpoint records or inputs, validating each.
   *
   * @param service - the service name
   * @param endpoints - records or inputs
   * @throws MeshError `ERR_INVALID_ENDPOINT` on a bad input or a duplicate id
   */
  static of(service: string, endpoints: Iterable<Endpoint | EndpointInput>): EndpointSet {
    const records: Endpoint[] = [];
    for (const e of endpoints) records.push(isEndpoint(e) ? e : createEndpoint(e));
    return new EndpointSet(service, records);
  }

  /** Number of endpoints, ready or not. */
  get size(): number {
    return this.all.length;
  }

  /**
   * The endpoint with this id, if any.
   *
   * @param id - endpoint id
   */
  get(id: string): Endpoint | undefined {
    return this.#byId.get(id);
  }

  /**
   * What changed from `previous` to this set.
   *
   * @param previous - the older set; everything counts as added when undefined
   */
  diff(previous: EndpointSet | undefined): EndpointSetDiff {
    const added: Endpoint[] = [];
    const changed: Endpoint[] = [];
    const removed: Endpoint[] = [];
    for (const endpoint of this.all) {
      const before = previous?.get(endpoint.id);
      if (before === undefined) added.push(endpoint);
      else if (!sameEndpoint(before, endpoint)) changed.push(endpoint);
    }
    if (previous !== undefined) {
      for (const endpoint of previous.all) if (!this.#byId.has(endpoint.id)) removed.push(endpoint);
    }
    return { added, removed, changed };
  }
}

/**
 * Tells whether two endpoint records describe the same instance in the same state.
 *
 * @param a - one record
 * @param b - the other
 */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a === b) return true;
  return (
    a.id === b.id &&
    a.origin === b.origin &&
    a.health === b.health &&
    a.weights.passing === b.weights.passing &&
    a.weights.warning === b.weights.warning &&
    a.zone === b.zone &&
    a.identity === b.identity &&
    a.tls === b.tls &&
    a.tags.length === b.tags.length &&
    a.tags.every((t, i) => t === b.tags[i]) &&
    sameRecord(a.meta, b.meta)
  );
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

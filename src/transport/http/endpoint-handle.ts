import { buildConnector, Pool, type Dispatcher } from "undici";
import type { EndpointTransport } from "../../security/transport-security.ts";
import { RefusingDispatcher } from "./refusing-dispatcher.ts";
import { EndpointLoad } from "../../balancer/load.ts";
import type { Endpoint } from "../../endpoint/endpoint.ts";
import type { PoolHandle } from "../../upstream/pool-handle.ts";

/**
 * The mesh's live object for one endpoint: the current endpoint record and a connection pool created on
 * first use (an idle undici `Pool` costs memory; a service with thousands of endpoints must not pay for
 * pools it never picks). @internal
 */
export class EndpointHandle implements PoolHandle {
  /** Requests in flight and round-trip estimate, kept by the calls' attempts, read by balancers. */
  readonly load = new EndpointLoad();
  /** The weight balancers use; set by the service state before it builds a picker. */
  weight: number;
  /** When the endpoint joined (the clock's time), for slow start; undefined if it was there from the start. */
  readonly addedAt: number | undefined;
  /** The service its pool's origin names (undici then sends it as `Host`), or undefined: the endpoint's origin, and `Host` as a header. */
  readonly #host: string | undefined;
  #endpoint: Endpoint;
  #pool: Dispatcher | undefined;
  readonly #options: Pool.Options;
  readonly #transport: EndpointTransport | undefined;
  #closing: Promise<void> | undefined;
  /** Settled once destroy() has destroyed the pool. */
  readonly #destroyed = settledLater();

  /**
   * @param host - the service to name in the pool's origin (the `Host` undici sends when a request
   *   names none), or undefined to keep the endpoint's origin (requests then carry `Host` as a header);
   *   ignored for an endpoint with a transport (mTLS), whose pools keep their origin
   * @param endpoint - the endpoint record
   * @param options - undici pool options
   * @param addedAt - when the endpoint joined an already known set, for slow start
   * @param transport - mTLS: the origin and connector to use, or why the endpoint may not be used
   */
  constructor(host: string | undefined, endpoint: Endpoint, options: Pool.Options, addedAt: number | undefined, transport?: EndpointTransport) {
    this.#host = host;
    this.#endpoint = endpoint;
    this.#transport = transport;
    this.#options = options;
    this.addedAt = addedAt;
    this.weight = endpoint.weight > 0 ? endpoint.weight : endpoint.weights.passing;
  }

  /** The current record. */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  /** Replaces the record with a newer one for the same origin (health, weight or metadata changed). */
  update(endpoint: Endpoint): void {
    this.#endpoint = endpoint;
  }

  /** The pool, created on first call (or, for an endpoint mTLS may not use, a dispatcher that refuses every request). */
  get pool(): Dispatcher {
    return (this.#pool ??= this.#createPool());
  }

  /**
   * With a host, the pool's origin names the service (`http://orders`), so undici sends `Host: orders`
   * on its own, a header it writes once per pool rather than one it checks on every request; its
   * connector dials the endpoint's address. Without one, the endpoint's origin as it is.
   */
  #createPool(): Dispatcher {
    const transport = this.#transport;
    if (transport !== undefined && "refusal" in transport) return new RefusingDispatcher(transport.refusal);
    if (transport !== undefined) return new Pool(transport.origin, { ...this.#options, connect: transport.connect });
    const host = this.#host;
    if (host === undefined) return new Pool(this.#endpoint.origin, this.#options);
    const connect = buildConnector({ timeout: this.#options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS });
    return new Pool(`http://${host}`, { ...this.#options, connect: toAddress(connect, this.#endpoint) });
  }

  /** Whether a pool has been created. */
  get hasPool(): boolean {
    return this.#pool !== undefined;
  }

  /** Open connections to the endpoint (0 before its pool is made). */
  get connections(): number {
    const pool = this.#pool;
    return pool instanceof Pool ? pool.stats.connected : 0;
  }

  /**
   * Lets requests already sent finish, then closes the connections. Idempotent.
   */
  close(): Promise<void> {
    // Or until destroyed: undici's Pool never settles close() if destroy() fails requests still queued in it.
    return (this.#closing ??= this.#pool === undefined ? Promise.resolve() : Promise.race([this.#pool.close(), this.#destroyed.promise]));
  }

  /**
   * Aborts requests in flight and closes the connections now, even if a graceful close is under way.
   *
   * @param error - what the aborted requests fail with
   */
  destroy(error: Error): Promise<void> {
    this.#closing ??= Promise.resolve();
    const destroying = this.#pool === undefined || (this.#pool as { destroyed?: boolean }).destroyed === true ? Promise.resolve() : this.#pool.destroy(error);
    return destroying.finally(() => this.#destroyed.resolve());
  }
}

/** undici's default time allowed to open a connection, which a connector of the pool's own must set itself. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A connector that dials the endpoint's address and port, whatever host the pool's origin names. */
function toAddress(connect: buildConnector.connector, endpoint: Endpoint): buildConnector.connector {
  const hostname = endpoint.address;
  const port = String(endpoint.port);
  const host = endpoint.origin.slice("http://".length);
  return (opts, callback) => connect({ ...opts, hostname, host, port }, callback);
}

/** A promise and the function that settles it. */
function settledLater(): { readonly promise: Promise<void>; readonly resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

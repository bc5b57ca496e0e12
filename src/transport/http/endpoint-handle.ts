import { Pool } from "undici";
import type { PickTarget } from "../../balancer/picker.ts";
import type { Endpoint } from "../../endpoint/endpoint.ts";

/**
 * The mesh's live object for one endpoint: the current endpoint record and a connection pool created on
 * first use (an idle undici `Pool` costs memory; a service with thousands of endpoints must not pay for
 * pools it never picks). @internal
 */
export class EndpointHandle implements PickTarget {
  #endpoint: Endpoint;
  #pool: Pool | undefined;
  readonly #options: Pool.Options;
  #closing: Promise<void> | undefined;

  /**
   * @param endpoint - the endpoint record
   * @param options - undici pool options
   */
  constructor(endpoint: Endpoint, options: Pool.Options) {
    this.#endpoint = endpoint;
    this.#options = options;
  }

  /** The current record. */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  /** Replaces the record with a newer one for the same origin (health, weight or metadata changed). */
  update(endpoint: Endpoint): void {
    this.#endpoint = endpoint;
  }

  /** The pool, created on first call. */
  get pool(): Pool {
    return (this.#pool ??= new Pool(this.#endpoint.origin, this.#options));
  }

  /** Whether a pool has been created. */
  get hasPool(): boolean {
    return this.#pool !== undefined;
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Lets requests already sent finish, then closes the connections. Idempotent.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#pool === undefined ? Promise.resolve() : this.#pool.close());
  }
}

import type { PickTarget } from "../balancer/picker.ts";
import type { Endpoint } from "../endpoint/endpoint.ts";

/**
 * What an upstream's endpoint pool needs of the live object it keeps per endpoint. A transport
 * implements it (the HTTP transport's `EndpointHandle`, which owns an undici `Pool`); the pool makes
 * handles through the {@link HandleFactory} the mesh gives it, so this floor never names a transport.
 * @internal
 */
export interface PoolHandle extends PickTarget {
  /** The current endpoint record. */
  readonly endpoint: Endpoint;
  /** The weight balancers use; the pool sets it (slow start) before it builds a picker. */
  weight: number;
  /** When the endpoint joined a known set (the clock's time), for slow start; undefined if it was there from the start. */
  readonly addedAt: number | undefined;
  /** Whether the handle has opened its connection pool. */
  readonly hasPool: boolean;
  /** Open connections to the endpoint. */
  readonly connections: number;
  /** Replaces the record with a newer one for the same origin (health, weight or metadata changed). */
  update(endpoint: Endpoint): void;
  /** Lets requests already sent finish, then closes the connections. Idempotent. */
  close(): Promise<void>;
  /** Aborts requests in flight with `error` and closes the connections now. */
  destroy(error: Error): Promise<void>;
}

/**
 * Makes the handle of an endpoint that joins a service's pool.
 *
 * @param service - the upstream service
 * @param endpoint - the endpoint record
 * @param addedAt - when it joined an already known set (slow start), or undefined
 * @internal
 */
export type HandleFactory<H extends PoolHandle> = (service: string, endpoint: Endpoint, addedAt: number | undefined) => H;

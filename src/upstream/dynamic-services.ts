import type { Clock, TimerHandle } from "../core/clock.ts";
import { MeshError } from "../core/errors.ts";
import { expectOptions, optionalNumber } from "../core/validate.ts";

/**
 * Limits on the services the mesh learns of from request data: the host of a `mesh.dispatcher` URL (or
 * of a redirect hop the caller allowed) that no `mesh.client()` call, route or gRPC call named.
 */
export interface DynamicServicesOptions {
  /**
   * The most such services watched at once. A request naming one more fails at once with
   * `ERR_TOO_MANY_SERVICES` and nothing is looked up or sent. Default 1024 (Envoy's dynamic forward
   * proxy `max_hosts`).
   */
  readonly max?: number;
  /**
   * How long such a service may go unused before its registry watch and connections are released, in ms
   * on the mesh's clock; it is looked up again on its next use. Default 300000 (5 minutes, Envoy's
   * dynamic forward proxy `host_ttl`).
   */
  readonly idleTimeout?: number;
}

/** The defaults of {@link DynamicServicesOptions}. @internal */
export const DYNAMIC_SERVICES_DEFAULTS = Object.freeze({ max: 1024, idleTimeout: 300_000 });

/** `dynamicServices` checked, with defaults. @internal */
export function parseDynamicServices(raw: unknown): { readonly max: number; readonly idleTimeout: number } {
  const o = expectOptions(raw, "dynamicServices", ["max", "idleTimeout"]);
  return {
    max: optionalNumber(o.max, "dynamicServices.max", { min: 1, integer: true }) ?? DYNAMIC_SERVICES_DEFAULTS.max,
    idleTimeout: optionalNumber(o.idleTimeout, "dynamicServices.idleTimeout", { min: 1 }) ?? DYNAMIC_SERVICES_DEFAULTS.idleTimeout,
  };
}

/** What {@link DynamicServices} asks of the mesh. @internal */
export interface DynamicServicesHooks {
  /** Whether the service still has work: requests in flight, queued, or waiting for the registry. */
  busy(service: string): boolean;
  /** Stops watching the service and forgets it (it calls {@link DynamicServices.delete}). */
  release(service: string): void;
}

/**
 * The services named by request data, with when each was last used: capped, and released after an idle
 * period on the mesh's clock by one timer (a sweep at the earliest expiry), never while busy. @internal
 */
export class DynamicServices {
  readonly max: number;
  readonly idleTimeout: number;
  readonly #lastUsed = new Map<string, number>();
  readonly #clock: Clock;
  readonly #hooks: DynamicServicesHooks;
  #timer: TimerHandle;
  #armed = false;

  constructor(settings: { readonly max: number; readonly idleTimeout: number }, clock: Clock, hooks: DynamicServicesHooks) {
    this.max = settings.max;
    this.idleTimeout = settings.idleTimeout;
    this.#clock = clock;
    this.#hooks = hooks;
  }

  /** How many are watched now. */
  get size(): number {
    return this.#lastUsed.size;
  }

  /** Whether the service was named by request data only (and is still watched). */
  has(service: string): boolean {
    return this.#lastUsed.has(service);
  }

  /** `ERR_TOO_MANY_SERVICES` when one more would pass the cap; undefined while there is room. */
  refusal(service: string): MeshError | undefined {
    if (this.#lastUsed.size < this.max) return undefined;
    return new MeshError(
      "ERR_TOO_MANY_SERVICES",
      `Too many services: the mesh already watches ${this.max} services named only by request data (mesh.dispatcher URL hosts), ` +
        `the most dynamicServices.max allows, so ${JSON.stringify(service)} was not looked up and nothing was sent. ` +
        `Call mesh.client("<name>") once for the services your code calls (those are not counted), raise dynamicServices.max, ` +
        `or lower dynamicServices.idleTimeout (now ${this.idleTimeout} ms) so unused ones are released sooner.`,
      { details: { service, field: "dynamicServices.max", max: this.max } },
    );
  }

  /** Counts a new service named by request data, used now. */
  add(service: string): void {
    this.#lastUsed.set(service, this.#clock.now());
    if (!this.#armed) this.#arm(this.idleTimeout);
  }

  /** Marks a service named by request data as used now; does nothing for others. */
  touch(service: string): void {
    if (this.#lastUsed.has(service)) this.#lastUsed.set(service, this.#clock.now());
  }

  /** Stops counting a service (the code named it, or it was released). */
  delete(service: string): void {
    this.#lastUsed.delete(service);
  }

  /** Stops the timer (the mesh closed). */
  close(): void {
    if (this.#armed) this.#clock.clearTimeout(this.#timer);
    this.#armed = false;
  }

  #arm(ms: number): void {
    this.#armed = true;
    this.#timer = this.#clock.setTimeout(() => this.#sweep(), ms);
  }

  #sweep(): void {
    this.#armed = false;
    const now = this.#clock.now();
    for (const [service, at] of this.#lastUsed) {
      if (now - at < this.idleTimeout) continue;
      // Work in flight counts as use: it gets a whole idle period after it.
      if (this.#hooks.busy(service)) this.#lastUsed.set(service, now);
      else this.#hooks.release(service);
    }
    let next = Infinity;
    for (const at of this.#lastUsed.values()) next = Math.min(next, at + this.idleTimeout);
    if (next !== Infinity) this.#arm(Math.max(1, next - now));
  }
}

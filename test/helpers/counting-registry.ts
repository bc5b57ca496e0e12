import type { Registry, RegistryListener, RegistryWatch } from "proxyless";

/**
 * Wraps a registry and counts the watches open on it (now, and at most at once). With `async`, every
 * answer reaches the mesh on a later turn of the event loop, as a network registry's (Consul's) does, so
 * a service stays *not yet known* while the request that named it waits.
 */
export class CountingRegistry implements Registry {
  readonly #inner: Registry;
  readonly #async: boolean;
  /** Watches open now, by service. */
  readonly open = new Map<string, number>();
  /** Watches open now. */
  active = 0;
  /** The most watches open at once. */
  peak = 0;
  /** Watches ever opened. */
  opened = 0;

  constructor(inner: Registry, options: { readonly async?: boolean } = {}) {
    this.#inner = inner;
    this.#async = options.async === true;
  }

  watch(service: string, listener: RegistryListener): RegistryWatch {
    this.active++;
    this.opened++;
    this.peak = Math.max(this.peak, this.active);
    this.open.set(service, (this.open.get(service) ?? 0) + 1);
    let closed = false;
    const deliver: RegistryListener = this.#async ? (update) => setImmediate(() => closed || listener(update)) : listener;
    const inner = this.#inner.watch(service, deliver);
    return {
      close: () => {
        if (closed) return;
        closed = true;
        this.active--;
        const n = (this.open.get(service) ?? 1) - 1;
        if (n === 0) this.open.delete(service);
        else this.open.set(service, n);
        inner.close();
      },
    };
  }
}

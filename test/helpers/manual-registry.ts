import type { Registry, RegistryListener, RegistryUpdate, RegistryWatch } from "proxyless";

/** A registry that answers only when the test says so: for the *not yet known* state. */
export class ManualRegistry implements Registry {
  readonly listeners = new Map<string, RegistryListener>();

  watch(service: string, listener: RegistryListener): RegistryWatch {
    this.listeners.set(service, listener);
    return { close: () => this.listeners.delete(service) };
  }

  send(service: string, update: RegistryUpdate): void {
    const listener = this.listeners.get(service);
    if (listener === undefined) throw new Error(`nobody watches ${service}`);
    listener(update);
  }
}

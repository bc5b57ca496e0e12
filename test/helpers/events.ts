import type { EndpointsChangedEvent, Mesh, RegistryErrorEvent } from "proxyless";

/** The next `endpoints_changed` event of a service for which `accept` holds. */
export function nextEndpoints(mesh: Mesh, service: string, accept: (e: EndpointsChangedEvent) => boolean = () => true): Promise<EndpointsChangedEvent> {
  return new Promise((resolve) => {
    const listener = (e: EndpointsChangedEvent): void => {
      if (e.service !== service || !accept(e)) return;
      mesh.off("endpoints_changed", listener);
      resolve(e);
    };
    mesh.on("endpoints_changed", listener);
  });
}

/** The next `registry_error` event. */
export function nextRegistryError(mesh: Mesh): Promise<RegistryErrorEvent> {
  return new Promise((resolve) => mesh.once("registry_error", resolve));
}

/**
 * Resolves once `condition` holds, checked after each turn of the event loop; fails after `limitMs`.
 * For state that changes in another process (a fake server) and announces it with no event here.
 */
export async function until(condition: () => boolean, limitMs = 5000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`condition never held within ${limitMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

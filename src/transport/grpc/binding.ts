import type { Metadata } from "@grpc/grpc-js";
import type { MeshEvents } from "../../telemetry/mesh-events.ts";
import type { MeshInternals } from "../../mesh-internals.ts";
import type { EndpointHandle } from "../http/endpoint-handle.ts";

const CHANGES = ["endpoints_changed", "config_applied", "endpoint_ejected", "endpoint_returned"] as const satisfies readonly (keyof MeshEvents)[];

/** The metadata key that tells the balancer which endpoint an attempt was given; removed before sending. @internal */
export const PICK_KEY = "x-proxyless-pick";

/**
 * The status metadata of the attempts the balancer refused (nothing was sent: the endpoint could not
 * be reached, may not be used, or left). grpc-js hands a pick's status metadata to the call as it is,
 * so the call layer knows a refusal by the object itself: nothing on the wire can pose as one.
 */
const refusals = new WeakSet<Metadata>();

/** Marks the status metadata of a refused attempt (the balancer). @internal */
export function markRefused(metadata: Metadata): void {
  refusals.add(metadata);
}

/** Whether a status's metadata is that of an attempt the balancer refused (the call layer). @internal */
export function isRefused(metadata: Metadata): boolean {
  return refusals.has(metadata);
}

/** The channel option (a resolver attribute) that hands a binding to the balancer. @internal */
export const BINDING_OPTION = "grpc.internal.no_subchannel.proxyless_binding";

/**
 * Whether an endpoint handle is still its service's, for one pass over many (each service's handles
 * are read once). A handle is its service's until the endpoint leaves; a closed mesh has none. @internal
 */
export function liveHandles(mesh: MeshInternals): (handle: EndpointHandle, service: string) => boolean {
  const live = new Map<string, Set<EndpointHandle>>();
  return (handle, service) => {
    let handles = live.get(service);
    if (handles === undefined) live.set(service, (handles = new Set(mesh.closed() ? [] : mesh.stateOf(service).handles)));
    return handles.has(handle);
  };
}

/** An endpoint of a service, as the balancer finds it from an attempt's token. @internal */
export interface PickTarget {
  readonly handle: EndpointHandle;
  /** The service the endpoint belongs to (routing may send a call to another service). */
  readonly service: string;
}

/**
 * A mesh as grpc-js sees it: found by the resolver from a target's authority, handed to the balancer
 * as a resolver attribute. Gives each endpoint a token (the same for every attempt to it) that the
 * balancer reads back. @internal
 */
export class Binding {
  readonly id: string;
  readonly mesh: MeshInternals;
  /** TLS server names the balancer set on subchannels, and the service each stands for (for the peer check). */
  readonly serverNames = new Map<string, string>();
  readonly #tokens = new WeakMap<EndpointHandle, string>();
  readonly #targets = new Map<string, PickTarget>();
  #next = 0;
  /** The size of #targets after the last sweep of endpoints that left. */
  #swept = 0;
  #inFlight = 0;
  readonly #watchers = new Set<() => void>();
  readonly #changed = (): void => {
    // First forget the endpoints that left, so that the balancers' picks again refuse their tokens.
    this.#sweep();
    for (const watcher of [...this.#watchers]) watcher();
  };

  /** The calls under way (routed, not yet ended): destroy() ends them. */
  readonly #calls = new Set<{ destroy(error: Error): void }>();

  constructor(id: string, mesh: MeshInternals) {
    this.id = id;
    this.mesh = mesh;
    mesh.onDestroy((error) => {
      for (const call of [...this.#calls]) call.destroy(error);
    });
  }

  /** Tracks a call under way, until {@link Binding.callEnded}: the mesh's destroy() ends it. */
  callStarted(call: { destroy(error: Error): void }): void {
    this.#calls.add(call);
  }

  /** A call ended. */
  callEnded(call: { destroy(error: Error): void }): void {
    this.#calls.delete(call);
  }

  /** The token of an endpoint of `service` (the metadata value of each attempt sent to it). */
  tokenFor(handle: EndpointHandle, service: string): string {
    const known = this.#tokens.get(handle);
    if (known !== undefined) return known;
    if (this.#targets.size >= 2 * this.#swept + 16) this.#sweep();
    const token = String(++this.#next);
    this.#tokens.set(handle, token);
    this.#targets.set(token, { handle, service });
    return token;
  }

  /**
   * The endpoint of a token; undefined once the endpoint has left its service (at the change, while a
   * balancer watches the mesh; otherwise when more tokens are made).
   */
  target(token: string): PickTarget | undefined {
    return this.#targets.get(token);
  }

  /** Forgets the tokens of endpoints that left their service (as new tokens are made, so at most about half are stale). */
  #sweep(): void {
    const isLive = liveHandles(this.mesh);
    for (const [token, { handle, service }] of this.#targets) {
      if (!isLive(handle, service)) {
        this.#targets.delete(token);
        this.#tokens.delete(handle);
      }
    }
    this.#swept = this.#targets.size;
  }

  /** Counts an attempt sent (until {@link Binding.attemptEnded}). */
  attemptStarted(): void {
    this.#inFlight++;
  }

  /** Counts an attempt ended. */
  attemptEnded(): void {
    this.#inFlight--;
  }

  /**
   * Calls `watcher` when endpoints, config or ejections change in any service of the mesh (one set of
   * listeners on the mesh, however many channels watch). Returns the function that stops it.
   */
  watch(watcher: () => void): () => void {
    const events = this.mesh.events;
    if (this.#watchers.size === 0) for (const name of CHANGES) events.on(name, this.#changed);
    this.#watchers.add(watcher);
    return () => {
      if (!this.#watchers.delete(watcher) || this.#watchers.size > 0) return;
      for (const name of CHANGES) events.off(name, this.#changed);
    };
  }

  /** Attempts in flight (for tests: none may leak). */
  get inFlight(): number {
    return this.#inFlight;
  }
}

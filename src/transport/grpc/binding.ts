import type { MeshEvents } from "../../core/events.ts";
import type { MeshInternals } from "../../core/mesh-internals.ts";
import type { EndpointHandle } from "../http/endpoint-handle.ts";

const CHANGES = ["endpoints_changed", "config_applied", "endpoint_ejected", "endpoint_returned"] as const satisfies readonly (keyof MeshEvents)[];

/** The metadata key that tells the balancer which endpoint an attempt was given; removed before sending. @internal */
export const PICK_KEY = "x-proxyless-pick";

/** The channel option (a resolver attribute) that hands a binding to the balancer. @internal */
export const BINDING_OPTION = "grpc.internal.no_subchannel.proxyless_binding";

/**
 * One attempt's endpoint, chosen by the call layer, as the balancer reads it; the balancer says back
 * whether the attempt could not connect (nothing was sent). @internal
 */
export interface AttemptPick {
  readonly handle: EndpointHandle;
  /** The service the endpoint belongs to (routing may send a call to another service). */
  readonly service: string;
  /** Set by the balancer: the endpoint could not be reached, or may not be used (mTLS). */
  refused: Error | undefined;
}

/**
 * A mesh as grpc-js sees it: found by the resolver from a target's authority, handed to the balancer
 * as a resolver attribute. Holds the attempts in flight by token. @internal
 */
export class Binding {
  readonly id: string;
  readonly mesh: MeshInternals;
  /** TLS server names the balancer set on subchannels, and the service each stands for (for the peer check). */
  readonly serverNames = new Map<string, string>();
  readonly #attempts = new Map<string, AttemptPick>();
  #next = 0;
  readonly #watchers = new Set<() => void>();
  readonly #changed = (): void => {
    for (const watcher of [...this.#watchers]) watcher();
  };

  constructor(id: string, mesh: MeshInternals) {
    this.id = id;
    this.mesh = mesh;
  }

  /** Registers an attempt's pick; returns its token (the metadata value). */
  register(pick: AttemptPick): string {
    const token = String(++this.#next);
    this.#attempts.set(token, pick);
    return token;
  }

  /** The pick of a token, if it is still in flight. */
  lookup(token: string): AttemptPick | undefined {
    return this.#attempts.get(token);
  }

  /** Forgets an attempt (it ended). */
  release(token: string): void {
    this.#attempts.delete(token);
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
    return this.#attempts.size;
  }
}

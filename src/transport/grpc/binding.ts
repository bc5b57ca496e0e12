import type { Metadata, MetadataOptions } from "@grpc/grpc-js";
import type { MeshError } from "../../core/errors.ts";
import type { MeshEvents } from "../../telemetry/mesh-events.ts";
import type { MeshInternals } from "../../mesh-internals.ts";
import type { EndpointHandle } from "../http/endpoint-handle.ts";

const CHANGES = ["endpoints_changed", "config_applied", "endpoint_ejected", "endpoint_returned"] as const satisfies readonly (keyof MeshEvents)[];

/**
 * A metadata key the mesh reserves: once the channel that told the balancer which endpoint an attempt
 * was given. The pick no longer travels in metadata (see {@link Binding.markPick}); the balancer removes
 * the key from every call, so a value a caller sets is neither obeyed nor sent. @internal
 */
export const PICK_KEY = "x-proxyless-pick";

/**
 * The status metadata of the attempts the balancer refused (nothing was sent: the endpoint could not
 * be reached, may not be used, or left), with the reason. grpc-js hands a pick's status metadata to the
 * call as it is, so the call layer knows a refusal by the object itself: nothing on the wire can pose
 * as one.
 */
const refusals = new WeakMap<Metadata, MeshError>();

/** Marks the status metadata of a refused attempt, with why (the balancer). @internal */
export function markRefused(metadata: Metadata, reason: MeshError): void {
  refusals.set(metadata, reason);
}

/** Why the balancer refused an attempt, when a status's metadata is that of a refusal (the call layer). @internal */
export function refusalOf(metadata: Metadata): MeshError | undefined {
  return refusals.get(metadata);
}

/** How many connection failures a binding remembers for its balancers (see {@link Binding.connectFailed}). */
const FAILURES_KEPT = 64;

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
 * as a resolver attribute. It carries the endpoint the call layer chose for each attempt to the
 * balancer, out of reach of callers (see {@link Binding.markPick}). @internal
 */
export class Binding {
  readonly id: string;
  readonly mesh: MeshInternals;
  readonly #tokens = new WeakMap<EndpointHandle, string>();
  readonly #targets = new Map<string, PickTarget>();
  /** The key of the pick on a marked metadata's options: a symbol of this binding's own, which no caller holds. */
  readonly #pickKey = Symbol("proxyless.pick");
  /** The mesh's own errors of recent failed connections, by grpc-js's text of them. */
  readonly #failures = new Map<string, MeshError>();
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

  /**
   * Tells the balancer that the attempt whose metadata this is goes to `handle`, an endpoint of
   * `service` (the call layer, just before it starts the attempt with this metadata).
   *
   * The pick rides on the metadata's options object, which grpc-js keeps (by reference) through every
   * copy of the metadata down to the balancer's pick: a fresh object per attempt, the pick under a
   * symbol known only to this binding. Nothing a caller can write (metadata, options of their own) is ever found here, so a
   * caller cannot send a call to an endpoint the mesh did not choose.
   */
  markPick(metadata: Metadata, handle: EndpointHandle, service: string): void {
    // A property under a symbol only this binding holds (cheaper than a WeakMap entry per attempt, and as unforgeable).
    const options: MetadataOptions & Record<symbol, string> = { ...metadata.getOptions(), [this.#pickKey]: this.tokenFor(handle, service) };
    metadata.setOptions(options);
  }

  /**
   * The endpoint the call layer chose for an attempt (the balancer): undefined for a call the call
   * layer did not mark (a client without the mesh's interceptor); `"left"` when the endpoint left its
   * service since.
   */
  pickOf(metadata: Metadata): PickTarget | "left" | undefined {
    const token = (metadata.getOptions() as Partial<Record<symbol, string>>)[this.#pickKey];
    if (token === undefined) return undefined;
    return this.#targets.get(token) ?? "left";
  }

  /**
   * Remembers the mesh's own error for a connection it refused (the credentials' peer check), so that
   * balancers, which hear of a failed connection only as grpc-js's text of the error, can give the
   * caller the typed error. A few are kept, the newest.
   */
  connectFailed(error: MeshError): void {
    const text = String(error);
    this.#failures.delete(text);
    this.#failures.set(text, error);
    if (this.#failures.size > FAILURES_KEPT) this.#failures.delete(this.#failures.keys().next().value as string);
  }

  /** The mesh's error behind grpc-js's text of a connection failure, if the mesh refused the connection. */
  connectFailure(text: string | undefined): MeshError | undefined {
    return text === undefined ? undefined : this.#failures.get(text);
  }

  /** The token of an endpoint of `service` (the same for every attempt to it). */
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

import { connectivityState as ConnectivityState, experimental, Metadata, status as Status, type ChannelOptions } from "@grpc/grpc-js";
import { MeshError } from "../../core/errors.ts";
import { identityUnavailable, identityWithin } from "../../security/identity-source.ts";
import type { EndpointHandle } from "../http/endpoint-handle.ts";
import { BINDING_OPTION, liveHandles, markRefused, PICK_KEY, type Binding } from "./binding.ts";
import { PEER_ENDPOINT_OPTION, PEER_IDENTITY_OPTION, PEER_OPTIONS, PEER_SERVICE_OPTION } from "./peer-credentials.ts";
import { recordLoad } from "./record-load.ts";
import { httpEquivalent } from "./status-map.ts";

/** The name the balancer is registered under in grpc-js. @internal */
export const LB_POLICY = "proxyless_mesh";

/** The balancer's config: the service of the channel's target. @internal */
export class MeshLbConfig implements experimental.TypedLoadBalancingConfig {
  readonly service: string;

  constructor(service: string) {
    this.service = service;
  }

  getLoadBalancerName(): string {
    return LB_POLICY;
  }

  toJsonObject(): object {
    return { [LB_POLICY]: { service: this.service } };
  }

  static createFromJson(obj: unknown): MeshLbConfig {
    const service = (obj as { service?: unknown } | null)?.service;
    if (typeof service !== "string") throw new Error(`${LB_POLICY} config needs a service name`);
    return new MeshLbConfig(service);
  }
}

interface Entry {
  readonly subchannel: experimental.SubchannelInterface;
  readonly service: string;
  readonly listener: experimental.ConnectivityStateListener;
  /** Why the last connection attempt failed, as grpc-js said it. */
  lastError: string | undefined;
  /** The mesh's own error for it, when the mesh refused the connection (the peer's identity). */
  lastRefusal: MeshError | undefined;
  /** The pick of the interceptor's attempts: the same each time (they count their own load). */
  readonly picked: experimental.PickResult;
}

type Reach = Entry | { readonly refusal: MeshError } | "wait";

const QUEUE: experimental.PickResult = { pickResultType: experimental.PickResultType.QUEUE, subchannel: null, status: null, onCallStarted: null, onCallEnded: null };

/**
 * An UNAVAILABLE pick. `refused`: an attempt of the mesh's call layer that sent nothing, marked as such
 * with the reason (a connect failure, not the endpoint's answer) and dropped rather than failed, so that
 * grpc-js ends it even when the caller asked to wait for ready: the call layer picks another endpoint itself.
 */
function unavailable(reason: string | MeshError, refused = false): experimental.PickResult {
  const metadata = new Metadata();
  const error = typeof reason === "string" ? new MeshError("ERR_NO_ENDPOINTS", reason) : reason;
  if (refused) markRefused(metadata, error);
  const type = refused ? experimental.PickResultType.DROP : experimental.PickResultType.TRANSIENT_FAILURE;
  return { pickResultType: type, subchannel: null, status: { code: Status.UNAVAILABLE, details: error.message, metadata }, onCallStarted: null, onCallEnded: null };
}

/** A picker is a fresh object per state change, so grpc-js runs queued picks again; it asks the balancer. */
class MeshPicker implements experimental.Picker {
  readonly #balancer: MeshBalancer;
  constructor(balancer: MeshBalancer) {
    this.#balancer = balancer;
  }
  pick(args: experimental.PickArgs): experimental.PickResult {
    return this.#balancer.pick(args);
  }
}

/**
 * grpc-js's `proxyless_mesh` balancer. An attempt sent by the mesh's interceptor carries the endpoint
 * the mesh's own balancer chose (routing, subsets, least request, peak EWMA, ring hash, ejections), in
 * a way only the interceptor can produce ({@link Binding.markPick}); any other call, whatever its
 * metadata says, is balanced over the target service by the same picker. Either way the balancer
 * keeps one grpc-js subchannel per endpoint, made on first use, and counts the endpoint's load (calls in
 * flight, round trips) where HTTP calls count it. @internal
 */
export class MeshBalancer implements experimental.LoadBalancer {
  readonly #helper: experimental.ChannelControlHelper;
  #binding: Binding | undefined;
  #service: string | undefined;
  #options: ChannelOptions = {};
  readonly #entries = new Map<EndpointHandle, Entry>();
  #off: (() => void) | undefined;
  #waitingForIdentity = false;
  #identityError: MeshError | undefined;
  #destroyed = false;

  constructor(helper: experimental.ChannelControlHelper) {
    this.#helper = helper;
  }

  updateAddressList(_endpoints: experimental.StatusOr<experimental.Endpoint[]>, config: experimental.TypedLoadBalancingConfig, options: ChannelOptions): boolean {
    if (!(config instanceof MeshLbConfig)) return false;
    const binding = (options as Record<string, unknown>)[BINDING_OPTION] as Binding | undefined;
    if (binding === undefined) {
      const details = `The ${LB_POLICY} balancer works with proxyless: targets only (grpcMesh(mesh).target(service)).`;
      this.#helper.updateState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details }), details);
      return true;
    }
    // The peer options are the balancer's to set per subchannel (the identity each connection must prove).
    this.#options = Object.fromEntries(Object.entries(options).filter(([key]) => key !== BINDING_OPTION && !PEER_OPTIONS.includes(key)));
    if (binding !== this.#binding) {
      this.#off?.();
      this.#off = binding.watch(() => this.#changed());
    }
    this.#binding = binding;
    this.#service = config.service;
    this.#publish();
    return true;
  }

  /** Endpoints or config changed somewhere: drop subchannels of endpoints that left, and pick again. */
  #changed(): void {
    const binding = this.#binding;
    if (binding === undefined || this.#destroyed) return;
    const isLive = liveHandles(binding.mesh);
    for (const [handle, entry] of this.#entries) if (!isLive(handle, entry.service)) this.#drop(handle, entry);
    this.#publish();
  }

  #drop(handle: EndpointHandle, entry: Entry): void {
    this.#entries.delete(handle);
    entry.subchannel.removeConnectivityStateListener(entry.listener);
    entry.subchannel.unref();
    this.#helper.removeChannelzChild(entry.subchannel.getChannelzRef());
  }

  /** Tells the channel the state and a new picker (which makes grpc-js run queued picks again). */
  #publish(): void {
    const binding = this.#binding;
    const service = this.#service;
    if (binding === undefined || service === undefined || this.#destroyed) return;
    if (binding.mesh.closed()) {
      const details = "The mesh is closed. Create a new mesh with createMesh() and bind it with grpcMesh().";
      this.#helper.updateState(ConnectivityState.TRANSIENT_FAILURE, new experimental.UnavailablePicker({ details }), details);
      return;
    }
    const state = binding.mesh.stateOf(service);
    const connectivity = state.picker !== undefined ? ConnectivityState.READY : state.settled ? ConnectivityState.TRANSIENT_FAILURE : ConnectivityState.CONNECTING;
    this.#helper.updateState(connectivity, new MeshPicker(this), connectivity === ConnectivityState.TRANSIENT_FAILURE ? state.unavailableError().message : null);
  }

  /** Picks for one attempt (see the class). @internal */
  pick(args: experimental.PickArgs): experimental.PickResult {
    const binding = this.#binding;
    const service = this.#service;
    if (binding === undefined || service === undefined) return QUEUE;
    if (binding.mesh.closed()) return unavailable("The mesh is closed. Create a new mesh with createMesh() and bind it with grpcMesh().");
    // Reserved: a caller's value is neither obeyed nor sent (the mesh's pick does not travel in metadata).
    args.metadata.remove(PICK_KEY);
    const target = binding.pickOf(args.metadata);
    // The endpoint left its service after the call layer chose it: nothing is sent, and the call layer picks again.
    if (target === "left") return unavailable("The endpoint chosen for this call left its service before the call was sent; nothing was sent.", true);
    if (target !== undefined) return this.#reach(target.handle, target.service, true);
    // A call without the mesh's interceptor: balance over the target service.
    const state = binding.mesh.stateOf(service);
    const picker = state.picker;
    if (picker === undefined) {
      if (state.settled) return unavailable(state.unavailableError().message);
      void state.settle().then(() => this.#publish());
      return QUEUE;
    }
    let result = QUEUE;
    for (let i = 0; i < 3; i++) {
      result = this.#reach(picker.pick({ hash: undefined }), service, false);
      if (result.pickResultType !== experimental.PickResultType.TRANSIENT_FAILURE) return result;
    }
    return result;
  }

  /** The pick of `handle`; `attempt`: for an attempt of the mesh's call layer (which counts its load, and learns of a refusal). */
  #reach(handle: EndpointHandle, service: string, attempt: boolean): experimental.PickResult {
    const reach = this.#entryFor(handle, service);
    if (reach === "wait") return QUEUE;
    if ("refusal" in reach) return unavailable(reach.refusal, attempt);
    const subchannel = reach.subchannel;
    switch (subchannel.getConnectivityState()) {
      case ConnectivityState.READY:
        // The interceptor's attempts count the endpoint's load themselves, from the attempt's start to its status.
        return attempt ? reach.picked : this.#complete(subchannel, handle, service);
      case ConnectivityState.IDLE:
        subchannel.startConnecting();
        return QUEUE;
      case ConnectivityState.CONNECTING:
        return QUEUE;
      default: {
        // The peer's identity refused (ERR_PEER_IDENTITY) is said as such, as HTTP says it; any other failure is a failed connect.
        if (reach.lastRefusal !== undefined) return unavailable(reach.lastRefusal, attempt);
        const why = reach.lastError === undefined ? "" : ` (${reach.lastError})`;
        return unavailable(new MeshError("ERR_NO_ENDPOINTS", `Could not connect to endpoint ${handle.endpoint.id} of '${service}'${why}; nothing was sent.`, { details: { service, endpoint: handle.endpoint.id } }), attempt);
      }
    }
  }

  /** The pick of a call without the mesh's interceptor: it counts the endpoint's load and tells outlier detection. */
  #complete(subchannel: experimental.SubchannelInterface, handle: EndpointHandle, service: string): experimental.PickResult {
    const binding = this.#binding as Binding;
    const state = binding.mesh.stateOf(service);
    const clock = state.env.clock;
    const load = handle.load;
    let start = 0;
    return {
      pickResultType: experimental.PickResultType.COMPLETE,
      subchannel,
      status: null,
      onCallStarted: () => {
        load.pending++;
        start = clock.now();
      },
      onCallEnded: (code: Status) => {
        load.pending--;
        const now = clock.now();
        recordLoad(load, code, now - start, now, false);
        if (code !== Status.CANCELLED) {
          const outlier = state.guard.outlier;
          if (httpEquivalent(code) >= 500) outlier?.failure(handle.endpoint.id, state.endpoints?.size ?? 1);
          else outlier?.success(handle.endpoint.id);
        }
      },
    };
  }

  #entryFor(handle: EndpointHandle, service: string): Reach {
    const existing = this.#entries.get(handle);
    if (existing !== undefined) return existing;
    const binding = this.#binding as Binding;
    const endpoint = handle.endpoint;
    const security = binding.mesh.security;
    const args: ChannelOptions = { ...this.#options };
    if (security !== undefined) {
      if (endpoint.tls === false) {
        return {
          refusal: new MeshError("ERR_TLS_REQUIRED", `Endpoint ${endpoint.id} of '${service}' speaks plaintext only and gRPC calls through the mesh use mTLS: nothing was sent. Make the service mTLS-capable.`, {
            details: { service, endpoint: endpoint.id },
          }),
        };
      }
      const identity = security.identity;
      if (identity === undefined) {
        // The first connections wait for the mesh's identity (Consul may still be issuing the leaf), up to the connect timeout.
        if (this.#identityError !== undefined) return { refusal: this.#identityError };
        if (!this.#waitingForIdentity) {
          this.#waitingForIdentity = true;
          // Not holding the process: grpc-js does, while its calls wait for this pick.
          identityWithin(security.source, security.connectTimeout, false).then(
            () => {
              this.#waitingForIdentity = false;
              this.#identityError = undefined;
              this.#publish();
            },
            (err: unknown) => {
              this.#waitingForIdentity = false;
              this.#identityError = err instanceof MeshError ? err : identityUnavailable(security.connectTimeout, err);
              this.#publish();
            },
          );
        }
        return "wait";
      }
      args["grpc.ssl_target_name_override"] = security.options.serverName(service, identity.trustDomain);
      // Whom the connection is for: the credentials check the peer against the endpoint's own identity, else its service's.
      args[PEER_SERVICE_OPTION] = service;
      args[PEER_ENDPOINT_OPTION] = endpoint.id;
      if (endpoint.identity !== undefined) args[PEER_IDENTITY_OPTION] = endpoint.identity;
    }
    const subchannel = this.#helper.createSubchannel({ host: endpoint.address, port: endpoint.port }, args);
    // eslint-disable-next-line prefer-const -- the listener reads it, and is made first
    let entry: Entry;
    const listener: experimental.ConnectivityStateListener = (_sub, previous, next, _keepalive, errorMessage) => {
      if (next === ConnectivityState.TRANSIENT_FAILURE) {
        entry.lastError = errorMessage;
        entry.lastRefusal = binding.connectFailure(errorMessage);
      }
      if (previous !== next) this.#publish();
    };
    subchannel.ref();
    this.#helper.addChannelzChild(subchannel.getChannelzRef());
    subchannel.addConnectivityStateListener(listener);
    entry = { subchannel, service, listener, lastError: undefined, lastRefusal: undefined, picked: { pickResultType: experimental.PickResultType.COMPLETE, subchannel, status: null, onCallStarted: null, onCallEnded: null } };
    this.#entries.set(handle, entry);
    return entry;
  }

  exitIdle(): void {
    // Nothing idles: subchannels are made and connected when a pick needs them.
  }

  resetBackoff(): void {
    // Subchannels reconnect on their own schedule; the mesh's endpoints come and go through the registry.
  }

  destroy(): void {
    this.#destroyed = true;
    this.#off?.();
    for (const [handle, entry] of [...this.#entries]) this.#drop(handle, entry);
  }

  getTypeName(): string {
    return LB_POLICY;
  }
}

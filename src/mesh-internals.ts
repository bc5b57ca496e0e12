import type { EventEmitter } from "node:events";
import type { EndpointHandle } from "./transport/http/endpoint-handle.ts";
import type { UpstreamView } from "./upstream/upstream-view.ts";
import type { MeshEvents } from "./telemetry/mesh-events.ts";
import type { TransportSecurity } from "./security/transport-security.ts";
import type { MeshTelemetry } from "./telemetry/mesh-telemetry.ts";

/**
 * What another transport (the grpc-js integration) needs of a mesh, kept off its public API: the
 * service states, mTLS and telemetry the HTTP clients use. @internal
 */
export interface MeshInternals {
  /** The state of a service, watched from its first use. */
  readonly stateOf: (service: string) => UpstreamView<EndpointHandle>;
  /** mTLS, when the mesh has an identity. */
  readonly security: TransportSecurity | undefined;
  readonly telemetry: MeshTelemetry;
  readonly events: EventEmitter<MeshEvents>;
  /** Whether `close()` or `destroy()` was called. */
  readonly closed: () => boolean;
  /** Calls `listener` when `destroy()` is called, with what calls in flight fail with (the gRPC calls listen). */
  readonly onDestroy: (listener: (error: Error) => void) => void;
}

const internals = new WeakMap<object, MeshInternals>();

/** Records a mesh's internals (its constructor does). @internal */
export function setMeshInternals(mesh: object, value: MeshInternals): void {
  internals.set(mesh, value);
}

/** A mesh's internals, or undefined for an object that is not a mesh. @internal */
export function meshInternals(mesh: object): MeshInternals | undefined {
  return internals.get(mesh);
}

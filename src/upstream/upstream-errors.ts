import { closeMatches } from "../core/close-matches.ts";
import { MeshError } from "../core/errors.ts";
import type { EndpointSet } from "../endpoint/endpoint-set.ts";
import type { DiscoveryWait } from "./discovery-wait.ts";
import type { Status } from "./upstream-view.ts";

/** The error for any call after `mesh.close()`. @internal */
export function meshClosedError(cause?: unknown): MeshError {
  return new MeshError("ERR_MESH_CLOSED", "The mesh is closed. Create a new mesh with createMesh() to send more requests.", cause === undefined ? {} : { cause });
}

/** What an upstream knows when a request finds no picker. @internal */
export interface UnavailableFacts {
  readonly service: string;
  /** Where discovery stands. */
  readonly status: Status;
  /** The services the registry knows, as its last "missing" message said. */
  readonly knownServices: readonly string[] | undefined;
  /** The registry's last failure, if it failed since its last good answer. */
  readonly lastError: Error | undefined;
  /** The mesh's discovery timeout, in ms. */
  readonly discoveryTimeout: number;
  /** The current endpoint set, if the registry has answered. */
  readonly endpoints: EndpointSet | undefined;
}

/**
 * The error for a request that finds no picker: the mesh is closed, the service is unknown (with the
 * names it may have meant), the registry has not answered, or no endpoint can take traffic.
 *
 * @param wait - the wait for the registry that the request gave up, if any: when the call's own
 *   deadline ended it, the error is `ERR_TIMEOUT`
 * @internal
 */
export function unavailableError(facts: UnavailableFacts, wait?: DiscoveryWait): MeshError {
  const { service, lastError } = facts;
  switch (facts.status) {
    case "closed":
      return meshClosedError();
    case "missing": {
      const similar = closeMatches(service, facts.knownServices ?? []);
      const hint = similar.length === 0 ? "" : ` Did you mean ${similar.map((s) => `'${s}'`).join(" or ")}?`;
      return new MeshError(
        "ERR_UNKNOWN_SERVICE",
        `Service '${service}' is not in the registry.${hint} Check the name, or register the service before calling it.`,
        { details: similar.length === 0 ? { service } : { service, similar } },
      );
    }
    case "pending":
      if (wait?.deadlineMs !== undefined) {
        return new MeshError(
          "ERR_TIMEOUT",
          `A call to '${service}' reached its ${wait.deadlineMs} ms deadline while waiting for the registry's first answer about the service; nothing was sent. Check that the registry is reachable, or raise timeoutMs.`,
          { cause: lastError, details: { service, timeoutMs: wait.deadlineMs, attempts: 0 } },
        );
      }
      return lastError === undefined
        ? new MeshError(
            "ERR_DISCOVERY_TIMEOUT",
            `The registry gave no answer for service '${service}' within ${facts.discoveryTimeout} ms. ` +
              `Check that the registry is reachable, or raise the mesh's 'discoveryTimeout'.`,
            { details: { service } },
          )
        : new MeshError(
            "ERR_REGISTRY_UNAVAILABLE",
            `The registry failed before it answered for service '${service}': ${lastError.message}`,
            { cause: lastError, details: { service } },
          );
    case "known": {
      const all = facts.endpoints?.all ?? [];
      if (all.length === 0) {
        return new MeshError(
          "ERR_NO_ENDPOINTS",
          `Service '${service}' has no endpoints registered. Start an instance or check its registration.`,
          { details: { service, endpoints: 0 } },
        );
      }
      const critical = all.filter((e) => e.health === "critical").length;
      return new MeshError(
        "ERR_NO_ENDPOINTS",
        `None of the ${all.length} endpoints of service '${service}' can take traffic ` +
          `(${critical} critical, ${all.length - critical} with weight 0). Check their health checks.`,
        { details: { service, endpoints: all.length, critical } },
      );
    }
  }
}

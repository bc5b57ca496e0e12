import { experimental, status as Status } from "@grpc/grpc-js";
import { isValidServiceName } from "../../core/service-name.ts";
import { BINDING_OPTION, type Binding } from "./binding.ts";
import { LB_POLICY } from "./mesh-balancer.ts";

/** The URI scheme of mesh targets: `proxyless:///orders`, or `proxyless://<mesh>/orders`. */
export const SCHEME = "proxyless";

/** The meshes bound to grpc-js, by id (a target's authority). @internal */
export const bindings = new Map<string, Binding>();

/** The binding a target's authority names; no authority: the first mesh bound that is still open. @internal */
export function bindingFor(authority: string | undefined): Binding | undefined {
  if (authority !== undefined && authority !== "") return bindings.get(authority);
  for (const binding of bindings.values()) if (!binding.mesh.closed()) return binding;
  return undefined;
}

/** The service a target names: its path without the leading `/`. @internal */
export function serviceOf(target: experimental.GrpcUri): string {
  return target.path.replace(/^\/+/, "");
}

/**
 * grpc-js's resolver for `proxyless:` targets. It does not list addresses for grpc-js to balance over:
 * it hands the mesh to the `proxyless_mesh` balancer (as an attribute) with a service config that
 * selects it, once the registry has answered for the service (or the discovery timeout passed). The
 * balancer follows the service's endpoints and config itself, as HTTP calls do. @internal
 */
export class MeshResolver implements experimental.Resolver {
  readonly #target: experimental.GrpcUri;
  readonly #listener: experimental.ResolverListener;
  #generation = 0;

  constructor(target: experimental.GrpcUri, listener: experimental.ResolverListener) {
    this.#target = target;
    this.#listener = listener;
  }

  updateResolution(): void {
    const generation = ++this.#generation;
    // Never synchronously (grpc-js's rule); after the registry's first answer for the service.
    setImmediate(() => void this.#resolve(generation));
  }

  async #resolve(generation: number): Promise<void> {
    const service = serviceOf(this.#target);
    const binding = bindingFor(this.#target.authority);
    const fail = (details: string): void => {
      if (generation === this.#generation) this.#listener(experimental.statusOrFromError({ code: Status.UNAVAILABLE, details }), {}, null, "");
    };
    if (binding === undefined || binding.mesh.closed()) {
      fail(`No open mesh is bound to grpc-js for target '${experimental.uriToString(this.#target)}'. Call grpcMesh(mesh) first, and use its target() for the name.`);
      return;
    }
    if (!isValidServiceName(service)) {
      fail(`'${this.#target.path}' in target '${experimental.uriToString(this.#target)}' is not a service name: use proxyless:///<service>, such as proxyless:///orders.`);
      return;
    }
    const state = binding.mesh.stateOf(service);
    await state.settle();
    if (generation !== this.#generation) return;
    const endpoints = (state.endpoints?.all ?? []).map((e) => ({ addresses: [{ host: e.address, port: e.port }] }));
    this.#listener(
      experimental.statusOrFromValue(endpoints),
      { [BINDING_OPTION]: binding },
      experimental.statusOrFromValue({ loadBalancingConfig: [{ [LB_POLICY]: { service } }], methodConfig: [] }),
      "",
    );
  }

  destroy(): void {
    this.#generation++;
  }

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    // The `:authority` of every call: the service's name, as HTTP calls send it in Host.
    return serviceOf(target);
  }
}

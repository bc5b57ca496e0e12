import { credentials as grpcCredentials, experimental, ServerCredentials, type ChannelCredentials, type ClientOptions } from "@grpc/grpc-js";
import { invalidConfig } from "../core/errors.ts";
import { meshInternals } from "../mesh-internals.ts";
import { assertServiceName } from "../core/service-name.ts";
import type { Mesh } from "../mesh.ts";
import { Binding } from "../transport/grpc/binding.ts";
import { IdentityCertificates } from "../transport/grpc/identity-certificates.ts";
import { LB_POLICY, MeshBalancer, MeshLbConfig } from "../transport/grpc/mesh-balancer.ts";
import { PeerCheckingCredentials } from "../transport/grpc/peer-credentials.ts";
import { meshInterceptor } from "./mesh-call.ts";
import { bindings, MeshResolver, SCHEME } from "../transport/grpc/resolver.ts";

/** Options of {@link grpcMesh}. */
export interface GrpcMeshOptions {
  /**
   * Methods that may be sent twice: hedged (when the upstream's resilience options set `hedging`) and
   * retried on any retryable status, not only `UNAVAILABLE`. Full names (`/orders.Orders/Get`), or
   * `/orders.Orders/*` for a whole service, or a function of the full name. Clients made with
   * {@link GrpcMesh.client} also take the methods their proto marks `idempotency_level = IDEMPOTENT`
   * or `NO_SIDE_EFFECTS`.
   */
  readonly idempotentMethods?: readonly string[] | ((method: string) => boolean);
}

/** A grpc-js client class, such as one `loadPackageDefinition` or `makeClientConstructor` gives. */
export type GrpcClientConstructor<C> = new (address: string, credentials: ChannelCredentials, options?: ClientOptions) => C;

let installed = false;
let nextId = 0;
const meshes = new WeakMap<Mesh, GrpcMesh>();

/**
 * A mesh bound to grpc-js. Calls made through its clients get what HTTP calls get: discovery, the
 * upstream's balancer, routing on the method and metadata, retries to other endpoints within the
 * deadline and the shared budget, hedging, outlier ejection, the breaker, mTLS with SPIFFE checks and
 * rotation, and OpenTelemetry spans and metrics. Get it with {@link grpcMesh}.
 */
export class GrpcMesh {
  /** The mesh's name in targets: `proxyless://<id>/<service>`. */
  readonly id: string;
  /**
   * The channel credentials of the mesh's calls: mTLS with the mesh's identity (rotated as it is),
   * checking that each peer presents the SPIFFE ID expected of the endpoint it is (the endpoint's own
   * `identity` from the registry, else its service's), as HTTP calls do; insecure when the mesh has no
   * `tls` option.
   */
  readonly credentials: ChannelCredentials;
  readonly #binding: Binding;
  readonly #mesh: Mesh;
  readonly #idempotent: (method: string) => boolean;
  readonly #certificates: IdentityCertificates | undefined;

  /**
   * Prefer {@link grpcMesh}.
   *
   * @param mesh - the mesh
   * @param options - see {@link GrpcMeshOptions}
   */
  constructor(mesh: Mesh, options: GrpcMeshOptions = {}) {
    const internals = meshInternals(mesh);
    if (internals === undefined) throw invalidConfig("mesh", "expected a Mesh made by createMesh()");
    install();
    this.#mesh = mesh;
    this.id = `mesh-${++nextId}`;
    this.#binding = new Binding(this.id, internals);
    this.#idempotent = idempotentMatcher(options.idempotentMethods);
    const security = internals.security;
    if (security === undefined) {
      this.credentials = grpcCredentials.createInsecure();
    } else {
      const certificates = new IdentityCertificates(security.source);
      this.#certificates = certificates;
      const binding = this.#binding;
      // Each connection's peer is checked against the endpoint its subchannel is for (see the balancer).
      this.credentials = new PeerCheckingCredentials(certificates, {
        verify: (service, identity, cert) => security.verifyPeer(service, cert, identity),
        explain: (err, service, endpoint, identity) => security.connectError(err, service, endpoint, identity),
        refused: (error) => binding.connectFailed(error),
      });
    }
    bindings.set(this.id, this.#binding);
  }

  /**
   * The target of a service: `proxyless://<id>/<service>`. `proxyless:///<service>` (no id) names the
   * first mesh bound that is still open.
   *
   * @param service - the service name, such as `orders`
   * @throws MeshError `ERR_INVALID_SERVICE_NAME`
   */
  target(service: string): string {
    assertServiceName(service);
    return `${SCHEME}://${this.id}/${service}`;
  }

  /**
   * Client options for calls to `service`: the mesh's interceptor after yours (so each attempt carries
   * what your interceptors add). Give them to a client you make yourself:
   * `new OrdersClient(grpc.target("orders"), grpc.credentials, grpc.clientOptions("orders"))`.
   *
   * @param service - the service the client calls
   * @param options - your client and channel options
   * @throws MeshError `ERR_INVALID_SERVICE_NAME`
   */
  clientOptions(service: string, options: ClientOptions = {}): ClientOptions {
    assertServiceName(service);
    return this.#options(service, options, this.#idempotent);
  }

  #options(service: string, options: ClientOptions, idempotent: (method: string) => boolean): ClientOptions {
    const mesh = meshInterceptor({ binding: this.#binding, service, idempotent });
    const transform = options.callInvocationTransformer;
    return {
      ...options,
      interceptors: [...(options.interceptors ?? []), mesh],
      // Interceptors given to one call replace the client's (grpc-js): the mesh's goes last among them too.
      callInvocationTransformer: (props) => {
        const out = transform === undefined ? props : transform(props);
        const own = out.callOptions.interceptors;
        if (own !== undefined && own.length > 0 && !own.includes(mesh)) out.callOptions = { ...out.callOptions, interceptors: [...own, mesh] };
        return out;
      },
    };
  }

  /**
   * A grpc-js client for `service`, as `new Client(target, credentials, options)` would make it, with
   * the mesh's target, credentials and interceptor. Methods the client's proto marks idempotent are
   * hedged and retried as such.
   *
   * @param Client - the generated client class
   * @param service - the service to call, such as `orders`
   * @param options - more client and channel options
   * @throws MeshError `ERR_INVALID_SERVICE_NAME`
   *
   * @example
   * ```ts
   * const orders = grpcMesh(mesh).client(proto.orders.Orders, "orders");
   * orders.get({ id: "42" }, (err, order) => { ... });
   * ```
   */
  client<C>(Client: GrpcClientConstructor<C>, service: string, options: ClientOptions = {}): C {
    const target = this.target(service);
    const marked = idempotentInProto(Client);
    const own = this.#idempotent;
    const idempotent = marked.size === 0 ? own : (method: string): boolean => marked.has(method) || own(method);
    return new Client(target, this.credentials, this.#options(service, options, idempotent));
  }

  /**
   * Server credentials for a grpc-js server of this service: mTLS with the mesh's identity (rotated as
   * it is), requiring callers to present a certificate from the trust bundle.
   *
   * @throws MeshError `ERR_INVALID_CONFIG` when the mesh has no `tls` option
   */
  serverCredentials(): ServerCredentials {
    const certificates = this.#certificates;
    if (certificates === undefined) throw invalidConfig("tls", "serverCredentials() needs the mesh's tls option (its identity)");
    return experimental.createCertificateProviderServerCredentials(certificates, certificates, true);
  }

  /** Attempts in flight that the balancer may still be asked about (0 when idle; for tests). */
  get attemptsInFlight(): number {
    return this.#binding.inFlight;
  }

  /**
   * Unbinds the mesh: its targets stop resolving, and its credentials stop following the identity.
   * Close your clients first. Closing the mesh is still yours to do.
   */
  close(): void {
    bindings.delete(this.id);
    this.#certificates?.close();
    if (meshes.get(this.#mesh) === this) meshes.delete(this.#mesh);
  }
}

/**
 * Binds a mesh to grpc-js (once per mesh; later calls return the same object) and registers the
 * `proxyless:` resolver and the `proxyless_mesh` balancer with grpc-js on first use.
 *
 * @param mesh - a mesh from createMesh()
 * @param options - see {@link GrpcMeshOptions}; only the first call's count
 * @throws MeshError `ERR_INVALID_CONFIG` for an object that is not a mesh
 */
export function grpcMesh(mesh: Mesh, options?: GrpcMeshOptions): GrpcMesh {
  let bound = meshes.get(mesh);
  if (bound === undefined) {
    bound = new GrpcMesh(mesh, options);
    meshes.set(mesh, bound);
  }
  return bound;
}

function install(): void {
  if (installed) return;
  experimental.registerResolver(SCHEME, MeshResolver);
  experimental.registerLoadBalancerType(LB_POLICY, MeshBalancer, MeshLbConfig);
  installed = true;
}

function idempotentMatcher(raw: GrpcMeshOptions["idempotentMethods"]): (method: string) => boolean {
  if (raw === undefined) return () => false;
  if (typeof raw === "function") return raw;
  if (!Array.isArray(raw)) throw invalidConfig("idempotentMethods", "expected an array of method names such as /orders.Orders/Get, or a function");
  const exact = new Set<string>();
  const services: string[] = [];
  raw.forEach((name, i) => {
    if (typeof name !== "string" || !/^\/[^/]+\/([^/]+|\*)$/.test(name)) throw invalidConfig(`idempotentMethods[${i}]`, `expected /package.Service/Method or /package.Service/*, got ${JSON.stringify(name)}`);
    if (name.endsWith("/*")) services.push(name.slice(0, -1));
    else exact.add(name);
  });
  return (method) => exact.has(method) || services.some((prefix) => method.startsWith(prefix));
}

/** The methods a generated client's proto marks idempotent (proto-loader keeps method options). */
function idempotentInProto(Client: unknown): Set<string> {
  const out = new Set<string>();
  const service = (Client as { service?: Record<string, { path?: unknown; options?: { idempotency_level?: unknown } }> }).service;
  if (service === undefined || service === null || typeof service !== "object") return out;
  for (const method of Object.values(service)) {
    const level = method.options?.idempotency_level;
    if (typeof method.path === "string" && (level === "IDEMPOTENT" || level === "NO_SIDE_EFFECTS")) out.add(method.path);
  }
  return out;
}

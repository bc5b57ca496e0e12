import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Metadata, status, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { request as undiciRequest } from "undici";
import { meshErrorOf, type Mesh } from "proxyless";
import { ERROR_CODE_KEY, grpcMesh } from "proxyless/grpc";
import { REQUEST_ID_HEADER } from "./chaos-protocol.ts";
import type { CallFn, Outcome } from "./chaos-load.ts";

/** The service name the ten instances are registered under. */
export const SERVICE = "orders";

/** The three ways the bench calls the service. */
export type PathName = "request" | "dispatcher" | "grpc";

/** A way of calling the service on a mesh. */
export interface Caller {
  readonly call: CallFn;
  /** Closes what the caller made (a gRPC client); the mesh is closed by the bench. Idempotent. */
  close(): void;
}

/** One client path: its backend script and how it calls. */
export interface ChaosPath {
  readonly name: PathName;
  readonly label: string;
  /** The backend's file. */
  readonly script: string;
  /** The failure an instance answers with in `fail` mode, as the caller sees it. */
  readonly failLabel: string;
  caller(mesh: Mesh): Caller;
}

/**
 * The outcome key of a thrown error: the mesh's code (seen through fetch's wrapping), else the error's
 * own code (undici's `UND_ERR_*`, a system `ECONNRESET`), else its name.
 *
 * @param err - what a call threw
 */
export function failureKey(err: unknown): Outcome {
  const mesh = meshErrorOf(err);
  if (mesh !== undefined) return mesh.code;
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const name = (err as { name?: unknown }).name;
    if (typeof name === "string") return name;
  }
  return "unknown";
}

const PATH = "/v1/orders";
const BODY = (id: string): string => JSON.stringify({ id, item: "book" });

const requestPath: ChaosPath = {
  name: "request",
  label: "mesh.client(svc).request",
  script: fileURLToPath(new URL("../chaos-backend.ts", import.meta.url)),
  failLabel: "503",
  caller(mesh) {
    const client = mesh.client(SERVICE);
    return {
      call: async (post, id) => {
        try {
          const res = await client.request(
            post ? { method: "POST", path: PATH, headers: { [REQUEST_ID_HEADER]: id, "content-type": "application/json" }, body: BODY(id) } : { method: "GET", path: `${PATH}/42` },
          );
          await res.body.dump();
          return res.statusCode === 200 ? "ok" : `status_${res.statusCode}`;
        } catch (err) {
          return failureKey(err);
        }
      },
      close: () => undefined,
    };
  },
};

const dispatcherPath: ChaosPath = {
  name: "dispatcher",
  label: "undici.request + mesh.dispatcher",
  script: requestPath.script,
  failLabel: "503",
  caller(mesh) {
    const dispatcher = mesh.dispatcher;
    const base = `http://${SERVICE}${PATH}`;
    return {
      call: async (post, id) => {
        try {
          const res = post
            ? await undiciRequest(base, { dispatcher, method: "POST", headers: { [REQUEST_ID_HEADER]: id, "content-type": "application/json" }, body: BODY(id) })
            : await undiciRequest(`${base}/42`, { dispatcher, method: "GET" });
          await res.body.dump();
          return res.statusCode === 200 ? "ok" : `status_${res.statusCode}`;
        } catch (err) {
          return failureKey(err);
        }
      },
      close: () => undefined,
    };
  },
};

const PROTO = fileURLToPath(new URL("../../test/fixtures/grpc/orders.proto", import.meta.url));
let Orders: ServiceClientConstructor | undefined;

/**
 * The outcome key of a failed gRPC call: the mesh's code from the status metadata when the mesh ended
 * it, else `grpc_<STATUS>`.
 *
 * @param err - the call's error
 */
export function grpcFailureKey(err: ServiceError): Outcome {
  const code = err.metadata?.get(ERROR_CODE_KEY)[0];
  if (typeof code === "string") return code;
  return `grpc_${status[err.code] ?? String(err.code)}`;
}

interface OrdersClient {
  get(request: { id: string }, callback: (err: ServiceError | null) => void): void;
  create(request: { item: string }, metadata: Metadata, callback: (err: ServiceError | null) => void): void;
}

const grpcPath: ChaosPath = {
  name: "grpc",
  label: "grpc-js client, proxyless/grpc",
  script: fileURLToPath(new URL("../grpc-chaos-backend.ts", import.meta.url)),
  failLabel: "UNAVAILABLE",
  caller(mesh) {
    Orders ??= (loadPackageDefinition(loadSync(PROTO)).orders as GrpcObject).Orders as ServiceClientConstructor;
    const grpc = grpcMesh(mesh);
    const client: Client = grpc.client(Orders, SERVICE);
    const orders = client as unknown as OrdersClient;
    let closed = false;
    return {
      call: (post, id) =>
        new Promise<Outcome>((resolve) => {
          const done = (err: ServiceError | null): void => resolve(err === null ? "ok" : grpcFailureKey(err));
          if (post) {
            const metadata = new Metadata();
            metadata.set(REQUEST_ID_HEADER, id);
            orders.create({ item: id }, metadata, done);
          } else orders.get({ id: "42" }, done);
        }),
      close: () => {
        if (closed) return;
        closed = true;
        client.close();
        grpc.close();
      },
    };
  },
};

/** Every path, in the order the bench runs them. */
export const PATHS: readonly ChaosPath[] = [requestPath, dispatcherPath, grpcPath];

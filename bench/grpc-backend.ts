/**
 * The backend for `bench/grpc.ts`, run in its own process: a grpc-js server on 127.0.0.1 serving
 * `orders.Orders/Get` (test/fixtures/grpc/orders.proto) with a small fixed answer. It reports its port
 * and exits when the parent disconnects.
 */
import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Server, ServerCredentials, type GrpcObject, type sendUnaryData, type ServerUnaryCall, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import type { BackendReady } from "./lib/backend-protocol.ts";

const PROTO = fileURLToPath(new URL("../test/fixtures/grpc/orders.proto", import.meta.url));
const orders = loadPackageDefinition(loadSync(PROTO)).orders as GrpcObject;
const service = (orders.Orders as ServiceClientConstructor).service;

const server = new Server();
const answer = (id: string): Record<string, unknown> => ({ id, served_by: "bench" });
server.addService(service, {
  get: (call: ServerUnaryCall<{ id: string }, unknown>, callback: sendUnaryData<unknown>) => {
    callback(null, answer(call.request.id));
  },
});
const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
const ready: BackendReady = { type: "ready", port };
process.send?.(ready);
process.on("disconnect", () => {
  server.forceShutdown();
  process.exit(0);
});

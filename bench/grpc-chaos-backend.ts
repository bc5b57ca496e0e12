/**
 * One gRPC instance for `bench/chaos.ts`, run in its own process: a grpc-js server on 127.0.0.1, port
 * 0, serving `orders.Orders` (test/fixtures/grpc/orders.proto): `Get` (idempotent, the GET of the mix)
 * and `Create` (not idempotent, the POST: it carries a request id in its metadata). It answers after a
 * short service time, or misbehaves as the parent tells it over IPC (UNAVAILABLE at once, hang, flap,
 * or SIGKILL itself). It reports its port, and every Create's id the moment the call arrives
 * (bench/lib/chaos-protocol.ts). It exits when the parent disconnects.
 */
import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Server, ServerCredentials, status, type GrpcObject, type sendUnaryData, type ServerUnaryCall, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { BackendState, readBackendArgs, REQUEST_ID_HEADER, send } from "./lib/chaos-protocol.ts";

const PROTO = fileURLToPath(new URL("../test/fixtures/grpc/orders.proto", import.meta.url));
const orders = loadPackageDefinition(loadSync(PROTO)).orders as GrpcObject;
const service = (orders.Orders as ServiceClientConstructor).service;

const args = readBackendArgs();
const state = new BackendState(args);

function handle(call: ServerUnaryCall<{ id?: string; item?: string }, unknown>, callback: sendUnaryData<unknown>, post: boolean): void {
  const value = post ? call.metadata.get(REQUEST_ID_HEADER)[0] : undefined;
  const id = typeof value === "string" ? value : undefined;
  const action = state.arrive(post, id);
  if (action === "fail") {
    callback({ code: status.UNAVAILABLE, details: "chaos backend: unavailable" });
    return;
  }
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    state.done(post);
  };
  // A hung call ends only when the client cancels it (or its connection goes).
  call.on("cancelled", end);
  if (action === "hang") return;
  const answer = (): void => {
    if (ended) return;
    end();
    callback(null, { id: call.request.id ?? "new", served_by: "chaos" });
  };
  if (args.serviceMs > 0) setTimeout(answer, args.serviceMs);
  else answer();
}

const server = new Server();
server.addService(service, {
  get: (call: ServerUnaryCall<{ id: string }, unknown>, callback: sendUnaryData<unknown>) => handle(call, callback, false),
  create: (call: ServerUnaryCall<{ item: string }, unknown>, callback: sendUnaryData<unknown>) => handle(call, callback, true),
});
const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
state.listen(() => server.forceShutdown());
send({ type: "ready", port });

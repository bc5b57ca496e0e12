/**
 * gRPC example: a grpc-js client that gets the mesh, on an embedded registry (no Consul needed).
 *
 *   npm run example:grpc
 *
 * Three `orders` instances serve `shop.Orders` over gRPC: two run v1, one runs v2. The routing config is
 * the same a Consul service-router and service-resolver would give: `PlaceOrder` goes to the v2 canary,
 * everything else to v1. The first v1 instance answers UNAVAILABLE to its first call, so one call is
 * retried on the other v1 instance. The client is a plain generated grpc-js client:
 * `grpcMesh(mesh).client(Orders, "orders")`.
 */
import { fileURLToPath } from "node:url";
import { loadPackageDefinition, Server, ServerCredentials, status, type GrpcObject, type ServiceClientConstructor, type ServiceError, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createMesh } from "proxyless";
import { grpcMesh } from "proxyless/grpc";
import { MockRegistry } from "proxyless/testing";

interface Order {
  id: string;
  item: string;
  instance: string;
  version: string;
}

const definition = loadSync(fileURLToPath(new URL("orders.proto", import.meta.url)));
const Orders = (loadPackageDefinition(definition).shop as GrpcObject).Orders as ServiceClientConstructor;

/** One instance of the orders service on 127.0.0.1 (port 0); `flaky` fails its first call with UNAVAILABLE. */
async function startOrders(instance: string, version: string, flaky: boolean): Promise<{ server: Server; port: number; calls: number; unavailable: number }> {
  let failures = flaky ? 1 : 0;
  const stats = { calls: 0, unavailable: 0 };
  const server = new Server();
  const answer = (id: string, item: string): Order => ({ id, item, instance, version });
  server.addService(Orders.service, {
    getOrder: (call: ServerUnaryCall<{ id: string }, Order>, callback: sendUnaryData<Order>) => {
      stats.calls++;
      if (failures > 0) {
        failures--;
        stats.unavailable++;
        callback({ code: status.UNAVAILABLE, details: `${instance} is warming up` });
        return;
      }
      callback(null, answer(call.request.id, "book"));
    },
    placeOrder: (call: ServerUnaryCall<{ item: string }, Order>, callback: sendUnaryData<Order>) => {
      stats.calls++;
      callback(null, answer("o-new", call.request.item));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))));
  return Object.assign(stats, { server, port });
}

const instances = [await startOrders("orders-1", "v1", true), await startOrders("orders-2", "v1", false), await startOrders("orders-3", "v2", false)];
const registry = new MockRegistry();
registry.setEndpoints(
  "orders",
  instances.map((s, i) => ({ id: `orders-${i + 1}`, address: "127.0.0.1", port: s.port, meta: { version: i === 2 ? "v2" : "v1" } })),
);
// What Consul's service-resolver and service-router entries for `orders` would say.
registry.setConfig("orders", {
  loadBalancer: { policy: "round_robin" },
  resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" } }, defaultSubset: "v1" },
  router: { routes: [{ match: { pathExact: "/shop.Orders/PlaceOrder" }, destination: { subset: "v2" } }] },
});

const mesh = createMesh({ registry, service: "checkout" });
const grpc = grpcMesh(mesh);
const orders = grpc.client(Orders, "orders");
const call = <T>(method: string, request: object): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    (orders as unknown as Record<string, (req: object, cb: (err: ServiceError | null, res: T) => void) => void>)[method]!(request, (err, res) => (err === null ? resolve(res) : reject(err)));
  });

for (let i = 1; i <= 4; i++) {
  const order = await call<Order>("getOrder", { id: `o-${i}` });
  console.log(`GetOrder o-${i}    -> ${order.instance} (${order.version})`);
}
for (let i = 1; i <= 2; i++) {
  const order = await call<Order>("placeOrder", { item: `pen-${i}` });
  console.log(`PlaceOrder pen-${i} -> ${order.instance} (${order.version})`);
}
// Six calls succeeded; the instances saw one more, the one orders-1 refused (the mesh retried it on another v1 instance).
instances.forEach((s, i) => console.log(`orders-${i + 1}: ${s.calls} calls, ${s.unavailable} answered UNAVAILABLE`));
console.log(`target: ${grpc.target("orders")}`);

orders.close();
grpc.close();
await mesh.close();
await Promise.all(instances.map((s) => new Promise<void>((resolve) => s.server.tryShutdown(() => resolve()))));

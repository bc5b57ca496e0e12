import assert from "node:assert/strict";
import { once } from "node:events";
import { after, afterEach, before, describe, it } from "node:test";
import { status, type Client } from "@grpc/grpc-js";
import { createMesh, type Mesh, type ResilienceOptions } from "proxyless";
import { grpcMesh, type GrpcMesh } from "proxyless/grpc";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { proto, startGrpcBackends, unary, type GrpcBackend, type Order } from "./helpers/grpc-backend.ts";

/**
 * Lets grpc-js and the mesh handle what has arrived (a status) before the test checks that nothing else
 * happened: an absence has no event to await, so this is a short real-time pause.
 */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe("gRPC retries and hedges run on the mesh's clock (FakeClock drives them)", () => {
  let backends: GrpcBackend[];
  let mesh: Mesh;
  let grpc: GrpcMesh;
  let client: Client;
  before(async () => {
    backends = await startGrpcBackends(2, "fc");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    client.close();
    grpc.close();
    await mesh.destroy();
    for (const b of backends) {
      b.behaviour = {};
      for (const key of Object.keys(b.calls)) b.calls[key] = 0;
    }
  });
  const start = (clock: FakeClock, resilience: ResilienceOptions): void => {
    mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint()) }), clock, random: createSeededRandom(1), loadBalancer: { policy: "round_robin" }, resilience });
    grpc = grpcMesh(mesh);
    client = grpc.client(proto.Orders, "orders");
  };
  const calls = (b: GrpcBackend): number => b.calls.get ?? 0;

  it("a retry waits out its backoff on the FakeClock: nothing is resent until the clock moves", async () => {
    const clock = new FakeClock(1_000_000);
    start(clock, { outlier: false, retries: { backoffBaseMs: 60_000, backoffMaxMs: 60_000 } });
    for (const b of backends) b.behaviour = { fail: status.UNAVAILABLE };
    let settled = false;
    const call = unary(client, "get", { id: "r" }).then(
      (order) => order,
      (err: unknown) => err,
    ).finally(() => (settled = true));
    await Promise.race(backends.map((b) => once(b.events, "call")));
    for (const b of backends) b.behaviour = {};
    await settle();
    assert.equal(calls(backends[0]!) + calls(backends[1]!), 1, "one attempt so far: the retry waits for the clock");
    assert.equal(settled, false);
    clock.advance(60_000);
    const order = (await call) as Order;
    assert.equal(typeof order.servedBy, "string", `answered: ${String(order as unknown)}`);
    assert.equal(calls(backends[0]!) + calls(backends[1]!), 2, "the retry went once the clock moved");
  });

  it("a hedge goes after its delay on the FakeClock, to the other instance, and wins", async () => {
    const clock = new FakeClock(1_000_000);
    start(clock, { outlier: false, hedging: { delayMs: 5_000 } });
    backends[0]!.behaviour = { hang: true };
    backends[1]!.behaviour = { hang: true };
    const call = unary(client, "get", { id: "h" });
    const first = await Promise.race(backends.map((b, i) => once(b.events, "call").then(() => i)));
    await settle();
    assert.equal(calls(backends[0]!) + calls(backends[1]!), 1, "no hedge before the clock moves");
    const other = backends[1 - first]!;
    other.behaviour = {};
    clock.advance(5_000);
    const order = await call;
    assert.equal(order.servedBy, other.name, "the hedge to the other instance answered");
    assert.equal(calls(other), 1);
    backends[first]!.release?.();
  });
});

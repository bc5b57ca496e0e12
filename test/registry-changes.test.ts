import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createMesh, type EndpointsChangedEvent, type Mesh } from "proxyless";
import { createSeededRandom, MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

async function instanceOf(mesh: Mesh, path = "/"): Promise<string> {
  const { headers, body } = await mesh.client("orders").request({ path });
  await body.dump();
  return String(headers["x-instance"]);
}

async function spread(mesh: Mesh, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const instance = await instanceOf(mesh);
    counts[instance] = (counts[instance] ?? 0) + 1;
  }
  return counts;
}

describe("registry changes reach the next request", () => {
  let backends: Backend[];
  let registry: MockRegistry;
  let mesh: Mesh;

  before(async () => {
    backends = await startBackends(4);
  });
  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });
  beforeEach(() => {
    registry = new MockRegistry({ orders: backends.slice(0, 3).map((b) => b.endpoint) });
    mesh = createMesh({ registry, random: createSeededRandom(3) });
  });
  afterEach(async () => {
    await mesh.close();
  });

  it("round robin spreads exactly evenly over 3 endpoints", async () => {
    assert.deepEqual(await spread(mesh, 300), { "orders-0": 100, "orders-1": 100, "orders-2": 100 });
  });

  it("creates a pool only for an endpoint that is picked", async () => {
    mesh.client("orders");
    assert.equal(mesh.inspect("orders")?.openPools, 0);
    await instanceOf(mesh);
    assert.equal(mesh.inspect("orders")?.openPools, 1);
  });

  it("sends no more traffic to a removed endpoint and closes its pool", async () => {
    await spread(mesh, 30);
    const removed = backends[1]!;
    assert.ok(removed.openSockets > 0, "the endpoint had connections before removal");
    const before = removed.seen.length;
    registry.removeEndpoint("orders", removed.name);
    assert.deepEqual(await spread(mesh, 100), { "orders-0": 50, "orders-2": 50 });
    assert.equal(removed.seen.length, before);
    await removed.waitForSocketsClosed();
    assert.equal(removed.openSockets, 0);
  });

  it("lets a request in flight finish when its endpoint is removed", async () => {
    registry.setEndpoints("orders", [backends[0]!.endpoint]);
    const inFlight = mesh.client("orders").request({ path: "/hold" });
    await backends[0]!.waitForHeld();
    registry.setEndpoints("orders", [backends[1]!.endpoint]);
    assert.equal(await instanceOf(mesh), "orders-1");
    backends[0]!.release();
    const res = await inFlight;
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["x-instance"], "orders-0");
    await res.body.dump();
    await backends[0]!.waitForSocketsClosed();
  });

  it("stops sending to a critical endpoint and resumes when it passes again", async () => {
    registry.setHealth("orders", "orders-2", "critical");
    assert.deepEqual(await spread(mesh, 10), { "orders-0": 5, "orders-1": 5 });
    registry.setHealth("orders", "orders-2", "passing");
    assert.deepEqual(await spread(mesh, 30), { "orders-0": 10, "orders-1": 10, "orders-2": 10 });
  });

  it("sends to an added endpoint from the next request on", async () => {
    await instanceOf(mesh);
    registry.addEndpoint("orders", backends[3]!.endpoint);
    assert.deepEqual(await spread(mesh, 40), { "orders-0": 10, "orders-1": 10, "orders-2": 10, "orders-3": 10 });
  });

  it("replaces the pool when an endpoint id moves to another address", async () => {
    registry.setEndpoints("orders", [backends[0]!.endpoint]);
    assert.equal(await instanceOf(mesh), "orders-0");
    registry.setEndpoints("orders", [{ ...backends[3]!.endpoint, id: "orders-0" }]);
    assert.equal(await instanceOf(mesh), "orders-3");
    await backends[0]!.waitForSocketsClosed();
  });

  it("keeps the pool when only health or metadata change", async () => {
    await mesh.close();
    mesh = createMesh({ registry, pool: { connections: 1 } });
    registry.setEndpoints("orders", [backends[0]!.endpoint]);
    await instanceOf(mesh);
    await instanceOf(mesh);
    const accepted = backends[0]!.accepted;
    registry.setEndpoints("orders", [{ ...backends[0]!.endpoint, tags: ["v2"], health: "warning" }]);
    assert.equal(await instanceOf(mesh), "orders-0");
    assert.equal(backends[0]!.accepted, accepted, "the same connection is reused");
  });

  it("tells listeners what changed", () => {
    const events: EndpointsChangedEvent[] = [];
    mesh.client("orders");
    mesh.on("endpoints_changed", (e) => events.push(e));
    registry.removeEndpoint("orders", "orders-0");
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.diff.removed.map((e) => e.id), ["orders-0"]);
    assert.equal(events[0]!.endpoints.size, 2);
  });
});

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fetch as undiciFetch, request as undiciRequest } from "undici";
import { createMesh, isMeshError, meshErrorOf } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { ManualRegistry } from "./helpers/manual-registry.ts";

const closedError = (err: unknown): boolean => isMeshError(err, "ERR_MESH_CLOSED") && /createMesh/.test(meshErrorOf(err)?.message ?? "");

describe("mesh.close()", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(2);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("stops watches, closes every pool, and is idempotent", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({ registry });
    for (let i = 0; i < 4; i++) await (await mesh.client("orders").request({ path: "/" })).body.dump();
    assert.equal(registry.watchCount("orders"), 1);
    assert.ok(backends.every((b) => b.openSockets > 0));
    const first = mesh.close();
    assert.equal(mesh.close(), first);
    await first;
    assert.equal(mesh.closed, true);
    assert.equal(registry.watchCount("orders"), 0);
    await Promise.all(backends.map((b) => b.waitForSocketsClosed()));
  });

  it("makes every later call fail with ERR_MESH_CLOSED", async () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    const mesh = createMesh({ registry });
    const client = mesh.client("orders");
    await mesh.close();
    assert.throws(() => mesh.client("orders"), closedError);
    assert.throws(() => mesh.client("payments"), closedError);
    await assert.rejects(client.request({ path: "/" }), closedError);
    await assert.rejects(client.fetch("/"), closedError);
    await assert.rejects(undiciRequest("http://orders/", { dispatcher: mesh.dispatcher }), closedError);
    await assert.rejects(undiciFetch("http://orders/", { dispatcher: mesh.dispatcher }), (err: unknown) => err instanceof TypeError && closedError(err.cause));
  });

  it("lets a request in flight finish before it resolves", async () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    const mesh = createMesh({ registry });
    const inFlight = mesh.client("orders").request({ path: "/hold" });
    await backends[0]!.waitForHeld();
    let closed = false;
    const closing = mesh.close().then(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, false, "close() waits for the request in flight");
    backends[0]!.release();
    const res = await inFlight;
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    await closing;
    assert.equal(closed, true);
  });

  it("fails a request still waiting for discovery", async () => {
    const registry = new ManualRegistry();
    const mesh = createMesh({ registry });
    const waiting = mesh.client("orders").request({ path: "/" });
    await mesh.close();
    await assert.rejects(waiting, closedError);
    assert.equal(registry.listeners.size, 0);
  });

  it("is what mesh.dispatcher.close() does", async () => {
    const mesh = createMesh({ registry: new MockRegistry() });
    await mesh.dispatcher.close();
    assert.equal(mesh.closed, true);
  });
});

describe("mesh.destroy()", () => {
  it("aborts a request in flight that close() would wait for, and closes the mesh", async () => {
    const [backend] = await startBackends(1);
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backend!.endpoint] }) });
    const client = mesh.client("orders");
    const inFlight = client.request({ path: "/hold" });
    await backend!.waitForHeld();
    try {
      await mesh.destroy();
      await assert.rejects(inFlight, closedError);
      assert.equal(mesh.closed, true);
      await assert.rejects(client.request({ path: "/" }), closedError);
    } finally {
      await backend!.close();
    }
  });

  it("is what mesh.dispatcher.destroy(err) does, failing requests with err", async () => {
    const [backend] = await startBackends(1);
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backend!.endpoint] }) });
    const inFlight = mesh.client("orders").request({ path: "/hold" });
    await backend!.waitForHeld();
    const reason = new Error("shutting down");
    await mesh.dispatcher.destroy(reason);
    await assert.rejects(inFlight, (err: unknown) => err === reason);
    await backend!.close();
  });
});

// The package test's node:test file, run in an app that installed the proxyless tarball
// (test/package/run.ts): a service's unit tests with MockRegistry from proxyless/testing, against real
// servers on 127.0.0.1.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createMesh, isMeshError } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { startBackend } from "./backend.mjs";

test("MockRegistry: a critical instance takes no traffic, and none left is ERR_NO_ENDPOINTS", async (t) => {
  const a = await startBackend("a");
  const b = await startBackend("b");
  t.after(() => {
    a.close();
    b.close();
  });
  const registry = new MockRegistry();
  registry.setEndpoints("orders", [
    { id: "a", address: "127.0.0.1", port: a.port },
    { id: "b", address: "127.0.0.1", port: b.port },
  ]);
  const mesh = createMesh({ registry, random: createSeededRandom(1) });
  t.after(() => mesh.close());

  const names = new Set();
  for (let i = 0; i < 4; i++) {
    const res = await mesh.client("orders").fetch(`/v1/orders/${i}`);
    names.add(/** @type {{ name: string }} */ (await res.json()).name);
  }
  assert.deepEqual([...names].sort(), ["a", "b"], "round robin over both instances");

  registry.setHealth("orders", "a", "critical");
  for (let i = 0; i < 4; i++) {
    const { statusCode, body } = await mesh.client("orders").request({ path: "/v1/orders", method: "GET" });
    assert.equal(statusCode, 200);
    assert.equal(/** @type {{ name: string }} */ (await body.json()).name, "b");
  }

  registry.setHealth("orders", "b", "critical");
  await assert.rejects(mesh.client("orders").fetch("/v1/orders/1"), (err) => isMeshError(err, "ERR_NO_ENDPOINTS"));
  assert.equal(a.requests.length + b.requests.length, 8, "nothing was sent for the refused call");
});

test("MockRegistry: an instance added later takes the dispatcher's requests; an https:// URL is refused", async (t) => {
  const orders = await startBackend("orders");
  t.after(() => orders.close());
  const registry = new MockRegistry();
  registry.setEndpoints("orders", []);
  const mesh = createMesh({ registry });
  t.after(() => mesh.close());

  await assert.rejects(mesh.client("orders").fetch("/v1/orders"), (err) => isMeshError(err, "ERR_NO_ENDPOINTS"));
  registry.addEndpoint("orders", { id: "o1", address: "127.0.0.1", port: orders.port });
  const res = await fetch("http://orders/v1/orders?x=1", /** @type {RequestInit} */ ({ dispatcher: mesh.dispatcher }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { name: "orders", path: "/v1/orders?x=1" });

  await assert.rejects(
    fetch("https://orders/v1/orders", /** @type {RequestInit} */ ({ dispatcher: mesh.dispatcher })),
    (err) => err instanceof TypeError && isMeshError(err.cause, "ERR_INVALID_ARGUMENT"),
  );
  assert.equal(orders.requests.length, 1, "the https:// request was not sent");
});

test("proxyless/admin: the installed package serves the mesh's snapshot on loopback", async (t) => {
  const { startAdmin } = await import("proxyless/admin");
  const orders = await startBackend("orders");
  t.after(() => orders.close());
  const mesh = createMesh({ registry: new MockRegistry({ orders: [{ id: "o1", address: "127.0.0.1", port: orders.port }] }) });
  t.after(() => mesh.close());
  await (await mesh.client("orders").request({ path: "/" })).body.dump();
  const admin = await startAdmin(mesh, { port: 0 });
  t.after(() => admin.close());
  const res = await fetch(`${admin.url}/api/snapshot`);
  assert.equal(res.status, 200);
  const snapshot = /** @type {{ services: { name: string, endpoints: { id: string }[] }[] }} */ (await res.json());
  assert.deepEqual(snapshot.services.map((s) => [s.name, s.endpoints.map((e) => e.id)]), [["orders", ["o1"]]]);
});

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fetch as undiciFetch } from "undici";
import { createMesh, EndpointSet, isMeshError, meshErrorOf, type MeshError, type RegistryErrorEvent } from "proxyless";
import { FakeClock, MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { ManualRegistry } from "./helpers/manual-registry.ts";

function hasCode(code: MeshError["code"], message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (message !== undefined) assert.match(meshErrorOf(err)?.message ?? "", message);
    return true;
  };
}

describe("unknown, known empty and unhealthy services fail fast with distinct errors", () => {
  const registry = new MockRegistry({
    empty: [],
    sick: [
      { address: "127.0.0.1", port: 1, health: "critical" },
      { address: "127.0.0.1", port: 2, health: "critical" },
    ],
  });
  const mesh = createMesh({ registry, panicThreshold: 0 });
  after(() => mesh.close());

  it("a service the registry does not know is ERR_UNKNOWN_SERVICE", async () => {
    await assert.rejects(mesh.client("nosuch").request({ path: "/" }), hasCode("ERR_UNKNOWN_SERVICE", /'nosuch' is not in the registry/));
    await assert.rejects(mesh.client("nosuch").fetch("/"), hasCode("ERR_UNKNOWN_SERVICE"));
  });

  it("a known service with no endpoints is ERR_NO_ENDPOINTS", async () => {
    await assert.rejects(mesh.client("empty").request({ path: "/" }), hasCode("ERR_NO_ENDPOINTS", /has no endpoints registered/));
  });

  it("a service whose endpoints are all critical is ERR_NO_ENDPOINTS, saying so", async () => {
    await assert.rejects(mesh.client("sick").fetch("/"), hasCode("ERR_NO_ENDPOINTS", /None of the 2 endpoints .* \(2 critical/));
  });

  it("mesh.dispatcher reports the same errors through fetch's TypeError cause", async () => {
    await assert.rejects(undiciFetch("http://nosuch/", { dispatcher: mesh.dispatcher }), (err: unknown) => {
      assert.ok(err instanceof TypeError);
      return hasCode("ERR_UNKNOWN_SERVICE")(err.cause);
    });
  });

  it("a removed service becomes unknown, not empty", async () => {
    registry.setEndpoints("gone", [{ address: "127.0.0.1", port: 1 }]);
    mesh.client("gone");
    registry.removeService("gone");
    await assert.rejects(mesh.client("gone").request({ path: "/" }), hasCode("ERR_UNKNOWN_SERVICE"));
  });
});

describe("a service not yet known waits briefly for the registry", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(1);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("a request waits for the first answer, then goes out", async () => {
    const registry = new ManualRegistry();
    const clock = new FakeClock();
    const mesh = createMesh({ registry, clock, discoveryTimeout: 1000 });
    const pending = mesh.client("orders").request({ path: "/late" });
    registry.send("orders", { type: "config", config: {} });
    clock.advance(500);
    registry.send("orders", { type: "endpoints", endpoints: EndpointSet.of("orders", [backends[0]!.endpoint]) });
    const res = await pending;
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(clock.pendingKeepAliveTimers, 0, "the discovery timer was cleared");
    await mesh.close();
  });

  it("gives up with ERR_DISCOVERY_TIMEOUT when the registry never answers", async () => {
    const registry = new ManualRegistry();
    const clock = new FakeClock();
    const mesh = createMesh({ registry, clock, discoveryTimeout: 1000 });
    const pending = mesh.client("orders").fetch("/");
    clock.advance(999);
    registry.send("orders", { type: "config", config: {} });
    clock.advance(1);
    await assert.rejects(pending, hasCode("ERR_DISCOVERY_TIMEOUT", /within 1000 ms/));
    await mesh.close();
  });

  it("gives up with ERR_REGISTRY_UNAVAILABLE, with the cause, when the registry failed", async () => {
    const registry = new ManualRegistry();
    const clock = new FakeClock();
    const mesh = createMesh({ registry, clock, discoveryTimeout: 1000 });
    const errors: RegistryErrorEvent[] = [];
    mesh.on("registry_error", (e) => errors.push(e));
    const pending = mesh.client("orders").request({ path: "/" });
    const cause = new Error("connect ECONNREFUSED 127.0.0.1:8500");
    registry.send("orders", { type: "error", error: cause });
    clock.advance(1000);
    await assert.rejects(pending, (err: unknown) => hasCode("ERR_REGISTRY_UNAVAILABLE", /ECONNREFUSED/)(err) && (err as MeshError).cause === cause);
    assert.equal(errors.length, 1);
    await mesh.close();
  });

  it("keeps serving the last good endpoints when the registry fails later", async () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    const mesh = createMesh({ registry });
    const errors: RegistryErrorEvent[] = [];
    mesh.on("registry_error", (e) => errors.push(e));
    mesh.client("orders");
    registry.fail("orders", new Error("registry down"));
    const res = await mesh.client("orders").request({ path: "/" });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.deepEqual(errors.map((e) => [e.service, e.error.message]), [["orders", "registry down"]]);
    await mesh.close();
  });
});

describe("a registry that answers at once", () => {
  it("a listener that asks for the service while it is first watched gets the same client: one watch, one event", async () => {
    const registry = new MockRegistry({ orders: [{ address: "127.0.0.1", port: 1 }] });
    const mesh = createMesh({ registry });
    const seen: unknown[] = [];
    mesh.on("endpoints_changed", (e) => {
      // Before the fix this built the service a second time, inside the first, and so on without end.
      seen.push(mesh.client(e.service));
    });
    const client = mesh.client("orders");
    assert.equal(seen.length, 1, "one endpoints_changed: one watch of the registry");
    assert.equal(seen[0], client, "the listener got the client being made");
    await mesh.close();
  });
});

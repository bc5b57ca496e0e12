import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createMesh, isMeshError, type LoadBalancerConfig, type Mesh } from "proxyless";
import { createSeededRandom, FakeClock, MockRegistry } from "proxyless/testing";
import { request as undiciRequest } from "undici";
import { startBackends, type Backend } from "./helpers/backend.ts";

/** Sends `total` requests, `concurrency` at a time, and counts them by answering instance. */
async function load(mesh: Mesh, total: number, concurrency: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < total) {
        sent++;
        const { headers, body } = await mesh.client("orders").request({ path: "/" });
        await body.dump();
        const id = String(headers["x-instance"]);
        counts[id] = (counts[id] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe("load-aware balancing on real servers", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3);
    backends[2]!.delayMs = 40; // one slow instance
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  for (const [policy, config] of [
    ["least_request", undefined],
    ["peak_ewma", { defaultRtt: 1 }],
  ] as const) {
    it(`${policy} moves traffic away from a slow backend`, async () => {
      const loadBalancer: LoadBalancerConfig = config === undefined ? { policy } : { policy, config };
      const mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }), loadBalancer, random: createSeededRandom(4) });
      const counts = await load(mesh, 600, 12);
      const slowShare = (counts["orders-2"] ?? 0) / 600;
      assert.ok(slowShare < 0.15, `${policy} sent ${(slowShare * 100).toFixed(1)}% to the slow backend (round robin: 33%)`);
      await mesh.close();
    });
  }

  it("round robin, for contrast, keeps sending a third to the slow backend", async () => {
    const mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }) });
    const counts = await load(mesh, 120, 12);
    assert.equal(counts["orders-2"], 40);
    await mesh.close();
  });
});

describe("an endpoint that fails fast", () => {
  it("peak_ewma charges a failure before any response as a slow round trip, so a dead endpoint stops drawing traffic", async () => {
    const [alive, dead] = await startBackends(2);
    const deadEndpoint = dead!.endpoint;
    await dead!.close(); // still registered as passing: connections are refused
    const mesh = createMesh({
      registry: new MockRegistry({ orders: [alive!.endpoint, deadEndpoint] }),
      // defaultRtt 0: an endpoint with no samples looks cheapest, so the dead one is tried exactly once,
      // whichever answers first and however fast the live one is.
      loadBalancer: { policy: "peak_ewma", config: { defaultRtt: 0 } },
      random: createSeededRandom(8),
    });
    let failed = 0;
    for (let i = 0; i < 100; i++) {
      try {
        await (await mesh.client("orders").request({ path: "/" })).body.dump();
      } catch {
        failed++;
      }
    }
    // The one request that met the dead endpoint was retried on the live one (a connect failure is always safe to retry).
    assert.equal(failed, 0, `${failed} of 100 failed`);
    const load = mesh.inspect("orders")?.targets.find((t) => t.id === deadEndpoint.id);
    assert.equal(load?.pending, 0);
    assert.ok((load?.rtt ?? 0) > 900, `the dead endpoint's estimate is the penalty, decayed: ${load?.rtt}`);
    await mesh.close();
    await alive!.close();
  });

  const aborting: Record<string, (mesh: Mesh, signal: AbortSignal) => Promise<unknown>> = {
    "client.request": (mesh, signal) => mesh.client("orders").request({ path: "/hold", signal }),
    "client.fetch": (mesh, signal) => mesh.client("orders").fetch("/hold", { signal }),
    "undici.request with mesh.dispatcher": (mesh, signal) => undiciRequest("http://orders/hold", { dispatcher: mesh.dispatcher, signal }),
  };
  for (const [api, send] of Object.entries(aborting)) {
    it(`a request the caller aborts is no penalty for the endpoint (${api})`, async (t) => {
      const [backend] = await startBackends(1);
      const mesh = createMesh({ registry: new MockRegistry({ orders: [backend!.endpoint] }), loadBalancer: { policy: "peak_ewma" } });
      // Closed whatever the assertions say: a held request left open would keep the test running.
      t.after(() => Promise.all([mesh.destroy(new Error("test over")), backend!.close()]));
      const controller = new AbortController();
      const pending = send(mesh, controller.signal);
      await backend!.waitForHeld();
      controller.abort();
      await assert.rejects(pending);
      const target = mesh.inspect("orders")?.targets[0];
      assert.equal(target?.pending, 0);
      assert.equal(target?.rtt, undefined, "no sample, no penalty");
    });
  }
});

describe("load is tracked for request() and fetch()", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(2);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("counts requests in flight until their response ends, so least_request avoids the busy endpoint", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({ registry, loadBalancer: { policy: "least_request" }, random: createSeededRandom(1) });
    const client = mesh.client("orders");
    registry.setEndpoints("orders", [backends[0]!.endpoint]);
    const heldRequest = client.request({ path: "/hold" });
    const heldFetch = client.fetch("/hold");
    await backends[0]!.waitForHeld();
    registry.setEndpoints("orders", backends.map((b) => b.endpoint));
    assert.deepEqual(
      mesh.inspect("orders")?.targets.map((t) => [t.id, t.pending]),
      [["orders-0", 2], ["orders-1", 0]],
    );
    for (let i = 0; i < 5; i++) {
      const res = await client.request({ path: "/" });
      assert.equal(res.headers["x-instance"], "orders-1");
      await res.body.dump();
    }
    backends[0]!.release();
    const [a, b] = await Promise.all([heldRequest, heldFetch]);
    await a.body.dump();
    await b.text();
    assert.deepEqual(mesh.inspect("orders")?.targets.map((t) => t.pending), [0, 0]);
    await mesh.close();
  });
});

describe("hash affinity", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(4);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("a caller's hashKey keeps a user on one endpoint, for request() and fetch()", async () => {
    const mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }), loadBalancer: { policy: "maglev" } });
    const client = mesh.client("orders");
    for (const user of ["ann", "bob", "cyd"]) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await client.request({ path: "/", hashKey: user });
        seen.add(String(res.headers["x-instance"]));
        await res.body.dump();
        const f = await client.fetch("/", { hashKey: user });
        seen.add(String(f.headers.get("x-instance")));
        await f.text();
      }
      assert.equal(seen.size, 1, `${user} went to ${[...seen].join(", ")}`);
    }
    await mesh.close();
  });

  it("a hash policy on the host header sees the Host a request carries, the service's name when the caller set none", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    registry.setConfig("orders", { loadBalancer: { policy: "ring_hash", config: { hashPolicies: [{ field: "header", name: "host" }] } } });
    const mesh = createMesh({ registry });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await mesh.client("orders").request({ path: "/" });
      await res.body.dump();
      seen.add(String(res.headers["x-instance"]));
      const fetched = await mesh.client("orders").fetch("/");
      await fetched.text();
      seen.add(String(fetched.headers.get("x-instance")));
    }
    assert.equal(seen.size, 1, `one Host, one endpoint; went to ${[...seen].join(", ")}`);
    await mesh.close();
  });

  it("a header hash policy from the service config keeps a user on one endpoint", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    registry.setConfig("orders", { loadBalancer: { policy: "ring_hash", config: { hashPolicies: [{ field: "header", name: "x-user" }] } } });
    const mesh = createMesh({ registry });
    const instances = new Map<string, Set<string>>();
    for (let i = 0; i < 40; i++) {
      const user = `u${i % 8}`;
      const res = await mesh.client("orders").request({ path: "/", headers: { "x-user": user } });
      await res.body.dump();
      instances.set(user, (instances.get(user) ?? new Set()).add(String(res.headers["x-instance"])));
    }
    assert.ok([...instances.values()].every((s) => s.size === 1));
    assert.ok(new Set([...instances.values()].map((s) => [...s][0])).size > 1, "users are spread over endpoints");
    await mesh.close();
  });
});

/** Sends requests one at a time until `n` endpoints have been ejected. */
async function untilEjected(mesh: Mesh, n: number): Promise<void> {
  let ejected = 0;
  const count = (): void => {
    ejected++;
  };
  mesh.on("endpoint_ejected", count);
  while (ejected < n) await load(mesh, 1, 1);
  mesh.off("endpoint_ejected", count);
}

describe("panic threshold", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("spreads over every endpoint that is not critical, ejected ones included, when fewer than the threshold are ready", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const outlier = { consecutiveFailures: 1, maxEjectionPercent: 100, baseEjectionMs: 60_000 };
    const mesh = createMesh({ registry, panicThreshold: 50, resilience: { retries: false, outlier } });
    backends[0]!.failWith = 503;
    backends[1]!.failWith = 503;
    try {
      await untilEjected(mesh, 2);
      assert.equal(mesh.inspect("orders")?.panic, true, "1 of 3 ready");
      assert.deepEqual(await load(mesh, 30, 1), { "orders-0": 10, "orders-1": 10, "orders-2": 10 });
    } finally {
      backends[0]!.failWith = undefined;
      backends[1]!.failWith = undefined;
      await mesh.close();
    }

    const strict = createMesh({ registry, panicThreshold: 30, resilience: { retries: false, outlier } }); // 1 of 3 ready = 33% >= 30%
    backends[0]!.failWith = 503;
    backends[1]!.failWith = 503;
    try {
      await untilEjected(strict, 2);
      assert.deepEqual(await load(strict, 10, 1), { "orders-2": 10 });
      assert.equal(strict.inspect("orders")?.panic, false);
    } finally {
      backends[0]!.failWith = undefined;
      backends[1]!.failWith = undefined;
      await strict.close();
    }
  });

  it("never sends to critical endpoints, in panic or not: as ConsulRegistry, so MockRegistry tests predict production", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    registry.setHealth("orders", "orders-0", "critical");
    registry.setHealth("orders", "orders-1", "critical");
    const mesh = createMesh({ registry, panicThreshold: 50 });
    assert.deepEqual(await load(mesh, 10, 1), { "orders-2": 10 });
    assert.equal(mesh.inspect("orders")?.panic, false, "the threshold counts only endpoints that are not critical: 1 of 1 ready");
    registry.setHealth("orders", "orders-2", "critical");
    await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS") && /3 critical/.test(err.message));
    await mesh.close();
  });

  it("counts only endpoints that are not critical: many critical ones do not put an ejected endpoint back in traffic", async () => {
    // Six critical, three healthy, one that fails and is ejected: 3 of 4 candidates ready, no panic.
    const critical = Array.from({ length: 6 }, (_, i) => ({ id: `dead-${i}`, address: "127.0.0.1", port: 1, health: "critical" as const }));
    const registry = new MockRegistry({ orders: [...backends.map((b) => b.endpoint), ...critical] });
    const extra = await startBackends(1, "spare");
    registry.addEndpoint("orders", extra[0]!.endpoint);
    const mesh = createMesh({ registry, panicThreshold: 50, resilience: { retries: false, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } } });
    backends[0]!.failWith = 503;
    try {
      await untilEjected(mesh, 1);
      assert.equal(mesh.inspect("orders")?.panic, false);
      const counts = await load(mesh, 30, 1);
      assert.equal(counts["orders-0"], undefined, "the ejected endpoint gets nothing");
    } finally {
      backends[0]!.failWith = undefined;
      await mesh.close();
      await extra[0]!.close();
    }
  });
});

describe("slow start", () => {
  it("ramps a new endpoint's weight over the window, in virtual time", async () => {
    const clock = new FakeClock();
    const registry = new MockRegistry({ orders: [{ id: "a", address: "127.0.0.1", port: 1 }] });
    const mesh = createMesh({ registry, clock, loadBalancer: { policy: "weighted_round_robin" }, slowStart: { window: 10_000, minWeightPercent: 10 } });
    mesh.client("orders");
    const weight = (id: string): number | undefined => mesh.inspect("orders")?.targets.find((t) => t.id === id)?.weight;
    assert.equal(weight("a"), 1, "endpoints of the first answer are not ramped");
    registry.addEndpoint("orders", { id: "b", address: "127.0.0.1", port: 2 });
    assert.equal(weight("b"), 0.1, "starts at minWeightPercent");
    clock.advance(5000);
    assert.equal(weight("b"), 0.5, "linear with aggression 1");
    clock.advance(5000);
    assert.equal(weight("b"), 1);
    assert.equal(clock.pendingTimers, 0, "no timer once the ramp is over");
    await mesh.close();
  });

  it("leaves hash policies' weights alone, so keys do not move during the ramp", async () => {
    const clock = new FakeClock();
    const registry = new MockRegistry({ orders: [{ id: "a", address: "127.0.0.1", port: 1 }] });
    const mesh = createMesh({ registry, clock, loadBalancer: { policy: "ring_hash" }, slowStart: { window: 10_000 } });
    mesh.client("orders");
    registry.addEndpoint("orders", { id: "b", address: "127.0.0.1", port: 2 });
    assert.equal(mesh.inspect("orders")?.targets.find((t) => t.id === "b")?.weight, 1);
    assert.equal(clock.pendingTimers, 0);
    await mesh.close();
  });

  it("rejects slow start without a window", () => {
    assert.throws(() => createMesh({ registry: new MockRegistry(), slowStart: {} as never }), /slowStart\.window/);
  });
});

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createMesh, isMeshError, type EndpointEjectedEvent, meshErrorOf } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

/** mesh `resilience` < `upstreams[name]` < the caller's Consul service-defaults < the target's resolver < the route. */
describe("where resilience settings come from, and which wins", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3, "p");
    for (const b of backends) b.failWith = 503;
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  async function attemptsOfOneCall(mesh: ReturnType<typeof createMesh>, path = "/"): Promise<number> {
    const before = backends.reduce((n, b) => n + b.seen.length, 0);
    const res = await mesh.client("orders").request({ path });
    await res.body.dump();
    return backends.reduce((n, b) => n + b.seen.length, 0) - before;
  }

  it("retries: the mesh option, then the per-upstream option, then the route's NumRetries", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({
      registry,
      resilience: { retries: { maxRetries: 0 }, breaker: false, outlier: false },
      upstreams: { billing: { retries: { maxRetries: 2 } } },
    });
    assert.equal(await attemptsOfOneCall(mesh), 1, "mesh: no retries");
    await mesh.close();
    const perUpstream = createMesh({ registry, resilience: { retries: { maxRetries: 0 }, breaker: false, outlier: false }, upstreams: { orders: { retries: { maxRetries: 2, backoffBaseMs: 0 } } } });
    assert.equal(await attemptsOfOneCall(perUpstream), 3, "upstreams.orders: two retries");
    registry.setConfig("orders", { router: { routes: [{ match: { pathPrefix: "/once" }, destination: { numRetries: 1, retryOn: ["5xx"] } }] } });
    assert.equal(await attemptsOfOneCall(perUpstream, "/once"), 2, "the route: one retry");
    assert.equal(await attemptsOfOneCall(perUpstream, "/other"), 3, "other paths keep the upstream's");
    await perUpstream.close();
  });

  it("timeouts: the route's RequestTimeout over the resolver's over the mesh's", async () => {
    const slow = await Backend.start("slow");
    slow.delayMs = 250;
    try {
      const registry = new MockRegistry({ orders: [slow.endpoint] });
      const mesh = createMesh({ registry, resilience: { timeoutMs: 50, retries: false } });
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_TIMEOUT") && meshErrorOf(err)?.details.timeoutMs === 50);
      registry.setConfig("orders", { resolver: { requestTimeoutMs: 1000 } });
      const res = await mesh.client("orders").request({ path: "/" });
      await res.body.dump();
      assert.equal(res.statusCode, 200, "the resolver's 1000 ms wins over the mesh's 50");
      registry.setConfig("orders", { resolver: { requestTimeoutMs: 1000 }, router: { routes: [{ match: { pathPrefix: "/quick" }, destination: { requestTimeoutMs: 60 } }] } });
      await assert.rejects(mesh.client("orders").request({ path: "/quick" }), (err: unknown) => isMeshError(err, "ERR_TIMEOUT") && meshErrorOf(err)?.details.timeoutMs === 60);
      await mesh.close();
    } finally {
      await slow.close();
    }
  });

  it("outlier detection and limits: the caller's Consul service-defaults (UpstreamConfig) over the mesh's", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    registry.applyConsulEntries({
      Kind: "service-defaults",
      Name: "checkout",
      UpstreamConfig: {
        Defaults: { PassiveHealthCheck: { MaxFailures: 4 } },
        Overrides: [{ Name: "orders", PassiveHealthCheck: { MaxFailures: 2 }, Limits: { MaxConcurrentRequests: 1 } }],
      },
    });
    const mesh = createMesh({ registry, service: "checkout", resilience: { retries: false, breaker: false, outlier: { consecutiveFailures: 10 } } });
    const ejections: EndpointEjectedEvent[] = [];
    mesh.on("endpoint_ejected", (e) => ejections.push(e));
    // The caller's own config arrives with its first use; a call settles it.
    await mesh.explain("checkout");
    for (let i = 0; i < 6; i++) await attemptsOfOneCall(mesh);
    assert.deepEqual(ejections.map((e) => e.failures), [2], "ejected after MaxFailures 2, the override for orders (one at a time: 10% of 3, at least one)");
    const held = mesh.client("orders").request({ path: "/hold" });
    await until(() => backends.some((b) => b.seen.some((r) => r.url === "/hold")));
    await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_LIMIT_EXCEEDED"), "MaxConcurrentRequests 1");
    for (const b of backends) b.release();
    await (await held).body.dump();
    await mesh.close();
  });
});

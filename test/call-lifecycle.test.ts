import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { fetch as undiciFetch, request as undiciRequest } from "undici";
import { createMesh, isMeshError, meshErrorOf, type Mesh, type ResilienceOptions } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { codeOf } from "./helpers/outcomes.ts";
import { ERROR_CODE_KEY, grpcMesh } from "proxyless/grpc";
import { proto, startGrpcBackends, unary, type GrpcBackend } from "./helpers/grpc-backend.ts";


describe("the call engine's lifecycle: close, destroy, and what a closed mesh answers", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(2, "life");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
    for (const b of backends) b.reset();
  });
  const start = (resilience?: ResilienceOptions, extra: Partial<Parameters<typeof createMesh>[0]> = {}): Mesh =>
    (mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }), random: createSeededRandom(5), ...(resilience === undefined ? {} : { resilience }), ...extra }));

  it("destroy() resolves within a second while requests are queued in a pool, and fails every one of them", async () => {
    const m = start(undefined, { pool: { connections: 1 }, registry: new MockRegistry({ orders: [backends[0]!.endpoint] }) });
    const client = m.client("orders");
    const calls = Array.from({ length: 6 }, () => client.request({ path: "/hold" }).then(() => "answered", (err: unknown) => codeOf(err)));
    const fetched = client.fetch("/hold").then(() => "answered", (err: unknown) => codeOf(err));
    await backends[0]!.waitForHeld();
    const began = performance.now();
    await m.destroy();
    const took = performance.now() - began;
    assert.ok(took < 1000, `destroy() took ${Math.round(took)} ms`);
    const outcomes = await Promise.all([...calls, fetched]);
    assert.deepEqual(new Set(outcomes), new Set(["ERR_MESH_CLOSED"]), `every call fails with ERR_MESH_CLOSED: ${outcomes.join(", ")}`);
  });

  it("a client obtained before close() sends nothing once close() has begun, on every path", async () => {
    const m = start();
    const client = m.client("orders");
    await (await client.request({ path: "/" })).body.dump();
    const seen = backends[0]!.seen.length + backends[1]!.seen.length;
    const closing = m.close();
    const outcomes = await Promise.all([
      client.request({ path: "/" }).then(() => "sent", codeOf),
      client.fetch("/").then(() => "sent", codeOf),
      undiciRequest("http://orders/", { dispatcher: m.dispatcher }).then(() => "sent", codeOf),
      undiciFetch("http://orders/", { dispatcher: m.dispatcher }).then(() => "sent", codeOf),
    ]);
    await closing;
    assert.deepEqual(outcomes, ["ERR_MESH_CLOSED", "ERR_MESH_CLOSED", "ERR_MESH_CLOSED", "ERR_MESH_CLOSED"]);
    assert.equal(backends[0]!.seen.length + backends[1]!.seen.length, seen, "nothing more reached a backend");
  });

  it("after close(), an open breaker does not answer for the mesh: ERR_MESH_CLOSED wins", async () => {
    for (const b of backends) b.failWith = 503;
    const m = start({ retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 2 } });
    // Routing config: the client sends through routing (a route decides) as well as straight to the balancer.
    const client = m.client("orders");
    let opened = false;
    m.on("breaker_state_changed", (e) => (opened ||= e.state === "open"));
    for (let i = 0; i < 4 && !opened; i++) await (await client.request({ path: "/" })).body.dump();
    assert.ok(opened, "the breaker opened");
    await assert.rejects(client.request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_CIRCUIT_OPEN"));
    const closing = m.close();
    const during = await client.request({ path: "/" }).then(() => "sent", codeOf);
    await closing;
    const afterClose = await Promise.all([client.request({ path: "/" }).then(() => "sent", codeOf), client.fetch("/").then(() => "sent", codeOf)]);
    assert.deepEqual([during, ...afterClose], ["ERR_MESH_CLOSED", "ERR_MESH_CLOSED", "ERR_MESH_CLOSED"]);
  });

  it("a retry the budget refuses after a per-try timeout ends in ERR_RETRY_BUDGET_EXHAUSTED, as documented", async () => {
    backends[0]!.delayMs = 2000;
    backends[1]!.delayMs = 2000;
    const m = start({ perTryTimeoutMs: 100, outlier: false, breaker: false, budget: { percent: 0, minPerSecond: 0 } });
    for (const send of [() => m.client("orders").request({ path: "/" }), () => m.client("orders").fetch("/")]) {
      await assert.rejects(send(), (err: unknown) => {
        assert.equal(codeOf(err), "ERR_RETRY_BUDGET_EXHAUSTED", String(meshErrorOf(err)?.message));
        return true;
      });
    }
  });
});

describe("the call engine's lifecycle on gRPC", () => {
  let backends: GrpcBackend[];
  before(async () => {
    backends = await startGrpcBackends(2, "glife");
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("destroy() ends the gRPC calls in flight at once, with ERR_MESH_CLOSED, and later calls are refused so too", async () => {
    for (const b of backends) b.behaviour = { hang: true };
    const mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint()) }) });
    const grpc = grpcMesh(mesh);
    const client = grpc.client(proto.Orders, "orders");
    const codeOfCall = (err: unknown): string => (err as { metadata?: { get(key: string): unknown[] } }).metadata?.get(ERROR_CODE_KEY)[0] as string;
    try {
      const calls = Array.from({ length: 10 }, (_, i) => unary(client, "get", { id: String(i) }).then(() => "answered", codeOfCall));
      // Every call has reached a backend (and hangs there).
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if ((backends[0]!.calls.get ?? 0) + (backends[1]!.calls.get ?? 0) >= 10) resolve();
        };
        for (const b of backends) b.events.on("call", check);
        check();
      });
      const began = performance.now();
      await mesh.destroy();
      const outcomes = await Promise.all(calls);
      assert.ok(performance.now() - began < 1000, `the calls ended within ${Math.round(performance.now() - began)} ms`);
      assert.deepEqual(new Set(outcomes), new Set(["ERR_MESH_CLOSED"]), outcomes.join(", "));
      assert.equal(grpc.attemptsInFlight, 0, "no attempt left");
      assert.equal(await unary(client, "get", { id: "late" }).then(() => "answered", codeOfCall), "ERR_MESH_CLOSED");
    } finally {
      client.close();
      grpc.close();
      for (const b of backends) b.behaviour = {};
    }
  });
});

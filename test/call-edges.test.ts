import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { createMesh, type Mesh, type ResilienceOptions } from "proxyless";
import { ERROR_CODE_KEY, grpcMesh } from "proxyless/grpc";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { CoarseTimers, type Expiring } from "../src/resilience/coarse-timers.ts";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { proto, startGrpcBackends, unary, type GrpcBackend } from "./helpers/grpc-backend.ts";
import { codeOf, outcomeOf } from "./helpers/outcomes.ts";

describe("the call engine at its edges (found by an attack review)", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(3, "edge");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
    for (const b of backends) b.reset();
  });
  const start = (resilience: ResilienceOptions, n: number, clock?: FakeClock): Mesh =>
    (mesh = createMesh({ registry: new MockRegistry({ orders: backends.slice(0, n).map((b) => b.endpoint) }), random: createSeededRandom(2), loadBalancer: { policy: "round_robin" }, resilience, ...(clock === undefined ? {} : { clock }) }));

  it("a response read and dropped for a retry counts against the deadline: a 503 that drips its body does not hold the call", async () => {
    backends[0]!.failWith = 503;
    backends[0]!.dripMs = 3000;
    const m = start({ timeoutMs: 300, outlier: false }, 1);
    const began = performance.now();
    for (const send of [() => outcomeOf(m.client("orders").request({ path: "/" })), () => m.client("orders").fetch("/").then((r) => String(r.status), codeOf)]) {
      assert.equal(await send(), "ERR_TIMEOUT");
    }
    assert.ok(performance.now() - began < 2000, `both ended at their deadline (${Math.round(performance.now() - began)} ms)`);
  });

  it("a caller's abort while a dropped response is read stops the read: close() does not wait for it", async () => {
    backends[0]!.failWith = 503;
    backends[0]!.dripMs = 3000;
    const m = start({ outlier: false }, 1);
    const abort = new AbortController();
    const call = outcomeOf(m.client("orders").request({ path: "/", signal: abort.signal }));
    await new Promise((resolve) => backends[0]!.events.once("request", resolve));
    // The 503's headers arrive first; its body drips.
    await new Promise((resolve) => setTimeout(resolve, 100));
    abort.abort();
    assert.notEqual(await call, "200");
    const began = performance.now();
    await m.close();
    mesh = undefined;
    assert.ok(performance.now() - began < 1500, `close() took ${Math.round(performance.now() - began)} ms`);
  });

  it("request() refuses what only undici checks, and an upgrade, with ERR_INVALID_ARGUMENT", async () => {
    const m = start({}, 1);
    const client = m.client("orders");
    const bad: Record<string, unknown>[] = [{ signal: "x" }, { highWaterMark: -1 }, { onInfo: 3 }, { upgrade: "websocket" }];
    for (const extra of bad) {
      assert.equal(await outcomeOf(client.request({ path: "/", ...extra })), "ERR_INVALID_ARGUMENT", JSON.stringify(extra));
    }
    assert.equal(backends[0]!.seen.length, 0, "nothing was sent");
  });

  it("a call let through before the breaker opened is no probe: its end does not free the half-open probe's slot", async () => {
    const clock = new FakeClock(Date.now());
    const m = start({ retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 1, halfOpenAfterMs: 1000 } }, 1, clock);
    const client = m.client("orders");
    const early = new AbortController();
    const before = outcomeOf(client.request({ path: "/hold", signal: early.signal }));
    await backends[0]!.waitForHeld();
    backends[0]!.failWith = 503;
    assert.equal(await outcomeOf(client.request({ path: "/" })), "503", "this failure opens the breaker");
    backends[0]!.failWith = undefined;
    clock.advance(1000);
    const probe = outcomeOf(client.request({ path: "/hold" }));
    await new Promise((resolve) => backends[0]!.events.once("request", resolve));
    early.abort();
    await before;
    assert.equal(await outcomeOf(client.request({ path: "/" })), "ERR_CIRCUIT_OPEN", "the probe is still the only call let through");
    backends[0]!.release();
    assert.equal(await probe, "200");
    assert.equal(await outcomeOf(client.request({ path: "/" })), "200", "the probe's success closed it");
  });

  it("endpoints that each fail every other call are the service failing: the breaker opens at its minimum volume, outlier detection on", async () => {
    for (const b of backends) b.failEvery = 2;
    const m = start({ retries: false }, 3);
    let openedAt: number | undefined;
    let calls = 0;
    m.on("breaker_state_changed", (e) => {
      if (e.state === "open") openedAt ??= calls;
    });
    for (; calls < 200 && openedAt === undefined; calls++) await outcomeOf(m.client("orders").request({ path: "/" }));
    assert.ok(openedAt !== undefined && openedAt <= 40, `opened after ${String(openedAt)} calls`);
  });

  it("a call that gives up while queued for a slot leaves the queue: the next call takes its place", async () => {
    const clock = new FakeClock(Date.now());
    const m = start({ limits: { maxConcurrent: 1, maxPending: 1 } }, 1, clock);
    const client = m.client("orders");
    const holding = outcomeOf(client.request({ path: "/hold" }));
    await backends[0]!.waitForHeld();
    const abort = new AbortController();
    const queued = outcomeOf(client.request({ path: "/", signal: abort.signal }));
    abort.abort();
    assert.notEqual(await queued, "200", "the queued call was aborted");
    const next = outcomeOf(client.request({ path: "/" }));
    backends[0]!.release();
    assert.equal(await holding, "200");
    assert.equal(await next, "200", "the next call got the queue place, then the slot");
    assert.equal(clock.pendingKeepAliveTimers, 0, "no timer left by the call that gave up");
  });

  it("no hedge timer is left behind by a call that failed at once", async () => {
    const clock = new FakeClock(Date.now());
    const m = start({ hedging: { delayMs: 50 } }, 2, clock);
    assert.equal(await outcomeOf(m.client("orders").request({ path: "/", headers: { "x-bad": "a\nb" } })), "ERR_INVALID_ARGUMENT");
    assert.equal(clock.pendingKeepAliveTimers, 0);
  });
});

describe("coarse timers", () => {
  it("items added and removed one at a time share their bucket's timer, which goes once it has fired", () => {
    const clock = new FakeClock(0);
    const timers = new CoarseTimers(clock);
    let made = 0;
    const setTimeout = clock.setTimeout.bind(clock);
    clock.setTimeout = (callback, ms, keepAlive) => {
      made++;
      return setTimeout(callback, ms, keepAlive);
    };
    const expired: number[] = [];
    for (let i = 0; i < 10; i++) {
      const item: Expiring = { bucket: undefined, prev: undefined, next: undefined, expire: () => expired.push(i) };
      timers.add(item, 15_000);
      timers.remove(item);
    }
    assert.equal(made, 1, "one timer for ten calls made one after another, not one each");
    assert.equal(clock.pendingKeepAliveTimers, 0, "it holds no process open");
    clock.advance(16_000);
    assert.equal(expired.length, 0, "nothing removed expires");
    assert.equal(clock.pendingTimers, 0, "the emptied bucket's timer is gone once it fired");
    const late: Expiring = { bucket: undefined, prev: undefined, next: undefined, expire: () => expired.push(99) };
    timers.add(late, 20_000);
    clock.advance(5_000);
    assert.deepEqual(expired, [99]);
    assert.equal(made, 2);
  });

  it("every item of a bucket expires, even when one's expiry removes another", () => {
    const clock = new FakeClock(0);
    const timers = new CoarseTimers(clock);
    const expired: string[] = [];
    const item = (name: string, onExpire?: () => void): Expiring & { name: string } => ({
      name,
      bucket: undefined,
      prev: undefined,
      next: undefined,
      expire() {
        expired.push(name);
        onExpire?.();
      },
    });
    const a = item("a");
    const b = item("b");
    const c = item("c", () => timers.remove(b));
    for (const x of [a, b, c]) timers.add(x, 6000);
    clock.advance(6000);
    assert.deepEqual(expired.sort(), ["a", "b", "c"]);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe("gRPC: the caller's own faults are not the upstream's", () => {
  let backends: GrpcBackend[];
  before(async () => {
    backends = await startGrpcBackends(2, "gedge");
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("a message grpc-js cannot serialize fails that call, and never opens the breaker", async () => {
    const mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint()) }), resilience: { retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 3 } } });
    const grpc = grpcMesh(mesh);
    const client = grpc.client(proto.Orders, "orders");
    try {
      const poisoned = Object.defineProperty({}, "id", { enumerable: true, get: () => { throw new Error("no id for you"); } });
      for (let i = 0; i < 5; i++) {
        await assert.rejects(unary(client, "get", poisoned), (err: unknown) => (err as { code?: number }).code === status.INTERNAL);
      }
      const order = await unary(client, "get", { id: "ok" }).catch((err: unknown) => (err as { metadata?: { get(k: string): unknown[] } }).metadata?.get(ERROR_CODE_KEY)[0]);
      assert.equal(typeof order === "object" && order !== null ? "answered" : order, "answered");
      assert.equal((backends[0]!.calls.get ?? 0) + (backends[1]!.calls.get ?? 0), 1, "only the good call reached a server");
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
    }
  });
});

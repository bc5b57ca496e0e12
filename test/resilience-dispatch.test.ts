import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { request as undiciRequest, fetch as undiciFetch, type Dispatcher } from "undici";
import { createMesh, isMeshError, withIncomingDeadline, type EndpointEjectedEvent, type Mesh, type ResilienceOptions } from "proxyless";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends, totalSeen } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

const attempts = totalSeen;
/** The mesh error a rejected fetch carries (fetch rejects with a TypeError whose cause says why). */
const causeOf = (err: unknown): unknown => (err as { cause?: unknown }).cause;

describe("client.fetch() and mesh.dispatcher: retries, timeouts, limits and hedging", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(10, "d");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    for (const b of backends) b.reset();
  });
  const start = (resilience?: ResilienceOptions, n = 10, extra: Record<string, Backend[]> = {}): Mesh =>
    (mesh = createMesh({
      registry: new MockRegistry({ orders: backends.slice(0, n).map((b) => b.endpoint), ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, v.map((b) => b.endpoint)])) }),
      random: createSeededRandom(3),
      ...(resilience === undefined ? {} : { resilience }),
    }));

  it("fetch: one of 10 endpoints failing every request: >= 99.9% success, <= 1.12 attempts per request, ejected after 5", async () => {
    backends[4]!.failWith = 503;
    const m = start();
    const ejections: EndpointEjectedEvent[] = [];
    m.on("endpoint_ejected", (e) => ejections.push(e));
    let ok = 0;
    const requests = 500;
    for (let i = 0; i < requests; i++) {
      const res = await m.client("orders").fetch("/");
      await res.arrayBuffer();
      if (res.status === 200) ok++;
    }
    assert.ok(ok / requests >= 0.999, `success ${ok}/${requests}`);
    assert.ok(attempts(backends) / requests <= 1.12, `attempts per request ${attempts(backends) / requests}`);
    assert.deepEqual(ejections.map((e) => [e.endpoint, e.failures]), [[backends[4]!.name, 5]]);
    assert.equal(backends[4]!.seen.length, 5);
  });

  it("mesh.dispatcher with undici.request: a 503 goes again to another endpoint, the caller sees only the good answer", async () => {
    backends[0]!.failWith = 503;
    const m = start({ outlier: false }, 2);
    for (let i = 0; i < 6; i++) {
      const res = await undiciRequest("http://orders/x", { dispatcher: m.dispatcher });
      assert.equal(res.statusCode, 200);
      assert.equal((await res.body.json() as { instance: string }).instance, backends[1]!.name);
    }
    assert.ok(backends[0]!.seen.length >= 1, "the bad one was tried");
    assert.equal(backends[1]!.seen.length, 6);
  });

  it("every endpoint failing: attempts stay within 1.2x requests + 10 per second, and the caller gets the last answer", async () => {
    for (const b of backends.slice(0, 3)) b.failWith = 503;
    const m = start({ breaker: false, outlier: false }, 3);
    const requests = 200;
    const began = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next++ < requests) {
          const res = await m.client("orders").fetch("/");
          await res.arrayBuffer();
          assert.equal(res.status, 503);
        }
      }),
    );
    const seconds = Math.ceil((performance.now() - began) / 1000);
    const limit = 1.2 * requests + 10 * seconds;
    assert.ok(attempts(backends) <= limit, `${attempts(backends)} attempts for ${requests} requests in ${seconds} s (limit ${limit})`);
    assert.ok(attempts(backends) > requests, "some were retried");
  });

  it("never sends a POST without an Idempotency-Key twice; with a key, its body goes again whole", async () => {
    backends[0]!.resetRequests = true;
    const m = start(undefined, 2);
    const client = m.client("orders");
    // Pin the first attempt to the resetting instance: the seeded balancer's first pick.
    backends[1]!.resetRequests = true;
    await assert.rejects(client.fetch("/pay", { method: "POST", body: '{"amount":1}' }));
    assert.equal(attempts(backends), 1, "sent once");
    backends[1]!.resetRequests = false;
    for (const b of backends) b.seen.length = 0;
    let done = 0;
    for (let i = 0; i < 4; i++) {
      const res = await client.fetch("/pay", { method: "POST", body: '{"amount":2}', headers: { "idempotency-key": `k${i}`, "content-type": "application/json" } });
      assert.equal(res.status, 200);
      const echoed = (await res.json()) as { body: string; instance: string };
      assert.equal(echoed.body, '{"amount":2}', "the body arrived whole on the attempt that answered");
      assert.equal(echoed.instance, backends[1]!.name);
      done++;
    }
    assert.equal(done, 4);
    assert.ok(backends[0]!.seen.length >= 1, "the resetting instance was tried");
    assert.ok(backends[0]!.seen.every((r) => r.body === '{"amount":2}'), "the reset instance got the same body");
  });

  it("retries any method whose connection was refused (nothing was sent)", async () => {
    const dead = await Backend.start("dead");
    const endpoint = dead.endpoint;
    await dead.close();
    mesh = createMesh({ registry: new MockRegistry({ pay: [endpoint, backends[1]!.endpoint] }), random: createSeededRandom(5) });
    for (let i = 0; i < 4; i++) {
      const res = await mesh.client("pay").fetch("/pay", { method: "POST", body: "{}" });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    assert.equal(backends[1]!.seen.filter((r) => r.method === "POST").length, 4);
  });

  it("never retries a streamed body", async () => {
    backends[0]!.resetRequests = true;
    const m = start(undefined, 1);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("a"));
        controller.enqueue(new TextEncoder().encode("b"));
        controller.close();
      },
    });
    await assert.rejects(m.client("orders").fetch("/upload", { method: "PUT", body, duplex: "half" }));
    assert.equal(backends[0]!.seen.length, 1);
    await assert.rejects(m.client("orders").fetch("/upload", { method: "PUT", body: "ab" }));
    assert.equal(backends[0]!.seen.length, 1 + 3, "a body given whole is retried");
  });

  it("a per-try timeout moves on to another endpoint; the deadline ends the call with ERR_TIMEOUT", async () => {
    const [slow, fast] = [backends[0]!, backends[1]!];
    slow.delayMs = 400;
    const m = start({ perTryTimeoutMs: 100, outlier: false }, 2);
    for (let i = 0; i < 4; i++) {
      const res = await m.client("orders").fetch("/");
      assert.equal(((await res.json()) as { instance: string }).instance, fast.name);
    }
    await m.close();
    mesh = createMesh({ registry: new MockRegistry({ orders: [slow.endpoint] }), resilience: { timeoutMs: 100, retries: false } });
    await assert.rejects(mesh.client("orders").fetch("/"), (err: unknown) => isMeshError(causeOf(err), "ERR_TIMEOUT"));
  });

  it("limits concurrent requests: the excess fails at once with ERR_LIMIT_EXCEEDED, and the slot frees when the body ends", async () => {
    const m = start({ limits: { maxConcurrent: 1 } }, 1);
    const held = m.client("orders").fetch("/hold");
    await backends[0]!.waitForHeld();
    await assert.rejects(m.client("orders").fetch("/"), (err: unknown) => isMeshError(causeOf(err), "ERR_LIMIT_EXCEEDED"));
    assert.equal(backends[0]!.seen.length, 1, "the excess sent nothing");
    backends[0]!.release();
    await (await held).text();
    const res = await m.client("orders").fetch("/");
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it("hedging: a slow first attempt is overtaken by a second to another endpoint, and aborted", async () => {
    const [straggler, fast] = [backends[0]!, backends[1]!];
    straggler.delayMs = 2000;
    mesh = createMesh({ registry: new MockRegistry({ orders: [straggler.endpoint, fast.endpoint] }), resilience: { hedging: { delayMs: 20 }, outlier: false } });
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const began = performance.now();
      const res = await mesh.client("orders").fetch("/");
      assert.equal(((await res.json()) as { instance: string }).instance, fast.name);
      times.push(performance.now() - began);
    }
    assert.ok(Math.max(...times) < 1000, `every call answered by the fast one well before the straggler's 2 s: ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
    // The lost attempts were aborted (their connections ended by the client), not left to finish.
    await until(() => straggler.seen.length > 0 && straggler.clientEnded >= straggler.seen.length, 1500);
  });

  it("the caller's abort during a backoff ends the call and sends nothing more", async () => {
    backends[0]!.failWith = 503;
    const m = start({ retries: { backoffBaseMs: 10_000, backoffMaxMs: 10_000 }, outlier: false, timeoutMs: 0 }, 1);
    const controller = new AbortController();
    const pending = m.client("orders").fetch("/", { signal: controller.signal });
    while (backends[0]!.seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await assert.rejects(pending, (err: unknown) => (err as Error).name === "AbortError");
    assert.equal(backends[0]!.seen.length, 1);
  });

  it("a handler of undici's controller API gets the retried answer through mesh.dispatcher", async () => {
    backends[0]!.failWith = 503;
    const m = start({ outlier: false }, 2);
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let status = 0;
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart() {},
        onResponseStart(_controller, statusCode) {
          status = statusCode;
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          resolve({ status, body: Buffer.concat(chunks).toString() });
        },
        onResponseError(_controller, error) {
          reject(error);
        },
      };
      for (let i = 0; i < 1; i++) m.dispatcher.dispatch({ origin: "http://orders", path: "/", method: "GET" }, handler);
    });
    assert.equal(result.status, 200);
    assert.equal((JSON.parse(result.body) as { instance: string }).instance, backends[1]!.name);
  });

  it("undici's fetch through mesh.dispatcher retries a reset GET", async () => {
    backends[0]!.resetRequests = true;
    const m = start(undefined, 2);
    for (let i = 0; i < 4; i++) {
      const res = await undiciFetch("http://orders/", { dispatcher: m.dispatcher });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
  });

  /** Dispatches through mesh.dispatcher with a classic handler that records what it hears. */
  const recordDispatch = (m: Mesh, path: string, onConnect?: (abort: (err?: Error) => void) => void): { events: string[]; done: Promise<void> } => {
    const events: string[] = [];
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const handler = {
      onConnect(abort: (err?: Error) => void) {
        events.push("connect");
        onConnect?.(abort);
      },
      onHeaders(status: number) {
        events.push(`headers ${status}`);
        return true;
      },
      onData() {
        return true;
      },
      onComplete() {
        events.push("complete");
        finish();
      },
      onError(err: Error) {
        events.push(`error ${err.message}`);
        finish();
      },
    };
    m.dispatcher.dispatch({ origin: "http://orders", path, method: "GET" }, handler);
    return { events, done };
  };

  it("a caller's abort before the response is heard exactly once, and nothing is sent after it", async () => {
    const m = start(undefined, 1);
    let abort: ((err?: Error) => void) | undefined;
    const call = recordDispatch(m, "/hold", (a) => (abort = a));
    await backends[0]!.waitForHeld();
    abort!(new Error("caller aborted"));
    await call.done;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(call.events, ["connect", "error caller aborted"]);
    assert.equal(backends[0]!.seen.length, 1);
  });

  it("hedging while a 503 is read and dropped: the caller hears one response", async () => {
    const [failing, slow] = [backends[0]!, backends[1]!];
    failing.failWith = 503;
    failing.dripMs = 100;
    slow.delayMs = 150;
    // Seed 2 makes round robin start on the failing endpoint, every call: its 503 is being read when the hedge is due.
    mesh = createMesh({ registry: new MockRegistry({ orders: [failing.endpoint, slow.endpoint] }), random: createSeededRandom(2), resilience: { hedging: { delayMs: 20 }, outlier: false, retries: { backoffBaseMs: 0 } } });
    for (let i = 0; i < 4; i++) {
      const call = recordDispatch(mesh, "/");
      await call.done;
      await new Promise((resolve) => setTimeout(resolve, 250)); // anything left over would answer within this
      assert.equal(failing.seen.length, i + 1, "the call began on the failing endpoint");
      assert.deepEqual(call.events.filter((e) => e !== "connect"), ["headers 200", "complete"], `call ${i}: ${call.events.join(", ")}`);
    }
  });

  it("an expired incoming deadline does not free the half-open breaker's probe slot", async () => {
    const clock = new FakeClock(Date.now());
    backends[0]!.failWith = 503;
    const m = (mesh = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }), clock, resilience: { retries: false, breaker: { kind: "consecutive", threshold: 1, halfOpenAfterMs: 1000 } } }));
    const get = (path: string) => undiciRequest(`http://orders${path}`, { dispatcher: m.dispatcher });
    await (await get("/")).body.dump(); // opens the breaker
    clock.advance(1000);
    backends[0]!.failWith = undefined;
    const probe = get("/hold");
    await backends[0]!.waitForHeld();
    await assert.rejects(get("/"), (err: unknown) => isMeshError(err, "ERR_CIRCUIT_OPEN"));
    await assert.rejects(withIncomingDeadline({ "x-envoy-expected-rq-timeout-ms": "0" }, () => get("/")), (err: unknown) => isMeshError(err, "ERR_TIMEOUT"));
    await assert.rejects(get("/"), (err: unknown) => isMeshError(err, "ERR_CIRCUIT_OPEN"), "the probe is still the only call let through");
    backends[0]!.release();
    await (await probe).body.dump();
  });

  it("undici.request through mesh.dispatcher can be aborted during a backoff, before any attempt connected", async () => {
    const dead = await Backend.start("dead");
    const endpoint = dead.endpoint;
    await dead.close();
    mesh = createMesh({ registry: new MockRegistry({ orders: [endpoint] }), random: createSeededRandom(3), resilience: { retries: { backoffBaseMs: 10_000, backoffMaxMs: 10_000 }, outlier: false } });
    const controller = new AbortController();
    const pending = undiciRequest("http://orders/", { dispatcher: mesh.dispatcher, signal: controller.signal });
    // The first attempt's connection is refused; the call then waits out its backoff.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const began = performance.now();
    controller.abort();
    await assert.rejects(pending, (err: unknown) => (err as Error).name === "AbortError" || (err as { code?: string }).code === "UND_ERR_ABORTED");
    assert.ok(performance.now() - began < 1000, `rejected at once, not after the backoff (${(performance.now() - began).toFixed(0)} ms)`);
  });

  it("client.fetch sends the bytes of a body as they were when fetch was called", async () => {
    const m = start(undefined, 1);
    const body = Buffer.from("AAAA");
    const pending = m.client("orders").fetch("/", { method: "POST", body });
    body.fill(66);
    assert.equal(((await (await pending).json()) as { body: string }).body, "AAAA");
  });
});

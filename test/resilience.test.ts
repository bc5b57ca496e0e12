import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { fetch as undiciFetch } from "undici";
import { after, afterEach, before, describe, it } from "node:test";
import { createMesh, isMeshError, withIncomingDeadline, type BreakerStateEvent, type EndpointEjectedEvent, type Mesh, type ResilienceOptions, meshErrorOf } from "proxyless";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends, totalSeen } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

const attempts = totalSeen;

describe("retries and outlier ejection on misbehaving servers", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(10, "r");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    for (const b of backends) b.reset();
  });
  const start = (resilience?: ResilienceOptions, n = 10): Mesh =>
    (mesh = createMesh({ registry: new MockRegistry({ orders: backends.slice(0, n).map((b) => b.endpoint) }), random: createSeededRandom(3), ...(resilience === undefined ? {} : { resilience }) }));

  it("one of 10 endpoints failing every request: >= 99.9% success, <= 1.12 attempts per request, ejected after 5 failures", async () => {
    backends[4]!.failWith = 503;
    const m = start();
    const ejections: EndpointEjectedEvent[] = [];
    m.on("endpoint_ejected", (e) => ejections.push(e));
    let ok = 0;
    const requests = 1000;
    for (let i = 0; i < requests; i++) {
      const res = await m.client("orders").request({ path: "/" });
      await res.body.dump();
      if (res.statusCode === 200) ok++;
    }
    assert.ok(ok / requests >= 0.999, `success ${ok}/${requests}`);
    assert.ok(attempts(backends) / requests <= 1.12, `attempts per request ${attempts(backends) / requests}`);
    assert.deepEqual(ejections.map((e) => [e.endpoint, e.failures]), [[backends[4]!.name, 5]]);
    assert.equal(backends[4]!.seen.length, 5, "the bad one saw 5 requests, then none");
    assert.ok(!m.inspect("orders")!.targets.some((t) => t.id === backends[4]!.name), "out of the picker");
  });

  it("every endpoint failing: attempts stay within 1.2x requests + 10 per second (breaker off to see the budget alone)", async () => {
    for (const b of backends.slice(0, 3)) b.failWith = 503;
    const m = start({ breaker: false, outlier: false }, 3);
    let exhausted = 0;
    m.on("retry_budget_exhausted", () => exhausted++);
    const requests = 300;
    const began = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next++ < requests) {
          const res = await m.client("orders").request({ path: "/" });
          await res.body.dump();
          assert.equal(res.statusCode, 503, "the last attempt's answer reaches the caller");
        }
      }),
    );
    const seconds = Math.ceil((performance.now() - began) / 1000);
    const limit = 1.2 * requests + 10 * seconds;
    assert.ok(attempts(backends) <= limit, `${attempts(backends)} attempts for ${requests} requests in ${seconds} s (limit ${limit})`);
    assert.ok(exhausted > 0, "budget exhaustion is an event");
  });

  it("never sends a POST without an Idempotency-Key twice, but retries one with a key, and any request whose connection failed", async () => {
    backends[0]!.resetRequests = true;
    const m = start(undefined, 1);
    await assert.rejects(m.client("orders").request({ path: "/pay", method: "POST", body: "{}" }));
    assert.equal(backends[0]!.seen.length, 1, "sent once");
    await assert.rejects(m.client("orders").request({ path: "/pay", method: "POST", body: "{}", headers: { "idempotency-key": "k1" } }));
    assert.equal(backends[0]!.seen.length, 1 + 3, "with a key: the first attempt and two retries");

    const dead = await Backend.start("dead");
    const endpoint = dead.endpoint;
    await dead.close();
    const registry = new MockRegistry({ pay: [endpoint, backends[1]!.endpoint] });
    const other = createMesh({ registry, random: createSeededRandom(5) });
    for (let i = 0; i < 4; i++) {
      const res = await other.client("pay").request({ path: "/pay", method: "POST", body: "{}" });
      await res.body.dump();
      assert.equal(res.statusCode, 200, "a refused connection sent nothing: the POST goes to the other endpoint");
    }
    assert.equal(backends[1]!.seen.filter((r) => r.method === "POST").length, 4);
    await other.close();
  });

  it("retries a 429 after the time its Retry-After asks for", async () => {
    const limited = await Backend.start("limited");
    const clock = new FakeClock(Date.now());
    try {
      limited.failWith = 429;
      const m = createMesh({ registry: new MockRegistry({ orders: [limited.endpoint] }), clock, resilience: { timeoutMs: 0, retries: { maxRetries: 1 } } });
      // No deadline, so the only timer on the fake clock is the wait before the retry.
      const pending = m.client("orders").request({ path: "/", headers: {} });
      await until(() => limited.seen.length === 1 && clock.pendingTimers > 0);
      clock.advance(25); // the backoff alone would have been at most 25 ms: its wait would be over
      assert.ok(clock.pendingTimers > 0, "still waiting for Retry-After's second");
      assert.equal(limited.seen.length, 1);
      limited.failWith = undefined;
      clock.advance(1000);
      const res = await pending;
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      assert.equal(limited.seen.length, 2);
      await m.close();
    } finally {
      await limited.close();
    }
  });

  it("never retries a streamed body, and retries a buffered one", async () => {
    backends[0]!.resetRequests = true;
    const m = start(undefined, 1);
    await assert.rejects(m.client("orders").request({ path: "/upload", method: "PUT", body: Readable.from(["a", "b"]) }));
    assert.equal(backends[0]!.seen.length, 1);
    await assert.rejects(m.client("orders").request({ path: "/upload", method: "PUT", body: "ab" }));
    assert.equal(backends[0]!.seen.length, 1 + 3);
  });
});

describe("timeouts and deadlines", () => {
  let slow: Backend;
  let fast: Backend;
  before(async () => {
    [slow, fast] = (await startBackends(2, "t")) as [Backend, Backend];
    slow.delayMs = 400;
  });
  after(() => Promise.all([slow.close(), fast.close()]));

  it("fails with ERR_TIMEOUT when the deadline passes, and a per-try timeout moves on to another endpoint", async () => {
    const only = createMesh({ registry: new MockRegistry({ orders: [slow.endpoint] }), resilience: { timeoutMs: 100, retries: false } });
    await assert.rejects(only.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_TIMEOUT") && meshErrorOf(err)?.details.timeoutMs === 100);
    await only.close();
    const both = createMesh({ registry: new MockRegistry({ orders: [slow.endpoint, fast.endpoint] }), resilience: { perTryTimeoutMs: 100 } });
    for (let i = 0; i < 4; i++) {
      const res = await both.client("orders").request({ path: "/" });
      await res.body.dump();
      assert.equal(res.headers["x-instance"], fast.name);
    }
    await both.close();
  });

  it("tells the upstream its remaining time, and honours an incoming deadline", async () => {
    const m = createMesh({ registry: new MockRegistry({ orders: [fast.endpoint] }), resilience: { timeoutMs: 5000 } });
    const res = await m.client("orders").request({ path: "/" });
    await res.body.dump();
    const told = Number(fast.seen.at(-1)!.headers["x-envoy-expected-rq-timeout-ms"]);
    assert.ok(told > 4000 && told <= 5000, `told ${told} ms`);
    await withIncomingDeadline({ "x-envoy-expected-rq-timeout-ms": "300" }, async () => {
      const inner = await m.client("orders").request({ path: "/" });
      await inner.body.dump();
    });
    assert.ok(Number(fast.seen.at(-1)!.headers["x-envoy-expected-rq-timeout-ms"]) <= 300, "the incoming deadline caps the call");
    await m.close();
  });
});

describe("circuit breaker and limits", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(2, "b");
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("opens after consecutive failures, fails at once without I/O, half-opens after the wait, and closes on a good probe", async () => {
    for (const b of backends) b.failWith = 500;
    const clock = new FakeClock(Date.now());
    const m = createMesh({
      registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }),
      clock,
      resilience: { retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 3, halfOpenAfterMs: 1000 } },
    });
    const states: BreakerStateEvent["state"][] = [];
    m.on("breaker_state_changed", (e) => states.push(e.state));
    const call = async () => {
      const res = await m.client("orders").request({ path: "/" });
      await res.body.dump();
      return res.statusCode;
    };
    for (let i = 0; i < 3; i++) assert.equal(await call(), 500);
    assert.deepEqual(states, ["open"]);
    const before = attempts(backends);
    await assert.rejects(call(), (err: unknown) => isMeshError(err, "ERR_CIRCUIT_OPEN") && meshErrorOf(err)?.details.retryAfterMs === 1000);
    assert.equal(attempts(backends), before, "no request was sent");
    clock.advance(1000);
    assert.equal(await call(), 500, "the probe fails");
    assert.deepEqual(states, ["open", "half-open", "open"]);
    for (const b of backends) b.failWith = undefined;
    clock.advance(1000);
    assert.equal(await call(), 200, "the probe succeeds");
    assert.deepEqual(states, ["open", "half-open", "open", "half-open", "closed"]);
    assert.equal(await call(), 200);
    await m.close();
    for (const b of backends) b.seen.length = 0;
  });

  it("lets the next probe through when a half-open probe ends without a verdict, and ignores the caller's own errors", async () => {
    for (const b of backends) b.failWith = 500;
    const clock = new FakeClock(Date.now());
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const m = createMesh({ registry, clock, resilience: { retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 1, halfOpenAfterMs: 1000 } } });
    const first = await m.client("orders").request({ path: "/" });
    await first.body.dump();
    clock.advance(1000);
    registry.setEndpoints("orders", []); // the probe finds no endpoint: it throws before any attempt
    await assert.rejects(m.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS"));
    registry.setEndpoints("orders", backends.map((b) => b.endpoint));
    for (const b of backends) b.failWith = undefined;
    const probe = await m.client("orders").request({ path: "/" });
    await probe.body.dump();
    assert.equal(probe.statusCode, 200, "the next call was the probe, and it closed the breaker");
    for (let i = 0; i < 3; i++) {
      await assert.rejects(m.client("orders").request({ path: "/", headers: { "x-bad": "a\r\nb" } }));
    }
    const after = await m.client("orders").request({ path: "/" });
    await after.body.dump();
    assert.equal(after.statusCode, 200, "invalid requests are the caller's fault, not the upstream's");
    await m.close();
    for (const b of backends) b.seen.length = 0;
  });

  it("limits concurrent and pending requests, failing the excess at once with ERR_LIMIT_EXCEEDED", async () => {
    const m = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }), resilience: { limits: { maxConcurrent: 2, maxPending: 1 } } });
    const held = [m.client("orders").request({ path: "/hold" }), m.client("orders").request({ path: "/hold" })];
    await until(() => backends[0]!.seen.filter((r) => r.url === "/hold").length === 2);
    const queued = m.client("orders").request({ path: "/" });
    await assert.rejects(m.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_LIMIT_EXCEEDED"));
    backends[0]!.release();
    // A slot is held until the response body is done: read each as it comes, and the queued one gets a slot.
    const statuses = await Promise.all(
      [...held, queued].map(async (p) => {
        const res = await p;
        await res.body.dump();
        return res.statusCode;
      }),
    );
    assert.deepEqual(statuses, [200, 200, 200]);
    await m.close();
  });
});

describe("hedging", () => {
  let straggler: Backend;
  let fast: Backend;
  before(async () => {
    [straggler, fast] = (await startBackends(2, "h")) as [Backend, Backend];
    straggler.delayMs = 300;
  });
  after(() => Promise.all([straggler.close(), fast.close()]));

  async function p99(resilience: ResilienceOptions): Promise<number> {
    const m = createMesh({ registry: new MockRegistry({ orders: [straggler.endpoint, fast.endpoint] }), resilience });
    const latencies: number[] = [];
    for (let i = 0; i < 30; i++) {
      const began = performance.now();
      const res = await m.client("orders").request({ path: "/" });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      latencies.push(performance.now() - began);
    }
    await m.close();
    latencies.sort((a, b) => a - b);
    return latencies[Math.floor(0.99 * latencies.length)]!;
  }

  it("lowers p99 against a straggler: a second attempt to another endpoint after the delay, the first answer wins", async () => {
    const without = await p99({});
    const before = straggler.seen.length;
    // Half of these requests need a hedge: more than the default budget's 10 a second plus 20%.
    const withHedge = await p99({ hedging: { delayMs: 30 }, budget: { minPerSecond: 100 } });
    assert.ok(without >= 300, `without hedging the straggler sets p99: ${without.toFixed(0)} ms`);
    assert.ok(withHedge < without * 0.6, `with hedging p99 ${withHedge.toFixed(0)} ms vs ${without.toFixed(0)} ms`);
    assert.ok(straggler.seen.length > before, "the straggler still got first attempts");
  });

  it("carries on with the first attempt when the service empties before the hedge is due", async () => {
    const clock = new FakeClock(Date.now());
    const registry = new MockRegistry({ orders: [fast.endpoint] });
    const m = createMesh({ registry, clock, resilience: { hedging: { delayMs: 50 } } });
    const pending = m.client("orders").request({ path: "/hold" });
    await fast.waitForHeld();
    registry.setEndpoints("orders", []);
    clock.advance(50); // the hedge finds no endpoint: it is not sent, and nothing throws
    fast.release();
    const res = await pending;
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    await m.close();
  });

  it("never hedges a POST without an Idempotency-Key", async () => {
    const m = createMesh({ registry: new MockRegistry({ orders: [straggler.endpoint, fast.endpoint] }), resilience: { hedging: { delayMs: 10 } } });
    const before = fast.seen.length + straggler.seen.length;
    for (let i = 0; i < 2; i++) {
      const res = await m.client("orders").request({ path: "/", method: "POST", body: "x" });
      await res.body.dump();
    }
    assert.equal(fast.seen.length + straggler.seen.length - before, 2, "one attempt each");
    await m.close();
  });
});

describe("success-rate ejection", () => {
  it("ejects an endpoint failing one request in three (never five in a row) at the end of the interval", async () => {
    const backends = await startBackends(5, "sr");
    try {
      backends[2]!.failEvery = 3;
      const clock = new FakeClock(Date.now());
      const m = createMesh({
        registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }),
        clock,
        loadBalancer: { policy: "round_robin" },
        resilience: { retries: false, outlier: { successRate: { intervalMs: 10_000, requestVolume: 20 } } },
      });
      const ejected: EndpointEjectedEvent[] = [];
      m.on("endpoint_ejected", (e) => ejected.push(e));
      for (let i = 0; i < 150; i++) await (await m.client("orders").request({ path: "/" })).body.dump();
      assert.equal(ejected.length, 0, "judged only when the interval ends");
      clock.advance(10_000);
      assert.deepEqual(ejected.map((e) => [e.endpoint, e.reason]), [[backends[2]!.name, "success-rate"]]);
      assert.ok(ejected[0]!.successRate! < ejected[0]!.threshold!);
      const before = backends[2]!.seen.length;
      for (let i = 0; i < 20; i++) await (await m.client("orders").request({ path: "/" })).body.dump();
      assert.equal(backends[2]!.seen.length, before, "out of rotation");
      await m.close();
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

describe("client.fetch and mesh.dispatcher under the breaker and outlier detection", () => {
  it("ejects a failing endpoint from fetch traffic, and fails fast while the breaker is open", async () => {
    const backends = await startBackends(3, "f");
    try {
      backends[1]!.failWith = 503;
      const clock = new FakeClock(Date.now());
      const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
      const m = createMesh({ registry, clock, resilience: { breaker: { kind: "consecutive", threshold: 3, halfOpenAfterMs: 1000 }, retries: { backoffBaseMs: 0 } } });
      const ejected: EndpointEjectedEvent[] = [];
      m.on("endpoint_ejected", (e) => ejected.push(e));
      for (let i = 0; i < 30; i++) await (await m.client("orders").fetch("/")).text();
      assert.deepEqual(ejected.map((e) => e.endpoint), [backends[1]!.name]);
      for (const b of backends) b.failWith = 503;
      for (let i = 0; i < 3; i++) await (await undiciFetch("http://orders/", { dispatcher: m.dispatcher })).text();
      const before = attempts(backends);
      await assert.rejects(undiciFetch("http://orders/", { dispatcher: m.dispatcher }), (err: unknown) => isMeshError((err as { cause?: unknown }).cause, "ERR_CIRCUIT_OPEN"));
      assert.equal(attempts(backends), before, "no request was sent");
      await m.close();
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { createMesh, type Mesh, type MeshOptions, type ResilienceOptions } from "proxyless";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { counterSum, createOtel, points, registerContextAndPropagation, type Otel } from "./helpers/otel.ts";

registerContextAndPropagation();

/** The spans a call made: its INTERNAL span and its attempts' CLIENT spans, in start order. */
function callTrees(spans: readonly ReadableSpan[]): { call: ReadableSpan; attempts: ReadableSpan[] }[] {
  const byStart = [...spans].sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  return byStart
    .filter((s) => s.kind === SpanKind.INTERNAL && s.instrumentationScope.name === "proxyless")
    .map((call) => ({ call, attempts: byStart.filter((s) => s.parentSpanContext?.spanId === call.spanContext().spanId) }));
}

describe("OpenTelemetry traces and metrics, with the real SDK and in-memory exporters", () => {
  let backends: Backend[];
  let otel: Otel;
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(3, "t");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    await otel.shutdown();
    for (const b of backends) b.reset();
  });
  const start = (resilience: ResilienceOptions = { outlier: false }, n = 2, extra: Partial<MeshOptions> = {}): Mesh => {
    otel = createOtel();
    return (mesh = createMesh({
      registry: new MockRegistry({ orders: backends.slice(0, n).map((b) => b.endpoint) }),
      random: createSeededRandom(11),
      resilience,
      // These tests check the call's INTERNAL span and its children; the default layout has its own tests.
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider, callSpans: true },
      ...extra,
    }));
  };

  for (const api of ["request", "fetch"] as const) {
    it(`${api}(): a retried call is one INTERNAL span with a CLIENT span per attempt, with the conventions' and the mesh's attributes`, async () => {
      backends[0]!.failWith = 503;
      const m = start();
      for (let i = 0; i < 2; i++) {
        if (api === "request") {
          const res = await m.client("orders").request({ path: "/v1/x?y=1" });
          assert.equal(res.statusCode, 200);
          await res.body.dump();
        } else {
          const res = await m.client("orders").fetch("/v1/x?y=1");
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }
      }
      const trees = callTrees(otel.spans());
      assert.equal(trees.length, 2);
      const retried = trees.find((t) => t.attempts.length === 2);
      assert.ok(trees.every((t) => t.attempts.length === 1 || t.call.attributes["http.request.resend_count"] === t.attempts.length - 1));
      assert.ok(retried !== undefined, "one of two round-robin calls starts on the failing endpoint");
      const { call, attempts } = retried;
      assert.equal(call.name, "GET orders");
      assert.deepEqual(
        { ...call.attributes },
        {
          "http.request.method": "GET",
          "server.address": "orders",
          "proxyless.balancer": "round_robin",
          "http.request.resend_count": 1,
          "http.response.status_code": 200,
        },
      );
      assert.equal(call.status.code, SpanStatusCode.UNSET);
      const [first, second] = attempts as [ReadableSpan, ReadableSpan];
      for (const s of attempts) {
        assert.equal(s.kind, SpanKind.CLIENT);
        assert.equal(s.name, "GET");
        assert.equal(s.spanContext().traceId, call.spanContext().traceId);
        assert.equal(s.attributes["url.full"], "http://orders/v1/x?y=REDACTED");
        assert.equal(s.attributes["server.address"], "orders");
        assert.equal(s.attributes["server.port"], 80);
        assert.equal(s.attributes["network.peer.address"], "127.0.0.1");
      }
      assert.equal(first.attributes["http.response.status_code"], 503);
      assert.equal(first.attributes["error.type"], "503");
      assert.equal(first.attributes["network.peer.port"], backends[0]!.port);
      assert.equal(first.attributes["proxyless.endpoint"], backends[0]!.name);
      assert.equal(first.attributes["http.request.resend_count"], undefined);
      assert.equal(first.status.code, SpanStatusCode.ERROR);
      assert.equal(second.attributes["http.response.status_code"], 200);
      assert.equal(second.attributes["network.peer.port"], backends[1]!.port);
      assert.equal(second.attributes["http.request.resend_count"], 1);
      assert.equal(second.attributes["proxyless.retry.reason"], "503");
      assert.equal(second.attributes["error.type"], undefined);
      // Each attempt told its own span to the server: the parent of the server's span.
      const sentTo = (b: Backend): unknown[] => b.seen.map((r) => r.headers.traceparent);
      assert.ok(sentTo(backends[0]!).includes(`00-${call.spanContext().traceId}-${first.spanContext().spanId}-01`));
      assert.ok(sentTo(backends[1]!).includes(`00-${call.spanContext().traceId}-${second.spanContext().spanId}-01`));
    });
  }

  it("the caller's trace context and baggage arrive at the backend, replacing a traceparent the caller set by hand", async () => {
    const m = start();
    const tracer = otel.tracerProvider.getTracer("test");
    const parent = tracer.startSpan("incoming");
    const withBaggage = propagation.setBaggage(trace.setSpan(context.active(), parent), propagation.createBaggage({ tenant: { value: "acme" } }));
    const stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await context.with(withBaggage, async () => {
      const res = await m.client("orders").request({ path: "/", headers: { TraceParent: stale } });
      await res.body.dump();
    });
    parent.end();
    const seen = [...backends[0]!.seen, ...backends[1]!.seen];
    assert.equal(seen.length, 1);
    const headers = seen[0]!.headers;
    const [call] = callTrees(otel.spans());
    assert.equal(call!.call.parentSpanContext?.spanId, parent.spanContext().spanId);
    assert.equal(headers.traceparent, `00-${parent.spanContext().traceId}-${call!.attempts[0]!.spanContext().spanId}-01`);
    assert.equal(headers.baggage, "tenant=acme");
  });

  it("with no span active, a traceparent the caller set by hand is the call's parent (the mesh replaces the header, not the trace)", async () => {
    const m = start();
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const res = await m.client("orders").request({ path: "/", headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    await res.body.dump();
    const [tree] = callTrees(otel.spans());
    assert.equal(tree!.call.spanContext().traceId, traceId);
    assert.equal(tree!.call.parentSpanContext?.spanId, "b7ad6b7169203331");
    const seen = [...backends[0]!.seen, ...backends[1]!.seen];
    assert.equal(seen[0]!.headers.traceparent, `00-${traceId}-${tree!.attempts[0]!.spanContext().spanId}-01`);
  });

  it("metrics after known traffic: attempts, retries, durations, endpoints by state, breaker, staleness, connections", async () => {
    backends[0]!.failWith = 503;
    const m = start({ outlier: false, breaker: { kind: "consecutive", threshold: 1000 } });
    const calls = 10;
    for (let i = 0; i < calls; i++) {
      const res = await m.client("orders").request({ path: "/" });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    const retries = backends[0]!.seen.length;
    assert.ok(retries >= 4, `round robin sent ${retries} first attempts to the failing endpoint`);
    const metrics = await otel.collect();
    const attempts = points(metrics, "http.client.request.duration");
    const count = (status: number): number => attempts.filter((p) => p.attributes["http.response.status_code"] === status).reduce((n, p) => n + (p.value as { count: number }).count, 0);
    assert.equal(count(503), retries);
    assert.equal(count(200), calls);
    assert.deepEqual(attempts.find((p) => p.attributes["http.response.status_code"] === 503)?.attributes, {
      "server.address": "orders",
      "server.port": 80,
      "http.request.method": "GET",
      "http.response.status_code": 503,
      "error.type": "503",
    });
    const callPoints = points(metrics, "proxyless.client.call.duration");
    assert.equal(callPoints.length, 1);
    assert.equal((callPoints[0]!.value as { count: number }).count, calls);
    // Attempts are the histogram's count: one point per attempt.
    assert.equal(attempts.reduce((n, p) => n + (p.value as { count: number }).count, 0), calls + retries);
    assert.equal(counterSum(metrics, "proxyless.client.retries", { "proxyless.retry.reason": "503" }), retries);
    assert.equal(counterSum(metrics, "proxyless.client.hedges"), 0);
    assert.equal(counterSum(metrics, "proxyless.endpoints", { "proxyless.endpoint.state": "passing" }), 2);
    assert.equal(counterSum(metrics, "proxyless.endpoints", { "proxyless.endpoint.state": "ejected" }), 0);
    assert.equal(counterSum(metrics, "proxyless.circuit_breaker.state", { "proxyless.circuit_breaker.state": "closed" }), 1);
    assert.equal(counterSum(metrics, "proxyless.circuit_breaker.state", { "proxyless.circuit_breaker.state": "open" }), 0);
    assert.equal(counterSum(metrics, "proxyless.registry.staleness"), 0);
    assert.equal(counterSum(metrics, "proxyless.connections.open"), 2);
  });

  it("span events for an ejection, the breaker opening and a spent retry budget; the ejection counter", async () => {
    backends[0]!.failWith = 503;
    backends[1]!.failWith = 503;
    // One endpoint: its failure is the service's, so the breaker counts it (with another endpoint to take over, it would be outlier detection's alone).
    const m = start({ outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 }, breaker: { kind: "consecutive", threshold: 1 }, budget: { percent: 0, minPerSecond: 0 } }, 1);
    const res = await m.client("orders").request({ path: "/" });
    assert.equal(res.statusCode, 503);
    await res.body.dump();
    const [tree] = callTrees(otel.spans());
    const events = tree!.call.events.map((e) => [e.name, { ...e.attributes }]);
    assert.deepEqual(events, [
      ["proxyless.endpoint_ejected", { "proxyless.endpoint": tree!.attempts[0]!.attributes["proxyless.endpoint"] }],
      ["proxyless.retry_budget_exhausted", {}],
      ["proxyless.circuit_breaker.state_changed", { "proxyless.circuit_breaker.state": "open" }],
    ]);
    assert.equal(tree!.call.attributes["error.type"], "503");
    assert.equal(tree!.call.status.code, SpanStatusCode.ERROR);
    const metrics = await otel.collect();
    assert.equal(counterSum(metrics, "proxyless.endpoint.ejections", { "proxyless.ejection.reason": "consecutive-failures" }), 1);
    assert.equal(counterSum(metrics, "proxyless.retry_budget.exhausted"), 1);
    assert.equal(counterSum(metrics, "proxyless.circuit_breaker.state", { "proxyless.circuit_breaker.state": "open" }), 1);
    assert.equal(counterSum(metrics, "proxyless.endpoints", { "proxyless.endpoint.state": "ejected" }), 1);
  });

  it("a failed call: error.type is the mesh's error code, and the span says why", async () => {
    const m = start({ outlier: false, retries: { maxRetries: 0 } }, 1);
    await backends[0]!.close();
    await assert.rejects(m.client("orders").request({ path: "/" }));
    backends[0] = await Backend.start("t0");
    const [tree] = callTrees(otel.spans());
    assert.equal(tree!.call.attributes["error.type"], "ECONNREFUSED");
    assert.equal(tree!.call.status.code, SpanStatusCode.ERROR);
    assert.equal(tree!.attempts[0]!.attributes["error.type"], "ECONNREFUSED");
    const metrics = await otel.collect();
    assert.equal(points(metrics, "proxyless.client.call.duration")[0]?.attributes["error.type"], "ECONNREFUSED");
  });

  it("a hedge is an attempt span marked proxyless.hedge; the loser ends as cancelled, not as an error", async () => {
    backends[0]!.delayMs = 300;
    const clockless = start({ outlier: false, hedging: { delayMs: 20 } }, 2, { loadBalancer: { policy: "round_robin" } });
    let hedgedTree: { call: ReadableSpan; attempts: ReadableSpan[] } | undefined;
    for (let i = 0; i < 2 && hedgedTree === undefined; i++) {
      const res = await clockless.client("orders").request({ path: "/" });
      await res.body.dump();
      hedgedTree = callTrees(otel.spans()).find((t) => t.attempts.length === 2);
    }
    assert.ok(hedgedTree !== undefined, "a call that started on the slow endpoint was hedged");
    const [slow, hedge] = hedgedTree.attempts as [ReadableSpan, ReadableSpan];
    assert.equal(hedge.attributes["proxyless.hedge"], true);
    assert.equal(hedge.attributes["http.request.resend_count"], 1);
    assert.equal(hedge.attributes["http.response.status_code"], 200);
    assert.equal(slow.attributes["error.type"], "cancelled");
    assert.equal(slow.status.code, SpanStatusCode.UNSET);
    const metrics = await otel.collect();
    assert.equal(counterSum(metrics, "proxyless.client.hedges"), 1);
  });

  for (const api of ["request", "fetch"] as const) {
    it(`default layout, ${api}(): a CLIENT span per attempt under the caller's span, no call span; a retry is a sibling with resend_count`, async () => {
      backends[0]!.failWith = 503;
      otel = createOtel();
      const m = (mesh = createMesh({
        registry: new MockRegistry({ orders: backends.slice(0, 2).map((b) => b.endpoint) }),
        random: createSeededRandom(11),
        resilience: { outlier: false },
        telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider },
      }));
      const tracer = otel.tracerProvider.getTracer("test");
      for (let i = 0; i < 2; i++) {
        await tracer.startActiveSpan("job", async (job) => {
          if (api === "request") {
            const res = await m.client("orders").request({ path: "/v1/orders?id=7" });
            assert.equal(res.statusCode, 200);
            await res.body.dump();
          } else {
            const res = await m.client("orders").fetch("/v1/orders?id=7");
            assert.equal(res.status, 200);
            await res.text();
          }
          job.end();
        });
      }
      const spans = otel.spans();
      const mine = spans.filter((s) => s.instrumentationScope.name === "proxyless");
      assert.ok(mine.length > 0 && mine.every((s) => s.kind === SpanKind.CLIENT), "only CLIENT spans from the mesh");
      const jobs = spans.filter((s) => s.name === "job");
      assert.equal(jobs.length, 2);
      // Round robin over the two: each call's first attempt goes to the failing backend, its retry to the other.
      for (const job of jobs) {
        const under = mine.filter((s) => s.parentSpanContext?.spanId === job.spanContext().spanId);
        assert.equal(under.length, 2, "a call's two attempts are siblings under the caller's span");
        const [first, second] = [...under].sort((a, b) => Number(a.attributes["http.request.resend_count"] ?? 0) - Number(b.attributes["http.request.resend_count"] ?? 0));
        assert.equal(first!.attributes["http.request.resend_count"], undefined);
        assert.equal(first!.attributes["http.response.status_code"], 503);
        assert.equal(second!.attributes["http.request.resend_count"], 1);
        assert.equal(second!.attributes["proxyless.retry.reason"], "503");
        assert.equal(second!.attributes["http.response.status_code"], 200);
      }
      assert.equal(mine.length, 4);
      const sent = [...backends[0]!.seen, ...backends[1]!.seen];
      assert.equal(sent.length, 4);
      for (const request of sent) {
        const header = request.headers.traceparent;
        assert.ok(mine.some((s) => header === `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`), `${String(header)} names an attempt span`);
      }
      const durations = points(await otel.collect(), "http.client.request.duration");
      assert.equal(
        durations.reduce((n, p) => n + (p.value as { count: number }).count, 0),
        4,
        "a duration point per attempt",
      );
    });
  }

  it("default layout: a routed call's attempt spans name the route and subset", async () => {
    otel = createOtel();
    const registry = new MockRegistry({ web: [backends[2]!.endpoint], api: [backends[0]!.endpoint, { ...backends[1]!.endpoint, meta: { version: "v2" } }] });
    mesh = createMesh({ registry, telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider } });
    registry.setConfig("api", { resolver: { subsets: { v2: { filter: "Service.Meta.version == v2" } } } });
    registry.setConfig("web", { router: { routes: [{ match: { pathPrefix: "/api" }, destination: { service: "api", subset: "v2" } }] } });
    const res = await mesh.client("web").request({ path: "/api/x" });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    const spans = otel.spans().filter((s) => s.instrumentationScope.name === "proxyless");
    assert.equal(spans.length, 1);
    const attempt = spans[0]!;
    assert.equal(attempt.kind, SpanKind.CLIENT);
    assert.deepEqual(
      [attempt.attributes["server.address"], attempt.attributes["proxyless.target"], attempt.attributes["proxyless.route"], attempt.attributes["proxyless.subset"]],
      ["web", "api", 0, "v2"],
    );
  });

  it("routing: the call span names the route and subset, the attempt the service that served it", async () => {
    otel = createOtel();
    const registry = new MockRegistry({ web: [backends[2]!.endpoint], api: [backends[0]!.endpoint, { ...backends[1]!.endpoint, meta: { version: "v2" } }] });
    mesh = createMesh({ registry, telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider, callSpans: true } });
    registry.setConfig("api", { resolver: { subsets: { v2: { filter: "Service.Meta.version == v2" } } } });
    registry.setConfig("web", { router: { routes: [{ match: { pathPrefix: "/api" }, destination: { service: "api", subset: "v2" } }] } });
    const res = await mesh.client("web").request({ path: "/api/x" });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    const [tree] = callTrees(otel.spans());
    assert.equal(tree!.call.attributes["server.address"], "web");
    assert.equal(tree!.call.attributes["proxyless.target"], "api");
    assert.equal(tree!.call.attributes["proxyless.route"], 0);
    assert.equal(tree!.call.attributes["proxyless.subset"], "v2");
    assert.equal(tree!.attempts[0]!.attributes["proxyless.target"], "api");
    assert.equal(tree!.attempts[0]!.attributes["server.address"], "web");
    assert.equal(tree!.attempts[0]!.attributes["proxyless.endpoint"], backends[1]!.name);
  });

  it("registry staleness grows while the registry fails, on the mesh's clock, and returns to 0 when it answers", async () => {
    otel = createOtel();
    const clock = new FakeClock();
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    mesh = createMesh({ registry, clock, telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider, callSpans: true } });
    mesh.client("orders");
    await mesh.explain("orders");
    clock.advance(1000);
    registry.fail("orders", new Error("consul down"));
    clock.advance(3000);
    registry.fail("orders", new Error("consul still down"));
    clock.advance(1000);
    const metrics = await otel.collect();
    assert.equal(counterSum(metrics, "proxyless.registry.staleness", { "server.address": "orders" }), 4);
    registry.setEndpoints("orders", [backends[0]!.endpoint, backends[1]!.endpoint]);
    assert.equal(counterSum(await otel.collect(), "proxyless.registry.staleness"), 0);
  });
});

import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { after, afterEach, before, describe, it } from "node:test";
import { diag, DiagLogLevel, metrics, trace, type DiagLogger } from "@opentelemetry/api";
import { channels, createMesh, isMeshError, EndpointSet, type Registry, type EndpointEjectedMessage, type EndpointMessage, type Mesh, type PickMessage, type RequestEndMessage, type RequestStartMessage } from "proxyless";
import { FakeClock, MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { createOtel, registerContextAndPropagation, type Otel } from "./helpers/otel.ts";

/** Collects what is published on every proxyless channel, by channel name. */
function listen(): { readonly got: Map<string, unknown[]>; readonly stop: () => void } {
  const got = new Map<string, unknown[]>();
  const listeners = Object.values(channels).map((name) => {
    const listener = (message: unknown): void => {
      got.set(name, [...(got.get(name) ?? []), message]);
    };
    subscribe(name, listener);
    return [name, listener] as const;
  });
  return { got, stop: () => listeners.forEach(([name, l]) => unsubscribe(name, l)) };
}

describe("without an OpenTelemetry SDK; diagnostics_channel; snapshot(); an SDK registered later", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  const problems: string[] = [];
  const logger: DiagLogger = {
    error: (m) => problems.push(`error: ${m}`),
    warn: (m) => problems.push(`warn: ${m}`),
    info: () => undefined,
    debug: () => undefined,
    verbose: () => undefined,
  };
  before(async () => {
    backends = await startBackends(2, "o");
    diag.setLogger(logger, DiagLogLevel.WARN);
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    for (const b of backends) b.reset();
  });

  it("no SDK registered: calls work, send no trace headers, and the API logs no problem", async () => {
    assert.equal(trace.getTracerProvider().getTracer("probe").startSpan("probe").isRecording(), false, "no SDK in this process yet");
    mesh = createMesh({ registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }) });
    for (let i = 0; i < 4; i++) {
      const res = await mesh.client("orders").request({ path: "/" });
      await res.body.dump();
      const f = await mesh.client("orders").fetch("/");
      await f.arrayBuffer();
    }
    const seen = [...backends[0]!.seen, ...backends[1]!.seen];
    assert.equal(seen.length, 8);
    assert.ok(seen.every((r) => r.headers.traceparent === undefined && r.headers.baggage === undefined));
    assert.deepEqual(problems, []);
  });

  it("diagnostics_channel: request start and end, pick, endpoint added, removed and ejected, config applied and rejected, registry errors", async () => {
    const { got, stop } = listen();
    try {
      const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
      mesh = createMesh({ registry, resilience: { outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 }, retries: { maxRetries: 0 } } });
      const res = await mesh.client("orders").request({ path: "/v1?a=1" });
      await res.body.dump();
      const [startMsg] = got.get(channels.requestStart) as [RequestStartMessage];
      const [endMsg] = got.get(channels.requestEnd) as [RequestEndMessage];
      assert.equal(startMsg, endMsg, "one object per call, filled in at the end");
      assert.deepEqual({ ...endMsg, startedAt: 0, durationMs: 0 }, { service: "orders", target: "orders", method: "GET", path: "/v1?a=1", startedAt: 0, statusCode: 200, error: undefined, attempts: 1, durationMs: 0 });
      assert.ok(endMsg.durationMs >= 0);
      const [pick] = got.get(channels.pick) as [PickMessage];
      assert.deepEqual({ service: pick.service, id: pick.endpoint.id, policy: pick.policy, resend: pick.resendCount, hedge: pick.hedge }, { service: "orders", id: backends[0]!.name, policy: "round_robin", resend: 0, hedge: false });

      registry.addEndpoint("orders", backends[1]!.endpoint);
      registry.removeEndpoint("orders", backends[0]!.name);
      // The first answer adds every endpoint it names.
      assert.deepEqual((got.get(channels.endpointAdded) as EndpointMessage[]).map((m) => [m.service, m.endpoint.id]), [["orders", backends[0]!.name], ["orders", backends[1]!.name]]);
      assert.deepEqual((got.get(channels.endpointRemoved) as EndpointMessage[]).map((m) => [m.service, m.endpoint.id]), [["orders", backends[0]!.name]]);

      backends[1]!.failWith = 503;
      const failed = await mesh.client("orders").request({ path: "/" });
      await failed.body.dump();
      const [ejected] = got.get(channels.endpointEjected) as [EndpointEjectedMessage];
      assert.equal(ejected.endpoint, backends[1]!.name);
      assert.equal(ejected.reason, "consecutive-failures");

      registry.setConfig("orders", { loadBalancer: { policy: "least_request" } });
      registry.setConfig("orders", { loadBalancer: { policy: "no_such_policy" } });
      registry.fail("orders", new Error("consul down"));
      assert.deepEqual(got.get(channels.configApplied)?.map((m) => (m as { policy: string }).policy).slice(-1), ["least_request"]);
      assert.equal((got.get(channels.configRejected)?.[0] as { error: { code: string } }).error.code, "ERR_INVALID_CONFIG");
      assert.equal((got.get(channels.registryError)?.[0] as { error: Error }).error.message, "consul down");
    } finally {
      stop();
    }
  });

  it("a failed call ends on the channel with its error and attempts", async () => {
    const { got, stop } = listen();
    try {
      mesh = createMesh({ registry: new MockRegistry({ orders: [] }) });
      await assert.rejects(mesh.client("orders").request({ path: "/" }), { code: "ERR_NO_ENDPOINTS" });
      // No endpoint, no attempt: the call failed before one was sent, and no call began.
      assert.equal(got.get(channels.requestStart), undefined);
      await mesh.close();
      await backends[1]!.close();
      mesh = createMesh({ registry: new MockRegistry({ orders: [backends[1]!.endpoint] }), resilience: { outlier: false, retries: { maxRetries: 0 } } });
      await assert.rejects(mesh.client("orders").request({ path: "/" }), { code: "ECONNREFUSED" });
      backends[1] = await Backend.start("o-1");
      const [end] = got.get(channels.requestEnd) as [RequestEndMessage];
      assert.equal(end.statusCode, undefined);
      assert.equal((end.error as { code?: string }).code, "ECONNREFUSED");
      assert.equal(end.attempts, 1);
    } finally {
      stop();
    }
  });

  it("snapshot(): services, endpoints with health, rotation, load and ejection, config version and source, breaker, registry staleness; plain JSON", async () => {
    const clock = new FakeClock();
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint, { ...backends[1]!.endpoint, health: "warning" }] });
    mesh = createMesh({ registry, clock, random: createSeededRandom(1), resilience: { outlier: { consecutiveFailures: 1, maxEjectionPercent: 100, baseEjectionMs: 30_000 }, breaker: { kind: "consecutive", threshold: 5 } } });
    registry.setConfig("orders", { loadBalancer: { policy: "least_request" } });
    mesh.client("orders");
    await mesh.explain("orders");
    backends[0]!.failWith = 503;
    backends[1]!.failWith = 503;
    const res = await mesh.client("orders").request({ path: "/", method: "POST" });
    await res.body.dump();
    clock.advance(2000);
    registry.fail("orders", new Error("consul down"));
    clock.advance(3000);
    const snap = mesh.snapshot();
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap, "plain JSON");
    assert.equal(snap.registry, "MockRegistry");
    assert.equal(snap.services.length, 1);
    const orders = snap.services[0]!;
    assert.equal(orders.name, "orders");
    assert.equal(orders.status, "known");
    assert.equal(orders.policy, "least_request");
    // The registry had the config before the watch began: it sent it once, with the endpoints.
    assert.deepEqual(orders.config, { version: 1, source: "registry", ageMs: 5000, parts: ["loadBalancer"] });
    assert.deepEqual(orders.registry, { lastUpdateAgeMs: 5000, failing: true, stalenessMs: 3000, lastError: "consul down" });
    assert.equal(orders.breaker, "closed");
    // The retry budget's window (1 s) is empty 5 s after the one call: only its floor is allowed.
    assert.deepEqual({ ...orders.budget, allowed: orders.budget.allowed > 0 }, { windowMs: 1000, requests: 0, retries: 0, allowed: true });
    const byId = new Map(orders.endpoints.map((e) => [e.id, e]));
    const first = byId.get(backends[0]!.name)!;
    const second = byId.get(backends[1]!.name)!;
    assert.equal(first.health, "passing");
    assert.equal(second.health, "warning");
    // The POST went to one endpoint, which failed and was ejected (a POST is not retried).
    const [hit, other] = first.ejected ? [first, second] : [second, first];
    assert.deepEqual({ ejected: hit.ejected, ejections: hit.ejections, inRotation: hit.inRotation, weight: hit.weight, pending: hit.pending, connections: hit.connections }, { ejected: true, ejections: 1, inRotation: false, weight: 0, pending: 0, connections: 1 });
    assert.ok(hit.ejectedForMs !== null && hit.ejectedForMs > 20_000 && hit.ejectedForMs <= 33_000 - 5000, `ejected for ${hit.ejectedForMs} ms`);
    assert.deepEqual({ ejected: other.ejected, inRotation: other.inRotation, ejectedForMs: other.ejectedForMs }, { ejected: false, inRotation: true, ejectedForMs: null });
    assert.equal(orders.openConnections, 1);
    // The counters the admin page charts: the 503 was an attempt that failed; the other endpoint had none.
    assert.deepEqual([hit.attempts, hit.failures, other.attempts, other.failures], [1, 1, 0, 0]);
  });

  it("a registry watch that says how long it has been failing is believed: its warnings (error updates) do not count", async () => {
    let failingFor: number | undefined = undefined;
    const registry: Registry = {
      watch: (service, listener) => {
        listener({ type: "endpoints", endpoints: EndpointSet.of(service, [backends[0]!.endpoint]) });
        listener({ type: "error", error: new Error("skipped an instance with no address") });
        return { close: () => undefined, failingForMs: () => failingFor };
      },
    };
    mesh = createMesh({ registry });
    mesh.client("orders");
    await mesh.explain("orders");
    assert.deepEqual({ ...mesh.snapshot().services[0]!.registry, lastUpdateAgeMs: 0 }, { lastUpdateAgeMs: 0, failing: false, stalenessMs: 0, lastError: null });
    failingFor = 2500;
    const registryPart = mesh.snapshot().services[0]!.registry;
    assert.deepEqual({ ...registryPart, lastUpdateAgeMs: 0 }, { lastUpdateAgeMs: 0, failing: true, stalenessMs: 2500, lastError: "skipped an instance with no address" });
  });

  let otel: Otel | undefined;
  it("an SDK registered after the mesh was made is used from the next call", async () => {
    mesh = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }) });
    const res = await mesh.client("orders").request({ path: "/" });
    await res.body.dump();
    otel = createOtel();
    registerContextAndPropagation();
    trace.setGlobalTracerProvider(otel.tracerProvider);
    metrics.setGlobalMeterProvider(otel.meterProvider);
    const again = await mesh.client("orders").request({ path: "/" });
    await again.body.dump();
    const spans = otel.spans();
    assert.deepEqual(
      spans.map((s) => s.name),
      ["GET"],
      "the attempt's CLIENT span (no call span by default)",
    );
    assert.equal(backends[0]!.seen[0]!.headers.traceparent, undefined);
    assert.equal(backends[0]!.seen[1]!.headers.traceparent, `00-${spans[0]!.spanContext().traceId}-${spans[0]!.spanContext().spanId}-01`);
    const collected = (await otel.collect()).map((m) => m.descriptor.name);
    assert.ok(collected.includes("http.client.request.duration") && collected.includes("proxyless.endpoints"), collected.join());
  });

  it("telemetry options are checked: attempts and callSpans take only their values", () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    for (const [telemetry, field] of [
      [{ attempts: "sometimes" }, "telemetry.attempts"],
      [{ callSpans: "yes" }, "telemetry.callSpans"],
      [{ callSpan: true }, "telemetry.callSpan"],
    ] as const) {
      assert.throws(
        () => createMesh({ registry, telemetry: telemetry as never }),
        (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && err.message.includes(field),
      );
    }
    for (const callSpans of [true, false]) void createMesh({ registry, telemetry: { callSpans } }).close();
  });

  it("telemetry: false records nothing even with a global SDK", async () => {
    assert.ok(otel !== undefined);
    otel.exporter.reset();
    mesh = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }), telemetry: false });
    const res = await mesh.client("orders").request({ path: "/" });
    await res.body.dump();
    assert.deepEqual(otel.spans(), []);
    assert.equal(backends[0]!.seen[0]!.headers.traceparent, undefined);
    assert.deepEqual(problems, []);
    await otel.shutdown();
  });
});

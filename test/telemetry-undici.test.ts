import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SpanKind } from "@opentelemetry/api";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { createMesh } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { createOtel, registerContextAndPropagation, type Otel } from "./helpers/otel.ts";

registerContextAndPropagation();

describe("with @opentelemetry/instrumentation-undici active", () => {
  let backends: Backend[];
  let otel: Otel;
  let instrumentation: UndiciInstrumentation;
  before(async () => {
    backends = await startBackends(2, "u");
    otel = createOtel();
    instrumentation = new UndiciInstrumentation();
    instrumentation.setTracerProvider(otel.tracerProvider);
  });
  after(async () => {
    instrumentation.disable();
    await otel.shutdown();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("each attempt is traced once (undici's span, under the mesh's call span) and sends one traceparent", async () => {
    backends[0]!.failWith = 503;
    const mesh = createMesh({
      registry: new MockRegistry({ orders: backends.map((b) => b.endpoint) }),
      random: createSeededRandom(5),
      resilience: { outlier: false },
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider, callSpans: true },
    });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await mesh.client("orders").request({ path: "/" });
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
    } finally {
      await mesh.close();
    }
    const spans = otel.spans();
    const calls = spans.filter((s) => s.instrumentationScope.name === "proxyless");
    assert.equal(calls.length, 2, "only the call spans come from the mesh");
    assert.ok(calls.every((s) => s.kind === SpanKind.INTERNAL));
    const attempts = spans.filter((s) => s.instrumentationScope.name === "@opentelemetry/instrumentation-undici");
    const sent = [...backends[0]!.seen, ...backends[1]!.seen];
    assert.equal(attempts.length, sent.length, "one CLIENT span per request sent");
    assert.ok(attempts.every((s) => s.kind === SpanKind.CLIENT && calls.some((c) => c.spanContext().spanId === s.parentSpanContext?.spanId)), "each under a call span");
    const retried = calls.find((c) => c.attributes["http.request.resend_count"] === 1);
    assert.ok(retried !== undefined);
    assert.equal(attempts.filter((s) => s.parentSpanContext?.spanId === retried.spanContext().spanId).length, 2);
    for (const request of sent) {
      const header = request.headers.traceparent;
      assert.equal(typeof header, "string", "exactly one traceparent header");
      assert.ok(attempts.some((s) => header === `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`), `${String(header)} is an undici span`);
    }
  });

  it("a traceparent the caller set by hand goes out once: undici's, continuing the caller's trace", async () => {
    const mesh = createMesh({
      registry: new MockRegistry({ orders: [backends[1]!.endpoint] }),
      telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider },
    });
    const before = backends[1]!.seen.length;
    try {
      const res = await mesh.client("orders").request({ path: "/", headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } });
      await res.body.dump();
    } finally {
      await mesh.close();
    }
    const header = backends[1]!.seen[before]!.headers.traceparent;
    assert.equal(typeof header, "string");
    assert.doesNotMatch(String(header), /,/, "one traceparent, not two");
    assert.match(String(header), /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/, "in the caller's trace");
    assert.doesNotMatch(String(header), /b7ad6b7169203331/, "naming undici's span, not the caller's");
  });
});

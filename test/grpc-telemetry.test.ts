import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SpanKind } from "@opentelemetry/api";
import { status } from "@grpc/grpc-js";
import { createMesh } from "proxyless";
import { grpcMesh } from "proxyless/grpc";
import { MockRegistry } from "proxyless/testing";
import { proto, startGrpcBackends, unary, type GrpcBackend } from "./helpers/grpc-backend.ts";
import { counterSum, createOtel, points, registerContextAndPropagation } from "./helpers/otel.ts";

describe("gRPC telemetry", () => {
  let backends: GrpcBackend[];
  before(async () => {
    registerContextAndPropagation();
    backends = await startGrpcBackends(2, "orders");
  });
  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
  });

  it("a retried call: one INTERNAL call span, a CLIENT span per attempt with the RPC conventions, trace context in the metadata, a duration point per attempt", async () => {
    const otel = createOtel();
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint()) });
    const mesh = createMesh({ registry, loadBalancer: { policy: "round_robin" }, telemetry: { tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider } });
    const grpc = grpcMesh(mesh);
    const client = grpc.client(proto.Orders, "orders");
    try {
      // Round robin alternates: of two calls in a row, one starts on the failing instance and is retried.
      const failing = backends[0]!;
      failing.behaviour = { fail: status.UNAVAILABLE };
      let answer = await unary(client, "get", { id: "y" });
      if (otel.spans().filter((s) => s.kind === SpanKind.CLIENT).length === 1) {
        otel.exporter.reset();
        answer = await unary(client, "get", { id: "z" });
      }
      const spans = otel.spans();
      const call = spans.find((s) => s.kind === SpanKind.INTERNAL);
      const attempts = spans.filter((s) => s.kind === SpanKind.CLIENT);
      assert.ok(call !== undefined);
      assert.equal(call.name, "orders.Orders/Get");
      assert.deepEqual(
        { system: call.attributes["rpc.system"], service: call.attributes["rpc.service"], method: call.attributes["rpc.method"], code: call.attributes["rpc.grpc.status_code"], server: call.attributes["server.address"] },
        { system: "grpc", service: "orders.Orders", method: "Get", code: 0, server: "orders" },
      );
      assert.equal(attempts.length, 2);
      const [first, second] = attempts as [(typeof attempts)[0], (typeof attempts)[0]];
      assert.equal(first.name, "orders.Orders/Get");
      assert.equal(first.attributes["rpc.grpc.status_code"], status.UNAVAILABLE);
      assert.equal(first.attributes["error.type"], "UNAVAILABLE");
      assert.equal(first.attributes["proxyless.endpoint"], failing.name);
      assert.equal(second.attributes["rpc.grpc.status_code"], 0);
      assert.equal(second.attributes["http.request.resend_count"], 1);
      assert.equal(second.attributes["network.peer.address"], "127.0.0.1");
      for (const a of attempts) assert.equal(a.parentSpanContext?.spanId, call.spanContext().spanId);
      // The backend that answered got the second attempt's trace context.
      const [, traceId, spanId] = answer.traceparent.split("-");
      assert.equal(traceId, second.spanContext().traceId);
      assert.equal(spanId, second.spanContext().spanId);
      const durations = points(await otel.collect(), "rpc.client.call.duration");
      const count = durations.reduce((n, p) => n + (p.value as { count: number }).count, 0);
      assert.ok(count === 1 || count === 2, `one point per call (${count})`);
      assert.ok(durations.every((p) => p.attributes["rpc.grpc.status_code"] === 0 && p.attributes["rpc.method"] === "Get" && p.attributes["rpc.system"] === "grpc"));
      assert.equal(counterSum(await otel.collect(), "proxyless.client.retries", { "server.address": "orders", "proxyless.retry.reason": "UNAVAILABLE" }), 1);
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
      await otel.shutdown();
    }
  });

  it("records nothing and sends no trace context without an SDK", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint()) });
    const mesh = createMesh({ registry });
    const grpc = grpcMesh(mesh);
    const client = grpc.client(proto.Orders, "orders");
    try {
      for (const b of backends) b.behaviour = {};
      const answer = await unary(client, "get", { id: "1" });
      assert.equal(answer.traceparent, "");
    } finally {
      client.close();
      grpc.close();
      await mesh.close();
    }
  });
});

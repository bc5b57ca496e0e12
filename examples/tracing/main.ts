/**
 * Tracing example: two services calling each other through the mesh, with the OpenTelemetry SDK
 * (`@opentelemetry/sdk-node`) exporting spans and metrics to the console.
 *
 *   node --conditions=proxyless-source examples/tracing/main.ts
 *
 * A job calls `web` through a mesh; `web` calls `orders` (two instances, the first of which fails once,
 * so one call is retried). One trace covers it all: job → attempt `GET` (a CLIENT span) → web's SERVER
 * span → two attempts to orders (503, then 200, the second with `http.request.resend_count` 1) → orders'
 * SERVER spans. (`telemetry: { callSpans: true }` would add an INTERNAL span per call above its attempts.)
 * The tenant travels as W3C baggage. At the end, the SDK flushes the metrics (durations, retries,
 * endpoints by state) and the mesh prints its snapshot.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { ConsoleSpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { createMesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startOrders, startWeb } from "./services.ts";

// The SDK first, before the services: it registers the global tracer and meter providers, the
// AsyncLocalStorage context manager and the W3C propagators, which the mesh uses from then on.
const spans: ReadableSpan[] = [];
const sdk = new NodeSDK({
  serviceName: "tracing-example",
  spanProcessors: [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }), { onStart: () => undefined, onEnd: (s) => spans.push(s), forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() }],
  metricReaders: [new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 60_000 })],
});
sdk.start();

const registry = new MockRegistry();
const orders = [await startOrders("orders-1", true), await startOrders("orders-2", false)];
const web = await startWeb(registry);
registry.setEndpoints("orders", orders.map((o, i) => ({ id: `orders-${i + 1}`, address: "127.0.0.1", port: o.port })));
registry.setEndpoints("web", [{ id: "web-1", address: "127.0.0.1", port: web.port }]);

const job = createMesh({ registry, service: "job" });
const tracer = trace.getTracer("tracing-example");
const result = await tracer.startActiveSpan("nightly-job", async (root) => {
  const withTenant = propagation.setBaggage(context.active(), propagation.createBaggage({ tenant: { value: "acme" } }));
  const res = await context.with(withTenant, () => job.client("web").fetch("/checkout"));
  const body: unknown = await res.json();
  root.end();
  return body;
});

console.log("\nweb answered:", JSON.stringify(result));
console.log("\nthe trace, as a tree:");
const byParent = new Map<string | undefined, ReadableSpan[]>();
for (const s of spans) byParent.set(s.parentSpanContext?.spanId, [...(byParent.get(s.parentSpanContext?.spanId) ?? []), s]);
const print = (s: ReadableSpan, depth: number): void => {
  const a = s.attributes;
  const peer = a["network.peer.port"];
  const status = a["http.response.status_code"];
  const reason = a["proxyless.retry.reason"];
  const extra = [
    typeof peer === "number" ? `peer :${peer}` : "",
    typeof status === "number" ? `status ${status}` : "",
    typeof reason === "string" ? `retry after ${reason}` : "",
  ]
    .filter((x) => x !== "")
    .join(", ");
  console.log(`${"  ".repeat(depth + 1)}${s.name} [${["INTERNAL", "SERVER", "CLIENT"][s.kind] ?? s.kind}]${extra === "" ? "" : ` ${extra}`}`);
  for (const child of (byParent.get(s.spanContext().spanId) ?? []).sort((x, y) => x.startTime[0] - y.startTime[0] || x.startTime[1] - y.startTime[1])) print(child, depth + 1);
};
for (const root of byParent.get(undefined) ?? []) print(root, 0);
console.log(`one trace id: ${String(new Set(spans.map((s) => s.spanContext().traceId)).size === 1)}`);

console.log("\nweb's mesh, snapshot():");
console.log(JSON.stringify(web.mesh.snapshot().services.map((s) => ({ name: s.name, policy: s.policy, endpoints: s.endpoints.map((e) => ({ id: e.id, health: e.health, inRotation: e.inRotation, connections: e.connections })) }))));

// The SDK first: it collects the metrics a last time, while the meshes' gauges are still there.
console.log("\nmetrics, flushed at shutdown:");
await sdk.shutdown();
await job.close();
await web.stop();
await Promise.all(orders.map((o) => o.stop()));

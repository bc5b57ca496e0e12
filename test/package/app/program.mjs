// The package test's program, run in an app that installed the proxyless tarball (test/package/run.ts),
// on Node 22 and 24, with OpenTelemetry SDK 2.x or 3.x (./otel.mjs): the README's quickstart against a
// real server, and a traced call. Prints one line per check; exits 1 if any failed.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import process from "node:process";
import { SpanKind, trace } from "@opentelemetry/api";
import { createMesh, StaticRegistry } from "proxyless";
import { startBackend } from "./backend.mjs";
import { exporter, shutdown } from "./otel.mjs";

let failed = 0;
/**
 * Runs one check and prints its outcome.
 * @param {string} name
 * @param {() => unknown} fn
 */
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok     ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAILED ${name}\n${String(err instanceof Error ? (err.stack ?? err) : err).replace(/^/gm, "         ")}`);
  }
}

await check("proxyless resolves to the installed package's dist/", () => {
  assert.match(import.meta.resolve("proxyless"), /\/node_modules\/proxyless\/dist\/index\.js$/);
  assert.match(import.meta.resolve("proxyless/testing"), /\/node_modules\/proxyless\/dist\/testing\/index\.js$/);
});

// The README: CommonJS code can require() the package on Node 22.12 and later (require(esm)), not before.
await check("require() from CommonJS: the same module on Node 22.12 and later, ERR_REQUIRE_ESM before", () => {
  const require = createRequire(import.meta.url);
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) {
    assert.equal(/** @type {{ createMesh: unknown }} */ (require("proxyless")).createMesh, createMesh);
    assert.equal(typeof (/** @type {{ MockRegistry: unknown }} */ (require("proxyless/testing")).MockRegistry), "function");
  } else {
    assert.throws(() => require("proxyless"), { code: "ERR_REQUIRE_ESM" });
  }
});

const orders = await startBackend("orders");
const registry = new StaticRegistry({ orders: [{ address: "127.0.0.1", port: orders.port }] });
const mesh = createMesh({ registry, service: "checkout" });

await check("client.fetch", async () => {
  const res = await mesh.client("orders").fetch("/v1/orders/42");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { name: "orders", path: "/v1/orders/42" });
  assert.equal(orders.requests.at(-1)?.host, "orders");
});

await check("client.request", async () => {
  const { statusCode, body } = await mesh.client("orders").request({ path: "/v1/orders", method: "GET" });
  assert.equal(statusCode, 200);
  assert.deepEqual(await body.json(), { name: "orders", path: "/v1/orders" });
});

await check("global fetch with { dispatcher: mesh.dispatcher }", async () => {
  const res = await fetch("http://orders/v1/legacy", /** @type {RequestInit} */ ({ dispatcher: mesh.dispatcher }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { name: "orders", path: "/v1/legacy" });
  assert.equal(orders.requests.at(-1)?.path, "/v1/legacy");
});

await check("OpenTelemetry: the app's SDK records the mesh's spans, and the backend gets their traceparent", async () => {
  exporter.reset();
  const sent = orders.requests.length;
  await trace.getTracer("package-test").startActiveSpan("job", async (job) => {
    const res = await mesh.client("orders").fetch("/v1/traced");
    await res.text();
    job.end();
  });
  const spans = exporter.getFinishedSpans();
  const job = spans.find((s) => s.name === "job");
  const mine = spans.filter((s) => s.instrumentationScope.name === "proxyless");
  assert.ok(job, "the app's own span is recorded");
  assert.equal(mine.length, 1, `the mesh recorded one attempt span and, by default, no call span (got ${JSON.stringify(spans.map((s) => s.name))})`);
  const attempt = mine[0];
  assert.equal(attempt.kind, SpanKind.CLIENT, "the attempt span is a CLIENT span");
  assert.equal(attempt.name, "GET");
  assert.equal(attempt.parentSpanContext?.spanId, job.spanContext().spanId, "the attempt span is a child of the app's active span");
  assert.equal(orders.requests.length, sent + 1);
  const { traceId, spanId } = attempt.spanContext();
  assert.equal(orders.requests.at(-1)?.traceparent, `00-${traceId}-${spanId}-01`, "the backend got the attempt's traceparent");
});

await mesh.close();
orders.close();
await shutdown();
console.log(failed === 0 ? "program: every check passed" : `program: ${failed} check(s) failed`);
process.exitCode = failed === 0 ? 0 : 1;

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs an example the way its README line does, and returns what it printed. */
async function example(path: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["--conditions=proxyless-source", path, ...args], { cwd: root, timeout: 15_000 });
  return stdout;
}

describe("examples run and say what the docs say", () => {
  it("npm run demo: three instances, then traffic carries on over two", async () => {
    const out = await example("examples/demo/main.ts");
    assert.match(out, /300 requests over three instances:[\s\S]*orders-1 +100[\s\S]*orders-2 +100[\s\S]*orders-3 +100/);
    assert.match(out, /orders-2 deregistered and stopped/);
    assert.match(out, /traffic carries on over the other two:\n.*\n +orders-1 +100 [^\n]*\n +orders-3 +100/);
  });

  it("npm run demo -- --consul URL: the same through a Consul agent (here FakeConsul)", async () => {
    const fake = await FakeConsul.start();
    try {
      const out = await example("examples/demo/main.ts", "--consul", fake.url);
      assert.match(out, new RegExp(`registry: ${fake.url.replaceAll(".", "\\.")}`));
      assert.match(out, /traffic carries on over the other two:\n.*\n +orders-1 +100 [^\n]*\n +orders-3 +100/);
      const res = await request(`${fake.url}/v1/health/service/orders`);
      assert.deepEqual(await res.body.json(), [], "mesh.close() deregistered the rest");
    } finally {
      await fake.close();
    }
  });

  it("custom balancer: prefer_tag keeps traffic in zone-a until zone-a is down", async () => {
    const out = await example("examples/custom-balancer/main.ts");
    assert.match(out, /zone-a healthy: +\{ a\d: 10, a\d: 10 \}/);
    assert.match(out, /zone-a down: +\{ b1: 20 \}/);
  });

  it("tracing: one trace across two services, with a retried attempt, baggage, and the SDK's console output", async () => {
    const out = await example("examples/tracing/main.ts");
    assert.match(out, /"tenant":"acme"/, "baggage reached orders");
    assert.match(
      out,
      /nightly-job \[INTERNAL\]\n +GET \[CLIENT\] peer :\d+, status 200\n +GET web \[SERVER\] status 200\n +GET \[CLIENT\] peer :\d+, status 503\n +GET orders \[SERVER\] status 503\n +GET \[CLIENT\] peer :\d+, status 200, retry after 503\n +GET orders \[SERVER\] status 200\n/,
    );
    assert.match(out, /one trace id: true/);
    assert.match(out, /traceId: '[0-9a-f]{32}'/, "the console exporter printed spans");
    assert.match(out, /name: 'http\.client\.request\.duration'/, "and the metrics at shutdown");
    assert.match(out, /name: 'proxyless\.endpoints'/, "gauges included");
  });

  it("grpc: a generated grpc-js client through the mesh: canary by method, one UNAVAILABLE retried", async () => {
    const out = await example("examples/grpc/main.ts");
    assert.match(out, /PlaceOrder pen-1 -> orders-3 \(v2\)\nPlaceOrder pen-2 -> orders-3 \(v2\)/);
    assert.equal((out.match(/GetOrder o-\d +-> orders-[12] \(v1\)/g) ?? []).length, 4, "GetOrder stays on v1");
    assert.match(out, /orders-1: \d calls, 1 answered UNAVAILABLE/);
    const calls = [...out.matchAll(/orders-\d: (\d) calls/g)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(calls, 7, "six answers, and the one call that was retried");
    assert.match(out, /target: proxyless:\/\/mesh-\d+\/orders/);
  });
});

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, type RegistryErrorEvent } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { nextRegistryError, until } from "./helpers/events.ts";

describe("ConsulRegistry's cacheFile", () => {
  let dir: string;
  let backends: Backend[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "proxyless-cache-"));
    backends = await startBackends(1);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await Promise.all(backends.map((b) => b.close()));
  });

  it("lets a process restarted while Consul is down serve the last endpoints it saw", async () => {
    const cacheFile = join(dir, "mesh-cache.json");
    const fake = await FakeConsul.start();
    const put = await request(`${fake.url}/v1/agent/service/register`, {
      method: "PUT",
      body: JSON.stringify({ Name: "orders", ID: "orders-0", Address: "127.0.0.1", Port: backends[0]!.port }),
    });
    await put.body.dump();

    const first = createMesh({ registry: new ConsulRegistry({ url: fake.url, cacheFile }) });
    const res = await first.client("orders").request({ path: "/" });
    await res.body.dump();
    await until(() => existsSync(cacheFile) && readFileSync(cacheFile, "utf8").includes("orders-0"));
    await first.close();
    const url = fake.url;
    await fake.close(); // Consul is down from here on

    const restarted = createMesh({ registry: new ConsulRegistry({ url, cacheFile, initialBackoffMs: 10 }), discoveryTimeout: 200 });
    const errors: RegistryErrorEvent[] = [];
    restarted.on("registry_error", (e) => errors.push(e));
    const again = await restarted.client("orders").request({ path: "/" });
    assert.equal(again.headers["x-instance"], backends[0]!.name, "served from the cache");
    await again.body.dump();
    await until(() => errors.length > 0);
    assert.match(errors[0]!.error.message, new RegExp(`Consul at ${url.replaceAll(".", "\\.")} failed for ('orders'|the service-[a-z]+ entries)`));
    await restarted.close();
  });

  it("never serves the cache once Consul has answered, even that the service has no instance now", async () => {
    const cacheFile = join(dir, "scaled-to-zero.json");
    writeFileSync(cacheFile, JSON.stringify({ version: 1, services: { orders: { savedAt: "2020-01-01T00:00:00Z", endpoints: [{ id: "decommissioned", address: "127.0.0.1", port: backends[0]!.port }] } } }));
    const fake = await FakeConsul.start();
    try {
      const seen = backends[0]!.seen.length;
      const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, cacheFile, initialBackoffMs: 10 }) });
      // Consul answers: no instance of orders. It was seen before (the cache says so): known and empty.
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS"));
      const failed = nextRegistryError(mesh);
      fake.dropConnections();
      await failed;
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS"), "the decommissioned instance is not served");
      assert.equal(backends[0]!.seen.length, seen);
      await mesh.close();
    } finally {
      await fake.close();
    }
  });

  it("does not serve the cache while Consul answers, and keeps other registries' services in a shared file", async () => {
    const cacheFile = join(dir, "shared.json");
    writeFileSync(
      cacheFile,
      JSON.stringify({ version: 1, services: { orders: { savedAt: "2020-01-01T00:00:00Z", endpoints: [{ id: "old", address: "127.0.0.1", port: 9 }] }, users: { savedAt: "2020-01-01T00:00:00Z", endpoints: [{ id: "u", address: "127.0.0.1", port: 9 }] } } }),
    );
    const fake = await FakeConsul.start();
    try {
      const put = await request(`${fake.url}/v1/agent/service/register`, {
        method: "PUT",
        body: JSON.stringify({ Name: "orders", ID: "orders-0", Address: "127.0.0.1", Port: backends[0]!.port }),
      });
      await put.body.dump();
      const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, cacheFile }) });
      const res = await mesh.client("orders").request({ path: "/" });
      assert.equal(res.headers["x-instance"], backends[0]!.name, "Consul's answer, not the 2020 cache");
      await res.body.dump();
      await until(() => readFileSync(cacheFile, "utf8").includes("orders-0"));
      assert.ok(readFileSync(cacheFile, "utf8").includes('"users"'), "the other service stays in the file");
      await mesh.close();
    } finally {
      await fake.close();
    }
  });

  it("reports a corrupt cache file and carries on without it", async () => {
    const cacheFile = join(dir, "corrupt.json");
    writeFileSync(cacheFile, "{ not json");
    const registry = new ConsulRegistry({ url: "http://127.0.0.1:9", cacheFile, initialBackoffMs: 10 });
    const mesh = createMesh({ registry, discoveryTimeout: 100 });
    const reported = nextRegistryError(mesh);
    const pending = mesh.client("orders").request({ path: "/" });
    assert.match((await reported).error.message, /ignoring the cache file .*corrupt\.json/);
    await assert.rejects(pending, (err: unknown) => isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"));
    await mesh.close();
  });
});

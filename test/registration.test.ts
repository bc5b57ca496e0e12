import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, afterEach, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, type Mesh, meshErrorOf } from "proxyless";
import { FakeClock, FakeConsul, MockRegistry } from "proxyless/testing";
import { until } from "./helpers/events.ts";

interface Entry {
  readonly Service: { readonly ID: string; readonly Weights: unknown; readonly Tags: string[] };
  readonly Checks: { readonly CheckID: string; readonly Status: string }[];
}

async function health(fake: FakeConsul, service: string): Promise<Entry[]> {
  const res = await request(`${fake.url}/v1/health/service/${service}`);
  return (await res.body.json()) as Entry[];
}

const statusOf = (entries: Entry[], id: string): string | undefined =>
  entries.find((e) => e.Service.ID === id)?.Checks.find((c) => c.CheckID === `service:${id}`)?.Status;

describe("mesh.register with Consul", () => {
  let fake: FakeConsul;
  const meshes: Mesh[] = [];
  before(async () => {
    fake = await FakeConsul.start();
  });
  afterEach(async () => {
    await Promise.all(meshes.splice(0).map((m) => m.close()));
    fake.restart();
  });
  after(() => fake.close());

  it("registers with weights and a TTL check, heartbeats, and deregisters on close", async () => {
    const clock = new FakeClock();
    const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, clock }) });
    const registration = await mesh.register({
      name: "checkout",
      id: "checkout-1",
      address: "127.0.0.1",
      port: 9000,
      tags: ["v1"],
      weights: { passing: 10, warning: 1 },
      check: { ttl: 3000 },
    });
    assert.equal(registration.id, "checkout-1");
    const entries = await health(fake, "checkout");
    assert.deepEqual(entries[0]?.Service.Weights, { Passing: 10, Warning: 1 }, "Weights reach Consul (the consul client would drop them)");
    assert.equal(statusOf(entries, "checkout-1"), "passing", "the first heartbeat went right after registration");

    const beats = fake.requestCount("/v1/agent/check/pass/service:checkout-1");
    clock.advance(1000); // a third of the TTL
    await until(() => fake.requestCount("/v1/agent/check/pass/service:checkout-1") === beats + 1);

    await mesh.close();
    assert.deepEqual(await health(fake, "checkout"), []);
  });

  it("registers again when the agent has forgotten the instance", async () => {
    const clock = new FakeClock();
    const registry = new ConsulRegistry({ url: fake.url, clock });
    const reported: Error[] = [];
    registry.onRegistrationError((e) => reported.push(e));
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    await mesh.register({ name: "checkout", id: "checkout-1", port: 9000, check: { ttl: 3000 } });
    fake.restart(); // an agent restarted with no data
    assert.deepEqual(await health(fake, "checkout"), []);
    clock.advance(1000);
    await until(() => reported.length > 0);
    assert.match(reported[0]?.message ?? "", /had forgotten instance 'checkout-1'; registered it again/);
    await until(() => fake.requestCount("/v1/agent/check/pass/service:checkout-1") >= 2);
    assert.equal(statusOf(await health(fake, "checkout"), "checkout-1"), "passing");
  });

  it("deregistering an instance the agent has forgotten (it restarted) succeeds: Consul's 404 means it is gone already", async () => {
    const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, clock: new FakeClock() }) });
    const registration = await mesh.register({ name: "checkout", id: "checkout-1", port: 9000 });
    fake.restart(); // an agent restarted with no data: its deregister answers 404 Unknown service ID
    await registration.deregister();
    await mesh.close();
    assert.deepEqual(await health(fake, "checkout"), []);
  });

  it("without a TTL, checks the agent every 30 s and restores a forgotten instance", async () => {
    const clock = new FakeClock();
    const registry = new ConsulRegistry({ url: fake.url, clock });
    const restored: Error[] = [];
    registry.onRegistrationError((e) => restored.push(e));
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    await mesh.register({ name: "checkout", id: "checkout-1", port: 9000, check: { http: "http://127.0.0.1:9000/health", interval: 5000 } });
    assert.equal(statusOf(await health(fake, "checkout"), "checkout-1"), "critical", "an HTTP check starts critical, as in Consul");
    fake.restart();
    clock.advance(30_000);
    await until(() => restored.length > 0);
    assert.equal((await health(fake, "checkout")).length, 1);
  });

  it("refuses a bad registration with ERR_INVALID_CONFIG, quoting the agent when it refuses", async () => {
    const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url }) });
    meshes.push(mesh);
    await assert.rejects(mesh.register({ name: "checkout", port: 0 }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "registration.port");
    await assert.rejects(mesh.register({ name: "checkout", port: 1, check: { ttl: 3000, http: "http://x" } }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG"));
    await assert.rejects(mesh.register({ name: "checkout", port: 1, address: "0.0.0.0" }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /Invalid service address/.test(err.message));
  });

  it("deregisters on SIGTERM, then exits as the signal would", async () => {
    const child = spawn(process.execPath, ["--conditions=proxyless-source", fileURLToPath(new URL("fixtures/register-and-wait.ts", import.meta.url)), fake.url], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    assert.equal(line.toString().trim(), "ready");
    assert.equal((await health(fake, "checkout")).length, 1);
    child.kill("SIGTERM");
    const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
    assert.deepEqual([code, signal], [null, "SIGTERM"]);
    assert.deepEqual(await health(fake, "checkout"), []);
  });
});

describe("registrations never outlive what owns them", () => {
  it("close() deregisters a registration still in flight, which then fails with ERR_MESH_CLOSED", async () => {
    const registry = new MockRegistry();
    const mesh = createMesh({ registry });
    const pending = mesh.register({ name: "checkout", port: 9000 });
    await mesh.close();
    await assert.rejects(pending, (err: unknown) => isMeshError(err, "ERR_MESH_CLOSED"));
    assert.equal(registry.endpoints("checkout")?.size, 0);
  });

  it("destroy() deregisters too", async () => {
    const registry = new MockRegistry();
    const mesh = createMesh({ registry });
    await mesh.register({ name: "checkout", port: 9000 });
    await mesh.destroy();
    assert.equal(registry.endpoints("checkout")?.size, 0);
  });

  it("ConsulRegistry.close() deregisters what it registered, and a failed deregister can be retried", async () => {
    const fake = await FakeConsul.start();
    try {
      const registry = new ConsulRegistry({ url: fake.url });
      const kept = await registry.register({ name: "checkout", id: "checkout-1", port: 9000 });
      await registry.register({ name: "checkout", id: "checkout-2", port: 9001 });
      fake.failNext(1, 500);
      await assert.rejects(kept.deregister(), (err: unknown) => isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"));
      await kept.deregister();
      assert.deepEqual((await health(fake, "checkout")).map((e) => e.Service.ID), ["checkout-2"]);
      await registry.close();
      assert.deepEqual(await health(fake, "checkout"), []);
    } finally {
      await fake.close();
    }
  });
});

describe("mesh.register with MockRegistry", () => {
  it("adds the instance until deregistered or closed", async () => {
    const registry = new MockRegistry();
    const mesh = createMesh({ registry });
    const r = await mesh.register({ name: "checkout", port: 9000 });
    assert.equal(registry.endpoints("checkout")?.get(r.id)?.port, 9000);
    await mesh.close();
    assert.equal(registry.endpoints("checkout")?.size, 0);
  });

  it("is refused by a registry that cannot register", async () => {
    const { StaticRegistry } = await import("proxyless");
    const mesh = createMesh({ registry: new StaticRegistry({}) });
    await assert.rejects(mesh.register({ name: "checkout", port: 1 }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG"));
    await mesh.close();
    await assert.rejects(mesh.register({ name: "checkout", port: 1 }), (err: unknown) => isMeshError(err, "ERR_MESH_CLOSED"));
  });
});

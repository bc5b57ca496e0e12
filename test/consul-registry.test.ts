import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulDecodeError, ConsulRegistry, createMesh, decodeHealth, isMeshError, type EndpointSet, type Mesh, meshErrorOf } from "proxyless";
import { FakeClock, FakeConsul } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { nextEndpoints, nextRegistryError, until } from "./helpers/events.ts";
import { consulSample } from "./helpers/consul-samples.ts";


async function register(fake: FakeConsul, id: string, port: number, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await request(`${fake.url}/v1/agent/service/register`, {
    method: "PUT",
    body: JSON.stringify({ Name: "orders", ID: id, Address: "127.0.0.1", Port: port, Check: { TTL: "1h", Status: "passing" }, ...extra }),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
}

async function deregister(fake: FakeConsul, id: string): Promise<void> {
  const res = await request(`${fake.url}/v1/agent/service/deregister/${id}`, { method: "PUT" });
  await res.body.dump();
}

async function instances(mesh: Mesh, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await mesh.client("orders").request({ path: "/" });
    seen.add(String(res.headers["x-instance"]));
    await res.body.dump();
  }
  return seen;
}

describe("decodeHealth", () => {
  it("decodes the documented sample", () => {
    assert.deepEqual(decodeHealth(consulSample("health-service.json")), {
      endpoints: [
        {
          id: "foobar/redis",
          address: "10.1.10.12",
          port: 8000,
          health: "passing",
          weights: { passing: 10, warning: 1 },
          tags: ["primary"],
          meta: { redis_version: "4.0" },
          tls: false,
        },
      ],
      skipped: [],
    });
  });

  it("marks Connect-native instances as mTLS endpoints, and the others as plaintext", () => {
    const entry = (id: string, connect: unknown) => ({ Node: { Node: "n1", Address: "10.0.0.9" }, Service: { ID: id, Service: "s", Port: 80, Connect: connect }, Checks: [] });
    const { endpoints } = decodeHealth([entry("native", { Native: true }), entry("plain", {}), entry("none", undefined)]);
    assert.deepEqual(endpoints.map((e) => [e.id, e.tls]), [["n1/native", true], ["n1/plain", false], ["n1/none", false]]);
  });

  it("marks critical instances (the mesh sends them nothing), keeps warning ones, falls back to the node address", () => {
    const entry = (id: string, status: string, address: string) => ({
      Node: { Node: "n1", Address: "10.0.0.9" },
      Service: { ID: id, Service: "s", Address: address, Port: 80, Weights: { Passing: 5, Warning: 2 } },
      Checks: [{ Status: "passing" }, { Status: status }],
    });
    const { endpoints } = decodeHealth([entry("a", "passing", ""), entry("b", "warning", "10.0.0.2"), entry("c", "critical", "10.0.0.3")]);
    assert.deepEqual(endpoints.map((e) => [e.id, e.address, e.health]), [["n1/a", "10.0.0.9", "passing"], ["n1/b", "10.0.0.2", "warning"], ["n1/c", "10.0.0.3", "critical"]]);
  });

  it("refuses what is not an array of entries", () => {
    assert.throws(() => decodeHealth({ not: "an array" }), ConsulDecodeError);
    assert.throws(() => decodeHealth([{ Node: {} }]), ConsulDecodeError);
  });
});

describe("ConsulRegistry against FakeConsul", () => {
  let fake: FakeConsul;
  let backends: Backend[];
  const meshes: Mesh[] = [];
  before(async () => {
    [fake, backends] = await Promise.all([FakeConsul.start(), startBackends(3)]);
  });
  afterEach(async () => {
    // Whatever a test left, the next one starts from an empty catalog and no running watch.
    await Promise.all(meshes.splice(0).map((m) => m.close()));
    fake.restart();
  });
  after(async () => {
    await fake.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("registrations, deregistrations and health flips reach the next pick", async () => {
    await register(fake, "orders-0", backends[0]!.port, { Weights: { Passing: 4, Warning: 2 } });
    await register(fake, "orders-1", backends[1]!.port);
    const registry = new ConsulRegistry({ url: fake.url });
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    assert.deepEqual([...(await instances(mesh, 4))].sort(), ["orders-0", "orders-1"]);

    let changed = nextEndpoints(mesh, "orders");
    await deregister(fake, "orders-1");
    await changed;
    assert.deepEqual([...(await instances(mesh, 3))], ["orders-0"]);

    changed = nextEndpoints(mesh, "orders");
    await register(fake, "orders-2", backends[2]!.port);
    await changed;
    changed = nextEndpoints(mesh, "orders");
    fake.setCheck("service:orders-0", "warning");
    await changed;
    assert.equal(mesh.inspect("orders")?.targets.find((t) => t.id === "fake-node/orders-0")?.weight, 2, "Weights.Warning while warning");

    changed = nextEndpoints(mesh, "orders");
    fake.setCheck("service:orders-0", "critical");
    await changed;
    assert.deepEqual([...(await instances(mesh, 3))], ["orders-2"]);
    assert.ok((registry.staleness("orders") ?? Infinity) < 60_000);

    await mesh.close();
    assert.equal(registry.watchCount, 0);
    await until(() => fake.blockedQueries === 0);
  });

  it("resets the index when it goes backwards, and never blocks on an index below 1", async () => {
    await register(fake, "orders-0", backends[0]!.port);
    const registry = new ConsulRegistry({ url: fake.url, queriesPerSecond: 1000 });
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    await instances(mesh, 1);
    const path = "/v1/health/service/orders";
    await until(() => fake.blockedQueries > 0);

    const seen = fake.queries(path).length;
    fake.rewindIndex(1);
    await until(() => fake.queries(path).slice(seen).some((q) => q.get("index") === "0"));

    fake.zeroIndexNext();
    const before = fake.queries(path).length;
    fake.churn("orders");
    await until(() => fake.queries(path).length > before + 1);
    const after = fake.queries(path).slice(before).map((q) => Number(q.get("index")));
    assert.ok(after.every((i) => i >= 1), `queries after an index of 0 block on ${after.join(", ")}`);

    const changed = nextEndpoints(mesh, "orders");
    await register(fake, "orders-1", backends[1]!.port);
    await changed;
    await mesh.close();
  });

  it("rate-limits the loop when the index churns: burst 2, then one query per second", async () => {
    await register(fake, "orders-0", backends[0]!.port);
    const clock = new FakeClock();
    const registry = new ConsulRegistry({ url: fake.url, clock });
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    await instances(mesh, 1);
    await until(() => fake.blockedQueries > 0);
    const path = "/v1/health/service/orders";
    const start = fake.queries(path).length;
    fake.churn("orders");
    await until(() => clock.pendingTimers > 0);
    assert.equal(fake.queries(path).length, start, "the third query waits for a token");
    clock.advance(1000);
    await until(() => fake.queries(path).length === start + 1);
    await mesh.close();
  });

  it("keeps the last good endpoints through 5xx, garbage and 403, reporting each", async () => {
    await register(fake, "orders-0", backends[0]!.port);
    const registry = new ConsulRegistry({ url: fake.url, initialBackoffMs: 5, maxBackoffMs: 20, queriesPerSecond: 1000 });
    const mesh = createMesh({ registry });
    meshes.push(mesh);
    await instances(mesh, 1);
    await until(() => fake.blockedQueries > 0);

    for (const [breakIt, expected] of [
      [() => fake.failNext(1, 500), /HTTP 500/],
      [() => fake.garbageNext(1), /Consul at http:\/\/127\.0\.0\.1:\d+ failed for 'orders'/],
      [() => fake.failNext(1, 403, "Permission denied"), /permission denied .*check the ACL token/],
    ] as const) {
      await until(() => fake.blockedQueries > 0);
      const error = nextRegistryError(mesh);
      breakIt();
      fake.churn("orders"); // the blocked query returns; the next one meets the failure
      const { error: reported } = await error;
      assert.match(reported.message, expected);
      assert.deepEqual([...(await instances(mesh, 2))], ["orders-0"], "the last good endpoints still serve");
      // Consul answers again with the same endpoints (no update reaches the mesh): the snapshot and the
      // staleness gauge must still see that it recovered.
      await until(() => !mesh.snapshot().services[0]!.registry.failing);
      assert.equal(mesh.snapshot().services[0]!.registry.stalenessMs, 0);
    }
    const failed = nextRegistryError(mesh);
    await until(() => fake.blockedQueries > 0);
    fake.failNext(1000, 500);
    fake.churn("orders");
    await failed;
    assert.equal(mesh.snapshot().services[0]!.registry.failing, true, "failing from the first failed query on");
    fake.failNext(0);
    await until(() => !mesh.snapshot().services[0]!.registry.failing);
    await mesh.close();
  });
});

describe("ConsulRegistry with ACLs on", () => {
  it("sends its token, and without the right one fails the first request with a message that names the ACL token", async () => {
    const fake = await FakeConsul.start({ aclTokens: { admin: { serviceWrite: [""] }, ordersOnly: { serviceRead: ["orders"] } } });
    try {
      const put = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", headers: { "x-consul-token": "admin" }, body: JSON.stringify({ Name: "orders", Port: 9 }) });
      assert.equal(put.statusCode, 200);
      await put.body.dump();
      const good = new ConsulRegistry({ url: fake.url, token: "ordersOnly" });
      const endpoints = await new Promise<EndpointSet>((resolve) => {
        const watch = good.watch("orders", (u) => {
          if (u.type !== "endpoints") return;
          watch.close();
          resolve(u.endpoints);
        });
      });
      assert.equal(endpoints.size, 1);
      await good.close();

      const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, token: "wrong", initialBackoffMs: 10 }), discoveryTimeout: 300 });
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => {
        assert.ok(isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"), String(err));
        assert.match(err.message, /permission denied \(HTTP 403: ACL not found\); check the ACL token/);
        return true;
      });
      await mesh.close();
    } finally {
      await fake.close();
    }
  });
});

describe("ConsulRegistry without Consul", () => {
  it("fails the first request with ERR_REGISTRY_UNAVAILABLE naming the URL, after the discovery timeout", async () => {
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve)); // nothing listens there now
    const registry = new ConsulRegistry({ url: `http://127.0.0.1:${port}`, initialBackoffMs: 10 });
    const mesh = createMesh({ registry, discoveryTimeout: 300 });
    await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => {
      assert.ok(isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"), String(err));
      assert.match(err.message, new RegExp(`Consul at http://127\\.0\\.0\\.1:${port} failed for ('orders'|the service-[a-z]+ entries)`));
      return true;
    });
    await mesh.close();
    assert.equal(registry.watchCount, 0);
  });

  it("rejects a bad URL and options with ERR_INVALID_CONFIG", () => {
    assert.throws(() => new ConsulRegistry({ url: "not a url" }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "consul.url");
    assert.throws(() => new ConsulRegistry({ burst: 0 }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "consul.burst");
  });
});

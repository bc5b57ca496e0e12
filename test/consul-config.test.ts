import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, MeshError, type ConfigAppliedEvent, type ConfigRejectedEvent, type Mesh, type RegistryErrorEvent } from "proxyless";
import { FakeClock, FakeConsul } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

describe("config entries in Consul configure the services in use", () => {
  let fake: FakeConsul;
  let backends: Backend[];
  let mesh: Mesh;
  before(async () => {
    [fake, backends] = await Promise.all([FakeConsul.start(), startBackends(4)]);
    for (const b of backends) {
      const res = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", ID: b.name, Address: "127.0.0.1", Port: b.port }) });
      await res.body.dump();
    }
    await put({ Kind: "service-defaults", Name: "orders", Protocol: "http" });
    // Written before the mesh starts: the first request must already follow it.
    await put({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "least_request" }, Subsets: { v1: { Filter: "Service.Meta.version == v1" } } });
    mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, queriesPerSecond: 100 }) });
  });
  after(async () => {
    await mesh.close();
    await fake.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  async function put(entry: unknown): Promise<void> {
    const res = await request(`${fake.url}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
    assert.equal(await res.body.text(), "true");
  }
  async function remove(kind: string, name: string): Promise<void> {
    const res = await request(`${fake.url}/v1/config/${kind}/${name}`, { method: "DELETE" });
    await res.body.dump();
  }
  const applied = (policy: string) =>
    new Promise<ConfigAppliedEvent>((resolve) => {
      const listener = (e: ConfigAppliedEvent): void => {
        if (e.policy !== policy) return;
        mesh.off("config_applied", listener);
        resolve(e);
      };
      mesh.on("config_applied", listener);
    });

  it("holds the first endpoints back until the entries are known, so the first request follows them", async () => {
    const res = await mesh.client("orders").request({ path: "/" });
    await res.body.dump();
    assert.equal(mesh.inspect("orders")?.policy, "least_request");
    assert.deepEqual(mesh.inspect("orders")?.config, {
      defaults: { protocol: "http" },
      loadBalancer: { policy: "least_request" },
      resolver: { subsets: { v1: { filter: "Service.Meta.version == v1" } } },
    });
  });

  it("delivers router and splitter changes, and removes what is deleted", async () => {
    await put({ Kind: "service-splitter", Name: "orders", Splits: [{ Weight: 90, ServiceSubset: "v1" }, { Weight: 10 }] });
    await until(() => mesh.inspect("orders")?.config.splitter !== undefined, 5000);
    assert.deepEqual(mesh.inspect("orders")?.config.splitter, { splits: [{ weight: 90, subset: "v1" }, { weight: 10 }] });
    // A chain reaches one protocol only: admin must be http too, or Consul refuses the router.
    await put({ Kind: "service-defaults", Name: "admin", Protocol: "http" });
    await put({ Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { PathPrefix: "/admin", Methods: ["GET"] } }, Destination: { Service: "admin", RequestTimeout: "2s" } }] });
    await until(() => mesh.inspect("orders")?.config.router !== undefined, 5000);
    assert.deepEqual(mesh.inspect("orders")?.config.router?.routes[0], { match: { pathPrefix: "/admin", methods: ["GET"] }, destination: { service: "admin", requestTimeoutMs: 2000 } });
    await remove("service-splitter", "orders");
    await until(() => mesh.inspect("orders")?.config.splitter === undefined, 5000);
    assert.ok(mesh.inspect("orders")?.config.router, "the other entries stay");
  });

  it("reports an entry the mesh cannot use, naming entry and field, and keeps the last good one", async () => {
    const before = mesh.inspect("orders")?.config.router;
    // FakeConsul stores the regex without compiling it; the mesh cannot compile it.
    const reported = new Promise<RegistryErrorEvent>((resolve) => mesh.once("registry_error", resolve));
    await put({ Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { PathRegex: "/orders/(" } } }] });
    const { error } = await reported;
    assert.ok(error instanceof MeshError && error.code === "ERR_INVALID_CONFIG", String(error));
    assert.equal(error.details.entry, "service-router/orders");
    assert.equal(error.details.field, "Routes[0].Match.HTTP.PathRegex");
    assert.deepEqual(mesh.inspect("orders")?.config.router, before);
    // A good version of the entry takes over again.
    await put({ Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { PathRegex: "/orders/[0-9]+" } } }] });
    await until(() => mesh.inspect("orders")?.config.router?.routes[0]?.match?.pathRegex === "/orders/[0-9]+", 5000);
  });

  it("applies LoadBalancer, refuses what the mesh cannot use, and returns to the default when the resolver is deleted", async () => {
    const maglev = applied("maglev");
    await put({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "maglev", HashPolicies: [{ Field: "header", FieldValue: "x-user" }] } });
    await maglev;
    for (const user of ["ann", "bob"]) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await mesh.client("orders").request({ path: "/", headers: { "x-user": user } });
        seen.add(String(res.headers["x-instance"]));
        await res.body.dump();
      }
      assert.equal(seen.size, 1, `${user} stays on one instance`);
    }

    // Consul accepts a ring whose minimum exceeds its maximum; the mesh does not.
    const rejected = new Promise<ConfigRejectedEvent>((resolve) => mesh.once("config_rejected", resolve));
    await put({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "ring_hash", RingHashConfig: { MinimumRingSize: 4096, MaximumRingSize: 1024 } } });
    assert.match((await rejected).error.message, /minimumRingSize/);
    assert.equal(mesh.inspect("orders")?.policy, "maglev", "the last good config keeps serving");

    const back = applied("round_robin");
    await remove("service-resolver", "orders");
    await back;
  });

  it("serves a service without its config when a config query hangs, after a bounded wait, and says which", async () => {
    const other = await FakeConsul.start();
    try {
      const res = await request(`${other.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", Address: "127.0.0.1", Port: backends[0]!.port }) });
      await res.body.dump();
      other.hang(true, "/v1/config/service-splitter");
      const clock = new FakeClock(Date.now());
      const slow = createMesh({ registry: new ConsulRegistry({ url: other.url, clock }) });
      const reported = new Promise<RegistryErrorEvent>((resolve) => slow.once("registry_error", resolve));
      const pending = slow.client("orders").request({ path: "/" });
      await until(() => clock.pendingTimers > 0); // the endpoints are in, held for the config
      clock.advance(3000);
      const answer = await pending;
      await answer.body.dump();
      assert.equal(answer.statusCode, 200);
      assert.match((await reported).error.message, /config entries \(service-splitter\) are not known after 3000 ms/);
      await slow.destroy();
    } finally {
      await other.close();
    }
  });

  it("watches each kind with one list query shared by all services", async () => {
    await put({ Kind: "service-defaults", Name: "billing", Protocol: "http" });
    await mesh.client("billing").request({ path: "/" }).then(
      (res) => res.body.dump(),
      (err: unknown) => assert.ok(isMeshError(err), String(err)),
    );
    for (const kind of ["service-router", "service-splitter", "service-resolver", "service-defaults"]) {
      assert.equal(fake.queries(`/v1/config/${kind}/orders`).length + fake.queries(`/v1/config/${kind}/billing`).length, 0, `${kind}: no per-service queries`);
      assert.ok(fake.queries(`/v1/config/${kind}`).length > 0, `${kind} is watched`);
    }
  });
});

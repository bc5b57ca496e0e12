import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createMesh, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { consulSample } from "./helpers/consul-samples.ts";

type Entry = Record<string, unknown>;
const example = (file: string, i: number): Entry => (consulSample(file) as Entry[])[i]!;
/** The subsets the documented routers and splitters of `web` name (as the docs' pages assume). */
const WEB_RESOLVER = {
  Kind: "service-resolver",
  Name: "web",
  Subsets: { v1: { Filter: "Service.Meta.version == v1" }, v2: { Filter: "Service.Meta.version == v2" }, canary: { Filter: '"canary" in Service.Tags' } },
};

describe("Consul's documented config entries route as Consul documents them", () => {
  let backends: Backend[];
  let registry: MockRegistry;
  let mesh: Mesh;
  before(async () => {
    backends = await startBackends(4, "svc");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  beforeEach(() => {
    registry = new MockRegistry();
    const [v1, v2, other, extra] = backends as [Backend, Backend, Backend, Backend];
    registry.setEndpoints("web", [
      { ...v1.endpoint, id: "web-v1", meta: { version: "v1" } },
      { ...v2.endpoint, id: "web-v2", meta: { version: "v2" }, tags: ["canary"] },
    ]);
    for (const name of ["admin", "invoice-generator", "procurement", "web-rewrite"]) registry.setEndpoints(name, [{ ...other.endpoint, id: name }]);
    registry.setEndpoints("billing", [{ ...extra.endpoint, id: "billing" }]);
    registry.setEndpoints("orders", [{ ...extra.endpoint, id: "orders" }]);
    mesh = createMesh({ registry });
  });
  afterEach(() => mesh.close());

  const ids = async (service: string, request: { method?: string; path?: string; headers?: Record<string, string> } = {}) => (await mesh.explain(service, request)).candidates.map((c) => c.id);

  it("config-service-router.json: x-debug in a header or the query goes to the canary subset", async () => {
    registry.applyConsulEntries([WEB_RESOLVER, consulSample("config-service-router.json")]);
    assert.deepEqual(await ids("web", { headers: { "x-debug": "1" } }), ["web-v2"]);
    assert.deepEqual(await ids("web", { path: "/?x-debug=1" }), ["web-v2"]);
    assert.deepEqual(await ids("web", { path: "/?x-debug=2" }), ["web-v1", "web-v2"], "no match: the service itself");
  });

  it("the router examples: a path prefix to admin, a gRPC method to invoice-generator, retries and timeouts to procurement", async () => {
    registry.applyConsulEntries([example("config-service-router.examples.json", 0), example("config-service-router.examples.json", 2), example("config-service-router.examples.json", 3)]);
    assert.deepEqual(await ids("web", { path: "/admin/users" }), ["admin"]);
    assert.deepEqual(await ids("web", { path: "/users" }), ["web-v1", "web-v2"]);
    assert.deepEqual(await ids("billing", { method: "POST", path: "/mycompany.BillingService/GenerateInvoice" }), ["invoice-generator"]);
    assert.deepEqual(await ids("billing", { method: "POST", path: "/mycompany.BillingService/Refund" }), ["billing"]);
    const coffees = await mesh.explain("orders", { path: "/coffees/1" });
    assert.deepEqual(coffees.target, { service: "procurement", subset: undefined });
    assert.deepEqual(coffees.retry, { numRetries: 5, retryOnConnectFailure: true, retryOn: ["reset"] });
    assert.deepEqual(coffees.timeouts, { requestTimeoutMs: 15_000 });
    const orders = await mesh.explain("orders", { path: "/orders/1" });
    assert.deepEqual([orders.retry.numRetries, orders.timeouts.requestTimeoutMs], [3, 10_000]);
  });

  it("config-service-splitter.json with config-service-resolver.json: 90% to v1 and 10% to v2, exactly, on real requests", async () => {
    registry.applyConsulEntries([consulSample("config-service-resolver.json"), consulSample("config-service-splitter.json")]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const res = await mesh.client("web").request({ path: "/" });
      await res.body.dump();
      const instance = String(res.headers["x-instance"]);
      counts.set(instance, (counts.get(instance) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { [backends[0]!.name]: 90, [backends[1]!.name]: 10 });
  });

  it("the splitter examples: half to web-rewrite, and a response header naming the version", async () => {
    registry.applyConsulEntries([WEB_RESOLVER, example("config-service-splitter.examples.json", 1)]);
    const targets = [];
    for (let i = 0; i < 4; i++) {
      const res = await mesh.client("web").request({ path: "/" });
      await res.body.dump();
      targets.push(res.headers["x-instance"] === backends[2]!.name ? "web-rewrite" : "web");
    }
    assert.deepEqual(targets.sort(), ["web", "web", "web-rewrite", "web-rewrite"]);

    registry.applyConsulEntries(example("config-service-splitter.examples.json", 2));
    const versions = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const res = await mesh.client("web").fetch("/");
      await res.text();
      const v = res.headers.get("x-web-version") ?? "none";
      versions.set(v, (versions.get(v) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(versions), { v1: 18, v2: 2 });
  });

  it("config-service-resolver.json: requests that name no subset go to DefaultSubset v1", async () => {
    registry.applyConsulEntries(consulSample("config-service-resolver.json"));
    assert.deepEqual(await ids("web"), ["web-v1"]);
  });

  it("the resolver examples: a redirect and failovers to other datacenters or a peer, which this registry cannot reach, and maglev", async () => {
    registry.applyConsulEntries(example("config-service-resolver.examples.json", 1));
    const redirected = await mesh.explain("web-dc2");
    assert.equal(redirected.error?.code, "ERR_NO_ROUTE");
    assert.match(redirected.error?.message ?? "", /redirects to datacenter 'dc2'/);

    registry.applyConsulEntries({ ...example("config-service-resolver.examples.json", 2), Subsets: WEB_RESOLVER.Subsets, DefaultSubset: "v2" });
    registry.setHealth("web", "web-v2", "critical");
    const failover = await mesh.explain("web");
    assert.equal(failover.error?.code, "ERR_NO_ENDPOINTS");
    assert.deepEqual(failover.skipped.slice(1).map((s) => s.reason), ["datacenter 'dc2' is not reachable through this registry"]);

    registry.applyConsulEntries({ ...example("config-service-resolver.examples.json", 3), Subsets: WEB_RESOLVER.Subsets, DefaultSubset: "v2" });
    const targets = await mesh.explain("web");
    assert.deepEqual(targets.skipped.slice(1).map((s) => s.reason), ["datacenter 'dc3' is not reachable through this registry", "peer 'peer-01' is not reachable through this registry"]);

    registry.setHealth("web", "web-v2", "passing");
    registry.applyConsulEntries(example("config-service-resolver.examples.json", 6));
    const maglev = await mesh.explain("web", { headers: { "x-user-id": "ann" } });
    assert.equal(maglev.balancer, "maglev");
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await mesh.client("web").request({ path: "/", headers: { "x-user-id": "ann" } });
      await res.body.dump();
      seen.add(String(res.headers["x-instance"]));
    }
    assert.equal(seen.size, 1, "one user, one instance");
  });

  it("leaves the Enterprise namespace examples out: they configure another namespace's service", () => {
    registry.applyConsulEntries([example("config-service-resolver.examples.json", 4), example("config-service-resolver.examples.json", 5)]);
    assert.equal(registry.config("product-api"), undefined);
  });
});

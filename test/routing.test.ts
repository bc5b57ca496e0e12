import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { request as undiciRequest } from "undici";
import { createMesh, isMeshError, type ConfigRejectedEvent, type Mesh, type ServiceConfig } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";

/** web: two v1 instances and one v2 canary; admin: one instance. */
describe("routing on real servers", () => {
  let web: Backend[];
  let admin: Backend;
  let registry: MockRegistry;
  let mesh: Mesh;
  const version = (b: Backend): string => (b === web[2] ? "v2" : "v1");

  before(async () => {
    web = await startBackends(3, "web");
    [admin] = (await startBackends(1, "admin")) as [Backend];
  });
  after(async () => {
    await Promise.all([...web, admin].map((b) => b.close()));
  });
  beforeEach(() => {
    registry = new MockRegistry();
    registry.setEndpoints(
      "web",
      web.map((b) => ({ ...b.endpoint, meta: { version: version(b) }, tags: version(b) === "v2" ? ["canary"] : [] })),
    );
    registry.setEndpoints("admin", [admin.endpoint]);
    mesh = createMesh({ registry });
    for (const b of [...web, admin]) b.seen.length = 0;
  });
  afterEach(() => mesh.close());

  const subsets: ServiceConfig["resolver"] = {
    subsets: { v1: { filter: "Service.Meta.version == v1" }, v2: { filter: "Service.Meta.version == v2" }, canary: { filter: '"canary" in Service.Tags' } },
  };
  async function hit(path = "/", headers: Record<string, string> = {}): Promise<string> {
    const res = await mesh.client("web").request({ path, headers });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    return String(res.headers["x-instance"]);
  }
  const side = (instance: string): string => (instance === web[2]!.name ? "v2" : instance.startsWith("web") ? "v1" : instance);

  it("a 90/10 canary split over subsets by Service.Meta.version gives exact counts", async () => {
    registry.setConfig("web", { resolver: subsets, splitter: { splits: [{ weight: 90, subset: "v1" }, { weight: 10, subset: "v2" }] } });
    const counts = { v1: 0, v2: 0 };
    for (let round = 0; round < 10; round++) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => hit()));
      for (const instance of batch) counts[side(instance) as "v1" | "v2"]++;
    }
    assert.deepEqual(counts, { v1: 900, v2: 100 });
    assert.ok(web[0]!.seen.length > 0 && web[1]!.seen.length > 0, "v1's own balancer spreads over both v1 instances");
  });

  it("a header sends a request to the canary, others follow the split", async () => {
    registry.setConfig("web", {
      resolver: subsets,
      router: { routes: [{ match: { headers: [{ name: "X-Debug", exact: "1" }] }, destination: { subset: "canary" } }] },
      splitter: { splits: [{ weight: 100, subset: "v1" }] },
    });
    for (let i = 0; i < 20; i++) assert.equal(side(await hit("/", { "x-debug": "1" })), "v2");
    for (let i = 0; i < 20; i++) assert.equal(side(await hit("/", { "x-debug": "0" })), "v1");
  });

  it("a route can match the Host the request carries: the service's name when the caller set none (request, fetch, mesh.dispatcher)", async () => {
    registry.setConfig("web", { router: { routes: [{ match: { headers: [{ name: "host", exact: "web" }] }, destination: { service: "admin" } }] } });
    const res = await mesh.client("web").request({ path: "/a" });
    await res.body.dump();
    const fetched = await mesh.client("web").fetch("/b");
    await fetched.text();
    const { body } = await undiciRequest("http://web/c", { dispatcher: mesh.dispatcher });
    await body.dump();
    assert.deepEqual(
      admin.seen.map((r) => [r.url, r.headers.host]),
      [
        ["/a", "web"],
        ["/b", "web"],
        ["/c", "web"],
      ],
    );
    const other = await mesh.client("web").request({ path: "/d", headers: { host: "web.internal" } });
    await other.body.dump();
    assert.equal(other.headers["x-instance"] === admin.name, false, "a Host the caller set is what the route sees");
  });

  it("a path prefix goes to another service, with the prefix rewritten and headers changed both ways (request and fetch)", async () => {
    registry.setConfig("web", {
      router: {
        routes: [
          {
            match: { pathPrefix: "/admin", methods: ["GET", "POST"] },
            destination: {
              service: "admin",
              prefixRewrite: "/internal",
              requestHeaders: { set: { "x-routed": "yes" }, add: { "x-trail": "web" }, remove: ["x-secret"] },
              responseHeaders: { set: { "x-served-by": "admin" }, remove: ["x-instance-note"] },
            },
          },
        ],
      },
    });
    const res = await mesh.client("web").request({ path: "/admin/users?page=2", headers: { "x-secret": "s3cret", "x-trail": "caller" } });
    await res.body.dump();
    assert.equal(res.headers["x-instance"], admin.name);
    assert.equal(res.headers["x-served-by"], "admin");
    const seen = admin.seen.at(-1)!;
    assert.equal(seen.url, "/internal/users?page=2");
    assert.equal(seen.headers["x-routed"], "yes");
    assert.equal(seen.headers["x-trail"], "caller, web");
    assert.equal(seen.headers["x-secret"], undefined);
    assert.equal(seen.headers.host, "web", "the Host stays the service called, as in Envoy");

    const fetched = await mesh.client("web").fetch("/admin/health", { method: "POST", body: "ping" });
    assert.equal(fetched.headers.get("x-served-by"), "admin");
    await fetched.text();
    assert.equal(admin.seen.at(-1)!.url, "/internal/health");
    assert.equal(admin.seen.at(-1)!.body, "ping");
    // A method the route does not list takes the default route.
    const del = await mesh.client("web").request({ path: "/admin/x", method: "DELETE" });
    await del.body.dump();
    assert.ok(String(del.headers["x-instance"]).startsWith("web"));
  });

  it("fails over when a subset has no healthy instance, and says so when there is nowhere to go", async () => {
    registry.setConfig("web", { resolver: { ...subsets, defaultSubset: "v2", failover: { v2: { targets: [{ subset: "v1" }] } } } });
    assert.equal(side(await hit()), "v2");
    registry.setHealth("web", web[2]!.name, "critical");
    for (let i = 0; i < 5; i++) assert.equal(side(await hit()), "v1", "failover to v1");
    const why = await mesh.explain("web");
    assert.deepEqual(why.target, { service: "web", subset: "v2" });
    assert.deepEqual(why.endpointsFrom, { service: "web", subset: "v1" });
    assert.match(why.skipped[0]?.reason ?? "", /Subset 'v2' of service 'web' has no endpoint/);

    registry.setConfig("web", { resolver: { ...subsets, defaultSubset: "v2" } });
    await assert.rejects(mesh.client("web").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS") && /Subset 'v2'/.test(err.message));
  });

  it("follows a resolver that redirects to a subset of its own service, and a redirect to another service", async () => {
    registry.setConfig("web", { resolver: { ...subsets, redirect: { service: "web", subset: "v2" } } });
    for (let i = 0; i < 3; i++) assert.equal(side(await hit()), "v2");
    registry.setConfig("web", { resolver: { redirect: { service: "admin" } } });
    assert.equal(await hit(), admin.name);
    const why = await mesh.explain("web");
    assert.deepEqual(why.redirects, [{ service: "web", subset: undefined }]);
    assert.deepEqual(why.target, { service: "admin", subset: undefined });
    const rejected = new Promise<ConfigRejectedEvent>((resolve) => mesh.once("config_rejected", resolve));
    registry.setConfig("admin", { resolver: { redirect: { service: "web" } } });
    const { service, error } = await rejected;
    assert.equal(service, "admin", "a loop between two resolvers is refused, as Consul refuses it");
    assert.match(error.message, /detected circular resolver redirect: \[admin -> web -> admin\]/);
    assert.equal(await hit(), admin.name, "the last good configs keep serving");
    registry.setConfig("admin", {});
  });

  it("reports an unknown target service as unknown, even through a subset", async () => {
    registry.setConfig("web", { router: { routes: [{ destination: { service: "ghost" } }] } });
    registry.setConfig("ghost", { resolver: { subsets: { v1: {} }, defaultSubset: "v1" } });
    registry.removeService("ghost");
    await assert.rejects(mesh.client("web").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE"));
  });

  it("keeps nested sticky splitters independent, and reads a sticky cookie among several Cookie headers", async () => {
    registry.setEndpoints("a", [admin.endpoint]);
    registry.setEndpoints("b", [admin.endpoint]);
    registry.setConfig("web", { splitter: { splits: [{ weight: 50, service: "a" }, { weight: 50, service: "b" }], sticky: { header: "x-user" } } });
    registry.setConfig("a", { resolver: { subsets: { one: {}, two: {} } }, splitter: { splits: [{ weight: 50, subset: "one" }, { weight: 50, subset: "two" }], sticky: { header: "x-user" } } });
    const ends = new Map<string, number>();
    for (let u = 0; u < 400; u++) {
      const why = await mesh.explain("web", { headers: { "x-user": `u${u}` } });
      const key = `${why.target?.service}/${why.target?.subset ?? ""}`;
      ends.set(key, (ends.get(key) ?? 0) + 1);
    }
    assert.ok((ends.get("a/two") ?? 0) > 50, `a/two gets its share through web: ${JSON.stringify(Object.fromEntries(ends))}`);
    assert.ok((ends.get("a/one") ?? 0) > 50);

    registry.setConfig("web", { resolver: subsets, splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, subset: "v2" }], sticky: { cookie: "session" } } });
    const sides = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const headers = i % 2 === 0 ? { cookie: ["theme=dark", "session=abc"] } : ["cookie", "theme=dark", "cookie", "session=abc"];
      const res = await mesh.client("web").request({ path: "/", headers });
      await res.body.dump();
      sides.add(side(String(res.headers["x-instance"])));
    }
    assert.equal(sides.size, 1, "one session, one side");
  });

  it("refuses a subset no resolver defines: at apply time when the mesh knows the resolver, else with ERR_NO_ROUTE", async () => {
    registry.setConfig("web", { resolver: subsets, router: { routes: [{ destination: { service: "admin" } }] } });
    assert.equal(await hit(), admin.name);
    const rejected = new Promise<ConfigRejectedEvent>((resolve) => mesh.once("config_rejected", resolve));
    registry.setConfig("web", { splitter: { splits: [{ weight: 100, subset: "v9" }] } });
    const { error } = await rejected;
    assert.equal(error.details.field, "splitter.splits[0]");
    assert.match(error.message, /service "web" does not have a subset named "v9"/);
    assert.equal(await hit(), admin.name, "the last good config keeps serving");
    // A service the mesh does not watch yet is not judged when the config is applied: the request is.
    registry.setConfig("web", { splitter: { splits: [{ weight: 100, service: "unwatched", subset: "v9" }] } });
    await assert.rejects(mesh.client("web").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ROUTE") && /subset named 'v9'/.test(err.message));
  });

  it("keeps a user on one side with a sticky split on a header", async () => {
    registry.setConfig("web", { resolver: subsets, splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, subset: "v2" }], sticky: { header: "x-user" } } });
    const sides = new Map<string, Set<string>>();
    for (let u = 0; u < 40; u++) {
      for (let i = 0; i < 3; i++) {
        const user = `user-${u}`;
        const s = side(await hit("/", { "x-user": user }));
        sides.set(user, (sides.get(user) ?? new Set()).add(s));
      }
    }
    assert.ok([...sides.values()].every((s) => s.size === 1), "each user stays on one side");
    const onV2 = [...sides.values()].filter((s) => s.has("v2")).length;
    assert.ok(onV2 > 5 && onV2 < 35, `users spread over both sides (${onV2} of 40 on v2)`);
  });

  it("applies a new config from the next request and loses no request while configs swap under load", async () => {
    registry.setConfig("web", { resolver: subsets });
    const configs: ServiceConfig[] = [
      { resolver: subsets, splitter: { splits: [{ weight: 50, subset: "v1" }, { weight: 50, subset: "v2" }] } },
      { resolver: subsets, router: { routes: [{ match: { pathPrefix: "/" }, destination: { service: "admin" } }] } },
      { resolver: { ...subsets, defaultSubset: "v2" } },
      {},
    ];
    let swaps = 0;
    const statuses = await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        if (i % 10 === 0) registry.setConfig("web", configs[swaps++ % configs.length]!);
        const res = await mesh.client("web").request({ path: `/load/${i}` });
        await res.body.dump();
        return res.statusCode;
      }),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(statuses.length, 400);
    registry.setConfig("web", { resolver: subsets, router: { routes: [{ destination: { service: "admin" } }] } });
    assert.equal(await hit(), admin.name, "the very next request follows the new config");
  });

  it("refuses an invalid config and keeps the previous one serving", async () => {
    registry.setConfig("web", { resolver: subsets, router: { routes: [{ destination: { service: "admin" } }] } });
    assert.equal(await hit(), admin.name);
    const rejected = new Promise<ConfigRejectedEvent>((resolve) => mesh.once("config_rejected", resolve));
    registry.setConfig("web", { resolver: subsets, splitter: { splits: [{ weight: 60, subset: "v1" }, { weight: 30, subset: "v2" }] } });
    const { error } = await rejected;
    assert.equal(error.details.field, "splitter.splits");
    assert.equal(await hit(), admin.name);
  });

  it("explains a decision without sending anything or moving the split", async () => {
    registry.setConfig("web", {
      resolver: { ...subsets, requestTimeoutMs: 15_000, connectTimeoutMs: 5000 },
      router: { routes: [{ match: { pathPrefix: "/api", headers: [{ name: "x-debug", present: true }] }, destination: { subset: "canary", requestTimeoutMs: 2000, numRetries: 3, retryOn: ["5xx"] } }] },
      splitter: { splits: [{ weight: 90, subset: "v1" }, { weight: 10, subset: "v2" }] },
    });
    const debug = await mesh.explain("web", { path: "/api/x", headers: { "x-debug": "" } });
    assert.deepEqual(debug.route?.index, 0);
    assert.deepEqual(debug.target, { service: "web", subset: "canary" });
    assert.deepEqual(debug.candidates.map((c) => c.id), [web[2]!.name]);
    assert.equal(debug.balancer, "round_robin");
    assert.deepEqual(debug.timeouts, { requestTimeoutMs: 2000, connectTimeoutMs: 5000 });
    assert.deepEqual(debug.retry, { numRetries: 3, retryOn: ["5xx"] });
    const plain = await mesh.explain("web", { path: "/api/x" });
    assert.equal(plain.route, undefined);
    assert.deepEqual(plain.splits, [{ splitter: "web", index: 0, weight: 90 }]);
    assert.deepEqual(plain.timeouts, { requestTimeoutMs: 15_000, connectTimeoutMs: 5000 });
    assert.equal(web.reduce((n, b) => n + b.seen.length, 0), 0, "nothing was sent");
    assert.deepEqual((await mesh.explain("web", { path: "/api/x" })).splits, plain.splits, "the split did not move");
  });
});

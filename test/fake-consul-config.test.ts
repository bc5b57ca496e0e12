import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";
import { consulSample } from "./helpers/consul-samples.ts";

const keys = (value: unknown): string[] => Object.keys(value as object).sort();

describe("FakeConsul config entries", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
  });
  after(() => fake.close());

  async function call(method: "GET" | "PUT" | "DELETE", path: string, body?: unknown) {
    const res = await request(`${fake.url}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }) });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  }
  const apply = (entry: unknown) => call("PUT", "/v1/config", entry);

  it("applies the documented request, and GET and list answer in the documented shapes", async () => {
    const put = await apply(consulSample("config-apply.request.json"));
    assert.deepEqual([put.status, put.text], [200, "true"]);
    const got = await call("GET", "/v1/config/service-defaults/web");
    assert.equal(got.status, 200);
    assert.deepEqual(keys(JSON.parse(got.text)), keys(consulSample("config-get.json")));
    assert.ok(Number(got.headers["x-consul-index"]) >= 1);
    await apply({ Kind: "service-defaults", Name: "db", Protocol: "tcp" });
    const list = JSON.parse((await call("GET", "/v1/config/service-defaults")).text) as { Name: string }[];
    assert.deepEqual(list.map((e) => e.Name), ["db", "web"]);
    assert.deepEqual(keys(list[0]), keys((consulSample("config-list.json") as unknown[])[0]));
  });

  it("accepts every documented example, given what their discovery chains need", async () => {
    // Routers and splitters need an L7 protocol, and the subsets they name; every service a chain reaches
    // needs the chain's protocol, and a service with L7 intentions an HTTP-like one (Consul's graph validation).
    for (const name of ["web", "billing", "orders", "web-rewrite", "web-dc2", "admin", "product-api", "product-api-backup", "api", "backend", "invoice-generator", "procurement"]) assert.equal((await apply({ Kind: "service-defaults", Name: name, Protocol: "http" })).text, "true");
    const webSubsets = { v1: { Filter: "Service.Meta.version == v1" }, v2: { Filter: "Service.Meta.version == v2" }, canary: { Filter: '"canary" in Service.Tags' } };
    assert.equal((await apply({ Kind: "service-resolver", Name: "web", Subsets: webSubsets })).text, "true");
    for (const file of [
      "config-service-defaults.examples.json",
      "config-service-resolver.examples.json",
      "config-service-router.examples.json",
      "config-service-splitter.examples.json",
      "config-service-intentions.examples.json",
    ]) {
      for (const [i, entry] of (consulSample(file) as { Kind: string; Name: string }[]).entries()) {
        if (entry.Kind === "service-resolver" && entry.Name === "web") {
          // Keep the subsets the routers and splitters name: an example without them would be refused.
          const res = await apply({ ...entry, Subsets: { ...webSubsets, ...(entry as { Subsets?: object }).Subsets } });
          assert.deepEqual([res.status, res.text], [200, "true"], `${file}[${i}]`);
          continue;
        }
        const res = await apply(entry);
        assert.deepEqual([res.status, res.text], [200, "true"], `${file}[${i}]: ${res.text}`);
      }
    }
    for (const file of ["config-service-router.json", "config-service-splitter.json", "config-service-resolver.json", "config-service-intentions.json"]) {
      const entry = consulSample(file) as { Kind: string };
      const res = await apply(entry.Kind === "service-resolver" ? { ...entry, Subsets: { ...webSubsets, ...(entry as { Subsets?: object }).Subsets } } : entry);
      assert.deepEqual([res.status, res.text], [200, "true"], file);
    }
  });

  for (const [name, entry, status, message] of [
    ["a split that does not add up to 100", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: 90, ServiceSubset: "v1" }] }, 500, "the sum of all split weights must be 100, not 90.000000"],
    ["a split on a tcp service", { Kind: "service-splitter", Name: "db", Splits: [{ Weight: 100 }] }, 500, 'discovery chain "db" uses a protocol "tcp" that does not permit advanced routing or splitting behavior'],
    ["a split to an unknown subset", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: 100, ServiceSubset: "v9" }] }, 500, 'service "web" does not have a subset named "v9"'],
    ["the same split destination twice", { Kind: "service-splitter", Name: "web", Splits: [{ Weight: 50 }, { Weight: 50, Service: "web" }] }, 500, "split destination occurs more than once: service=web, subset=, namespace=, partition="],
    ["a path prefix without /", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathPrefix: "admin" } } }] }, 500, "Route[0] PathPrefix doesn't start with '/'"],
    ["two path matchers", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathExact: "/a", PathPrefix: "/b" } } }] }, 500, "Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex"],
    ["a bad method", { Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { Methods: ["FETCH"] } } }] }, 500, 'Route[0] Methods contains an invalid method "FETCH"'],
    ["a bad retry condition", { Kind: "service-router", Name: "web", Routes: [{ Destination: { RetryOn: ["sometimes"] } }] }, 500, 'Route[0] contains an invalid retry condition: "sometimes"'],
    ["PrefixRewrite without a path", { Kind: "service-router", Name: "web", Routes: [{ Destination: { PrefixRewrite: "/x" } }] }, 500, "Route[0] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix"],
    ["a default subset that does not exist", { Kind: "service-resolver", Name: "api", DefaultSubset: "v3", Subsets: { v1: {} } }, 500, 'DefaultSubset "v3" is not a valid subset'],
    ["redirect and failover", { Kind: "service-resolver", Name: "api", Redirect: { Service: "x" }, Failover: { "*": { Service: "y" } } }, 500, "Redirect and Failover cannot both be set"],
    ["an unsupported balancer", { Kind: "service-resolver", Name: "api", LoadBalancer: { Policy: "fastest" } }, 500, 'Bad LoadBalancer policy: "fastest" is not supported'],
    ["no name", { Kind: "service-defaults" }, 500, "Name is required"],
    ["an unknown kind", { Kind: "service-magic", Name: "x" }, 400, "Request decoding failed: invalid config entry kind: service-magic"],
  ] as const) {
    it(`refuses ${name}: ${status} ${message}`, async () => {
      const res = await apply(entry);
      assert.deepEqual([res.status, res.text], [status, message]);
    });
  }

  it("refuses a subset filter that does not parse, naming the subset", async () => {
    const res = await apply({ Kind: "service-resolver", Name: "api", Subsets: { v1: { Filter: "Service.Meta.version ==" } } });
    assert.equal(res.status, 500);
    assert.match(res.text, /^Filter for subset "v1" is not a valid expression: /);
  });

  it("keeps the previous entry when a write is refused, and honours cas", async () => {
    const before = JSON.parse((await call("GET", "/v1/config/service-splitter/web")).text) as { ModifyIndex: number };
    await apply({ Kind: "service-splitter", Name: "web", Splits: [{ Weight: 10 }] });
    assert.deepEqual(JSON.parse((await call("GET", "/v1/config/service-splitter/web")).text), before);
    assert.equal((await call("PUT", "/v1/config?cas=1", { Kind: "service-defaults", Name: "web", Protocol: "http" })).text, "false");
    assert.equal((await call("DELETE", "/v1/config/service-defaults/web")).status, 500, "web's splitter and router still need http");
  });

  it("answers a missing entry with 404, Consul's message and an index; a blocking read wakes on a write", async () => {
    const missing = await call("GET", "/v1/config/service-router/nosuch");
    assert.deepEqual([missing.status, missing.text], [404, 'Config entry not found for "service-router" / "nosuch"']);
    assert.ok(Number(missing.headers["x-consul-index"]) >= 1);
    // A service that no chain reaches: web's protocol cannot change now that its chain reaches other http services.
    assert.equal((await apply({ Kind: "service-defaults", Name: "solo", Protocol: "http" })).text, "true");
    const index = Number((await call("GET", "/v1/config/service-defaults/solo")).headers["x-consul-index"]);
    const blocked = call("GET", `/v1/config/service-defaults/solo?index=${index}&wait=30s`);
    assert.equal((await apply({ Kind: "service-defaults", Name: "solo", Protocol: "http2" })).text, "true");
    const res = await blocked;
    assert.equal((JSON.parse(res.text) as { Protocol: string }).Protocol, "http2");
    assert.ok(Number(res.headers["x-consul-index"]) > index);
  });

  it("reports a rising index when an entry is deleted, as Consul's tables do", async () => {
    await apply({ Kind: "service-resolver", Name: "gone" });
    const before = Number((await call("GET", "/v1/config/service-resolver/gone")).headers["x-consul-index"]);
    await call("DELETE", "/v1/config/service-resolver/gone");
    const after = await call("GET", "/v1/config/service-resolver/gone");
    assert.equal(after.status, 404);
    assert.ok(Number(after.headers["x-consul-index"]) > before, `${String(after.headers["x-consul-index"])} > ${before}`);
  });
});

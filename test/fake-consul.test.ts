import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";
import { consulSample } from "./helpers/consul-samples.ts";
import { until } from "./helpers/events.ts";


/** The keys of a JSON value, recursively: the documented shape without the values. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, shape((value as Record<string, unknown>)[k])]));
  }
  return typeof value;
}

async function call(fake: FakeConsul, method: "GET" | "PUT" | "DELETE", path: string, body?: unknown) {
  const res = await request(`${fake.url}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: (): unknown => JSON.parse(text) };
}

describe("FakeConsul serves the documented shapes", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
  });
  after(() => fake.close());

  it("health/service returns health-service.json's shape, with Consul's headers", async () => {
    const doc = consulSample("health-service.json") as [{ Node: Record<string, unknown>; Service: Record<string, unknown>; Checks: Record<string, unknown>[] }];
    const entry = doc[0];
    const register = {
      Datacenter: "dc1",
      ID: entry.Node.ID,
      Node: entry.Node.Node,
      Address: entry.Node.Address,
      TaggedAddresses: entry.Node.TaggedAddresses,
      NodeMeta: entry.Node.Meta,
      Service: entry.Service,
      Checks: entry.Checks,
    };
    assert.equal((await call(fake, "PUT", "/v1/catalog/register", register)).status, 200);
    const res = await call(fake, "GET", "/v1/health/service/redis");
    assert.equal(res.status, 200);
    assert.deepEqual(shape(res.json()), shape(doc));
    assert.deepEqual(res.json(), doc, "the sample's values come back as registered");
    for (const header of ["x-consul-index", "x-consul-knownleader", "x-consul-lastcontact", "x-consul-effective-consistency"]) {
      assert.ok(res.headers[header] !== undefined, header);
    }
    assert.match(String(res.headers["content-type"]), /application\/json/);
  });

  it("catalog/register accepts the documented request, and catalog/services lists it", async () => {
    assert.equal((await call(fake, "PUT", "/v1/catalog/register", consulSample("catalog-register.request.json"))).status, 200);
    const services = (await call(fake, "GET", "/v1/catalog/services")).json() as Record<string, string[]>;
    const documented = consulSample("catalog-services.json") as Record<string, unknown>;
    assert.ok(Object.values(documented).every(Array.isArray), "the documented shape: name -> tags");
    assert.ok(Object.values(services).every(Array.isArray));
    assert.deepEqual(services.redis?.sort(), ["primary", "v1"]);
  });

  it("agent/service/register accepts the documented payloads; checks default to critical", async () => {
    assert.equal((await call(fake, "PUT", "/v1/agent/service/register", consulSample("agent-service-register.json"))).status, 200);
    const composite = consulSample("agent-service-register.composite.json") as Record<string, unknown>;
    assert.equal((await call(fake, "PUT", "/v1/agent/service/register", { ...composite, ID: "redis2" })).status, 200);
    const agent = (await call(fake, "GET", "/v1/agent/services")).json() as Record<string, { Service: string; Weights: unknown }>;
    assert.equal(agent.redis1?.Service, "redis");
    assert.deepEqual(agent.redis1?.Weights, { Passing: 10, Warning: 1 });
    const entries = (await call(fake, "GET", "/v1/health/service/redis")).json() as { Service: { ID: string }; Checks: { CheckID: string; Status: string }[] }[];
    const redis1 = entries.find((e) => e.Service.ID === "redis1");
    assert.deepEqual(redis1?.Checks.map((c) => [c.CheckID, c.Status]), [["service:redis1", "critical"], ["serfHealth", "passing"]]);
  });

  it("agent/service/:id shows a registered connect-proxy in the documented shape, Kind and Proxy included", async () => {
    const sample = consulSample("agent-service-get.json") as Record<string, unknown>;
    const registration = { Name: sample.Service, ...Object.fromEntries(["ID", "Kind", "Port", "Address", "TaggedAddresses", "Weights", "Proxy"].map((k) => [k, sample[k]])) };
    const put = await call(fake, "PUT", "/v1/agent/service/register", registration);
    assert.equal(put.status, 200, put.text);
    const res = await call(fake, "GET", "/v1/agent/service/web-sidecar-proxy");
    assert.equal(res.status, 200);
    const got = res.json() as Record<string, unknown>;
    assert.deepEqual(Object.keys(got).sort(), Object.keys(sample).sort());
    assert.equal(got.Kind, "connect-proxy");
    assert.deepEqual(got.Proxy, sample.Proxy);
    assert.deepEqual(got.TaggedAddresses, sample.TaggedAddresses);
  });

  it("accepts each documented check definition (snake_case, as agent config writes them) and the documented check update", async () => {
    const snippets = consulSample("agent-service-register.check-snippets.json") as Record<string, Record<string, unknown>>;
    for (const [name, snippet] of Object.entries(snippets)) {
      const res = await call(fake, "PUT", "/v1/agent/service/register", { Name: `snippet-${name}`, Port: 80, ...snippet });
      assert.equal(res.status, 200, `${name}: ${res.text}`);
    }
    const update = await call(fake, "PUT", "/v1/agent/check/update/web-app", consulSample("agent-check-update.request.json"));
    assert.equal(update.status, 200, update.text);
    const entries = (await call(fake, "GET", "/v1/health/service/snippet-ttl-check")).json() as { Checks: { CheckID: string; Status: string; Output: string }[] }[];
    const check = entries[0]?.Checks.find((c) => c.CheckID === "web-app");
    assert.equal(check?.Status, "passing");
    assert.equal(check?.Output, (consulSample("agent-check-update.request.json") as { Output: string }).Output);
  });

  it("an unknown service is 200 [] with an index of at least 1", async () => {
    const res = await call(fake, "GET", "/v1/health/service/nosuch");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), []);
    assert.ok(Number(res.headers["x-consul-index"]) >= 1);
  });

  for (const [name, path, status, body] of [
    ["a bad index", "/v1/health/service/redis?index=abc", 400, "Invalid index"],
    ["a bad wait", "/v1/health/service/redis?index=1&wait=soon", 400, "Invalid wait time"],
    ["a bad passing", "/v1/health/service/redis?passing=maybe", 400, "Invalid value for ?passing"],
    ["no service name", "/v1/health/service/", 400, "Missing service name"],
    ["stale with consistent", "/v1/health/service/redis?stale&consistent", 400, "Cannot specify ?stale with ?consistent, conflicting semantics."],
  ] as const) {
    it(`answers ${name} with ${status} and Consul's plain-text message`, async () => {
      const res = await call(fake, "GET", path);
      assert.deepEqual([res.status, res.text], [status, body]);
      assert.match(String(res.headers["content-type"]), /text\/plain/);
    });
  }

  for (const [name, payload, message] of [
    ["no name", { Port: 1 }, "Missing service name"],
    ["address 0.0.0.0", { Name: "x", Address: "0.0.0.0" }, "Invalid service address"],
    ["zero passing weight", { Name: "x", Weights: { Passing: 0, Warning: 1 } }, "Invalid Weights: Passing must be greater than 0"],
    ["a bad check status", { Name: "x", Check: { TTL: "10s", Status: "ok" } }, "Status for checks must 'passing', 'warning', 'critical'"],
  ] as const) {
    it(`refuses a registration with ${name}: 400 ${message}`, async () => {
      const res = await call(fake, "PUT", "/v1/agent/service/register", payload);
      assert.deepEqual([res.status, res.text], [400, message]);
    });
  }

  it("refuses a body that is not JSON", async () => {
    const res = await call(fake, "PUT", "/v1/agent/service/register", "{nope");
    assert.equal(res.status, 400);
    assert.match(res.text, /^Request decode failed: /);
  });
});

describe("FakeConsul's health queries", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
    for (const [id, tags, version, status] of [
      ["web-1", ["v1"], "1", "passing"],
      ["web-2", ["v2", "canary"], "2", "warning"],
      ["web-3", ["v1"], "1", "critical"],
    ] as const) {
      await call(fake, "PUT", "/v1/agent/service/register", { Name: "web", ID: id, Port: 80, Tags: tags, Meta: { version }, Check: { TTL: "1h", Status: status } });
    }
  });
  after(() => fake.close());

  const ids = async (query: string): Promise<string[]> =>
    ((await call(fake, "GET", `/v1/health/service/web${query}`)).json() as { Service: { ID: string } }[]).map((e) => e.Service.ID).sort();

  it("?passing drops any entry with a check that is not passing", async () => {
    assert.deepEqual(await ids(""), ["web-1", "web-2", "web-3"]);
    assert.deepEqual(await ids("?passing"), ["web-1"]);
    assert.deepEqual(await ids("?passing=false"), ["web-1", "web-2", "web-3"]);
  });

  it("?tag (repeated: all of them) and ?filter select entries", async () => {
    assert.deepEqual(await ids("?tag=v2&tag=canary"), ["web-2"]);
    assert.deepEqual(await ids(`?filter=${encodeURIComponent('Service.Meta.version == "1"')}`), ["web-1", "web-3"]);
    assert.deepEqual(await ids(`?filter=${encodeURIComponent('"canary" in Service.Tags or Checks.Status == critical')}`), ["web-2"]);
  });

  it("a blocking query waits for a change past its index, then returns the new index", async () => {
    const first = await call(fake, "GET", "/v1/health/service/web");
    const index = Number(first.headers["x-consul-index"]);
    const blocked = call(fake, "GET", `/v1/health/service/web?index=${index}&wait=30s`);
    await call(fake, "PUT", "/v1/agent/check/pass/service:web-3");
    const res = await blocked;
    assert.ok(Number(res.headers["x-consul-index"]) > index);
    assert.ok((res.json() as { Checks: { Status: string }[] }[]).every((e) => e.Checks.length > 0));
  });

  it("a blocking query with nothing changing returns the same index after wait", async () => {
    const index = Number((await call(fake, "GET", "/v1/health/service/web")).headers["x-consul-index"]);
    const res = await call(fake, "GET", `/v1/health/service/web?index=${index}&wait=50ms`);
    assert.equal(Number(res.headers["x-consul-index"]), index);
  });

  it("an unknown check ID is 404 with Consul's message", async () => {
    const res = await call(fake, "PUT", "/v1/agent/check/pass/web-1");
    assert.deepEqual([res.status, res.text], [404, 'Unknown check ID "web-1". Ensure that the check ID is passed, not the check name.']);
  });

  it("hooks: index backwards, index 0, failures, garbage, churn", async () => {
    const index = Number((await call(fake, "GET", "/v1/health/service/web")).headers["x-consul-index"]);
    const blocked = call(fake, "GET", `/v1/health/service/web?index=${index}&wait=30s`);
    await until(() => fake.blockedQueries > 0); // the query is waiting before the index goes back
    fake.rewindIndex(1);
    assert.equal(Number((await blocked).headers["x-consul-index"]), 1, "a blocked query returns the lower index");
    fake.zeroIndexNext();
    assert.equal((await call(fake, "GET", "/v1/health/service/web")).headers["x-consul-index"], "0");
    fake.failNext(1, 500);
    assert.equal((await call(fake, "GET", "/v1/health/service/web")).status, 500);
    fake.garbageNext();
    const garbage = await call(fake, "GET", "/v1/health/service/web");
    assert.throws(() => garbage.json());
    const before = Number((await call(fake, "GET", "/v1/health/service/web")).headers["x-consul-index"]);
    fake.churn("web", 3);
    assert.equal(Number((await call(fake, "GET", "/v1/health/service/web")).headers["x-consul-index"]), before + 3);
  });

  it("a TTL check that is not renewed goes critical", async () => {
    await call(fake, "PUT", "/v1/agent/service/register", { Name: "ttl", ID: "ttl-1", Check: { TTL: "50ms", Status: "passing" } });
    const index = Number((await call(fake, "GET", "/v1/health/service/ttl")).headers["x-consul-index"]);
    const res = await call(fake, "GET", `/v1/health/service/ttl?index=${index}&wait=30s`);
    const checks = (res.json() as { Checks: { CheckID: string; Status: string; Output: string }[] }[])[0]?.Checks;
    assert.deepEqual(checks?.find((c) => c.CheckID === "service:ttl-1")?.Status, "critical");
  });

  it("restart() forgets every service", async () => {
    const other = await FakeConsul.start();
    await call(other, "PUT", "/v1/agent/service/register", { Name: "gone" });
    other.restart();
    assert.deepEqual((await call(other, "GET", "/v1/health/service/gone")).json(), []);
    await other.close();
  });
});

describe("FakeConsul's catalog, agent and KV reads match the documented samples", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
  });
  after(() => fake.close());

  /** Every key of the documented sample is in the answer (the fake may add documented fields). */
  const covers = (answer: unknown, documented: unknown): void => {
    const missing = Object.keys(documented as object).filter((k) => !(k in (answer as object)));
    assert.deepEqual(missing, [], `missing keys ${missing.join(", ")}`);
  };

  it("catalog/service answers in catalog-service.json's shape", async () => {
    await call(fake, "PUT", "/v1/catalog/register", consulSample("catalog-register.request.json"));
    const answer = (await call(fake, "GET", "/v1/catalog/service/redis")).json() as Record<string, unknown>[];
    assert.equal(answer.length, 1);
    covers(answer[0], (consulSample("catalog-service.json") as unknown[])[0]);
    assert.deepEqual([answer[0]?.ServiceID, answer[0]?.ServiceAddress, answer[0]?.Address], ["redis1", "127.0.0.1", "192.168.10.10"]);
  });

  it("agent/services, agent/service/:id and agent/health/service answer in their documented shapes and status codes", async () => {
    await call(fake, "PUT", "/v1/agent/service/register", { Name: "web", ID: "web2", Tags: ["rails"], Port: 80, Check: { TTL: "1h" } });
    const services = (await call(fake, "GET", "/v1/agent/services")).json() as Record<string, unknown>;
    covers(services.web2, (consulSample("agent-services.json") as Record<string, unknown>).redis);
    const one = (await call(fake, "GET", "/v1/agent/service/web2")).json();
    for (const key of ["ID", "Service", "Tags", "Meta", "Port", "Address", "Weights", "Datacenter", "ContentHash"]) assert.ok(key in (one as object), key);
    const critical = await call(fake, "GET", "/v1/agent/health/service/id/web2");
    assert.equal(critical.status, 503, "critical is 503");
    const documented = consulSample("agent-health-service-id.json") as { Service: unknown; Checks: unknown[] };
    covers(critical.json(), documented);
    covers((critical.json() as { Service: unknown }).Service, documented.Service);
    covers((critical.json() as { Checks: unknown[] }).Checks[0], documented.Checks[0]);
    await call(fake, "PUT", "/v1/agent/check/warn/service:web2");
    assert.deepEqual([(await call(fake, "GET", "/v1/agent/health/service/name/web?format=text")).status], [429]);
    await call(fake, "PUT", "/v1/agent/check/pass/service:web2");
    const passing = await call(fake, "GET", "/v1/agent/health/service/id/web2?format=text");
    assert.deepEqual([passing.status, passing.text], [200, "passing"]);
    assert.equal((await call(fake, "GET", "/v1/agent/health/service/id/nosuch")).status, 404);
  });

  it("KV answers in kv-get.json's and kv-get-keys.json's shapes; a missing key is 404 with an index", async () => {
    for (const key of ["web/bar", "web/foo", "web/subdir/x"]) assert.equal((await call(fake, "PUT", `/v1/kv/${key}`, "test")).text, "true");
    const entries = (await call(fake, "GET", "/v1/kv/web/foo")).json() as Record<string, unknown>[];
    // The sample's key is held by a lock session; an unlocked key has no Session field.
    const documented = { ...(consulSample("kv-get.json") as Record<string, unknown>[])[0] };
    delete documented.Session;
    covers(entries[0], documented);
    assert.equal(Buffer.from(String(entries[0]?.Value), "base64").toString(), "test");
    const keys = (await call(fake, "GET", "/v1/kv/web/?keys&separator=/")).json();
    assert.deepEqual(keys, ["web/bar", "web/foo", "web/subdir/"]);
    assert.deepEqual(keys, (consulSample("kv-get-keys.json") as string[]).map((k) => k.slice(1)), "the documented keys, without their leading /");
    const missing = await call(fake, "GET", "/v1/kv/nosuch");
    assert.deepEqual([missing.status, missing.text], [404, ""]);
    assert.ok(Number(missing.headers["x-consul-index"]) >= 1);
    assert.equal((await call(fake, "PUT", "/v1/kv/web/bar?cas=1", "x")).text, "false", "cas mismatch");
    assert.equal((await call(fake, "DELETE", "/v1/kv/web/?recurse")).text, "true");
    assert.equal((await call(fake, "GET", "/v1/kv/web/?recurse")).status, 404);
  });
});

// FakeConsul driven by an independent client: the `consul` npm package, written against the real
// agent. Each test asserts what Consul does (its source: agent/*_endpoint.go, agent/consul/state,
// agent/blockingquery) through that client; where the client has no call for an endpoint (config
// entries, Connect), a plain HTTP request stands in. The issue-23 table's rows are marked "row".
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, before, describe, it } from "node:test";
import Consul from "consul";
import { request } from "undici";
import { FakeClock, FakeConsul } from "proxyless/testing";

type Response = { statusCode: number; headers: Record<string, string | string[] | undefined> };
/** What the client resolves with when asked for the response too (`ctx.includeResponse`). */
type WithResponse<T> = [Response, T];

type Options = Record<string, unknown>;
type Call = (options?: Options | string) => Promise<unknown>;
/**
 * The client's calls used here, as it takes them at run time: its typings leave out options it
 * honours (ctx, raw, acquire, a check's status).
 */
interface Client {
  readonly health: { readonly service: Call };
  readonly catalog: { readonly service: { readonly nodes: Call; readonly list: Call } };
  readonly agent: {
    readonly service: { readonly register: Call; readonly deregister: Call; readonly list: Call };
    readonly check: { readonly register: Call; readonly deregister: Call; readonly list: Call; readonly pass: Call };
  };
  readonly kv: { readonly get: Call; readonly set: Call; readonly del: Call };
  readonly session: { readonly create: Call };
}

function client(fake: FakeConsul, token?: string): Client {
  const url = new URL(fake.url);
  return new Consul({ host: url.hostname, port: Number(url.port), ...(token === undefined ? {} : { defaults: { token } }) }) as unknown as Client;
}

/** Calls the client asking for the response too (its `ctx` must be an EventEmitter), and returns both. */
async function withResponse<T>(call: (ctx: EventEmitter) => Promise<unknown>): Promise<WithResponse<T>> {
  return (await call(Object.assign(new EventEmitter(), { includeResponse: true }))) as WithResponse<T>;
}

/** The client's error for a non-2xx answer: its status and Consul's text. */
async function failure(call: Promise<unknown>): Promise<{ status: number; text: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as Error & { response?: { statusCode?: number; body?: unknown } };
    return { status: e.response?.statusCode ?? 0, text: typeof e.response?.body === "string" ? e.response.body : e.message };
  }
  assert.fail("expected the call to fail");
}

async function http(fake: FakeConsul, method: "GET" | "PUT" | "POST" | "DELETE", path: string, body?: unknown, token?: string) {
  const res = await request(`${fake.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    headers: token === undefined ? {} : { "x-consul-token": token },
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

describe("FakeConsul against the consul client: ACL-filtered reads (row)", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start({ aclTokens: { writer: { serviceWrite: [""] }, reader: { serviceRead: ["orders"] } } });
    await client(fake, "writer").agent.service.register({ name: "billing", port: 9001, tags: ["v1"] });
    await client(fake, "writer").agent.service.register({ name: "orders", port: 9002 });
  });
  after(() => fake.close());

  it("health/service of a service the token may not read: 200, [] and X-Consul-Results-Filtered-By-ACLs", async () => {
    const [res, body] = await withResponse<unknown[]>((ctx) => client(fake, "reader").health.service({ service: "billing", ctx }));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(body, []);
    assert.equal(res.headers["x-consul-results-filtered-by-acls"], "true");
    assert.ok(Number(res.headers["x-consul-index"]) > 0, "still a blocking query with an index");
  });

  it("catalog/service the same way", async () => {
    const [res, body] = await withResponse<unknown[]>((ctx) => client(fake, "reader").catalog.service.nodes({ service: "billing", ctx }));
    assert.deepEqual([res.statusCode, body, res.headers["x-consul-results-filtered-by-acls"]], [200, [], "true"]);
  });

  it("what the token may read comes back whole, without the header", async () => {
    const [res, body] = await withResponse<unknown[]>((ctx) => client(fake, "reader").health.service({ service: "orders", ctx }));
    assert.equal(body.length, 1);
    assert.equal(res.headers["x-consul-results-filtered-by-acls"], undefined);
  });

  it("no token (anonymous): filtered too, but the header is not set (Consul masks it, to leak nothing)", async () => {
    const [res, body] = await withResponse<unknown[]>((ctx) => client(fake).health.service({ service: "billing", ctx }));
    assert.deepEqual([res.statusCode, body, res.headers["x-consul-results-filtered-by-acls"]], [200, [], undefined]);
  });

  it("a write the token may not make: 403 naming an AccessorID that reveals nothing of the secret", async () => {
    const refused = await failure(client(fake, "reader").agent.service.register({ name: "orders", port: 9003 }));
    assert.equal(refused.status, 403);
    assert.match(refused.text, /^Permission denied: token with AccessorID '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' lacks permission 'service:write' on "orders"$/);
    assert.ok(!refused.text.includes("reader"), refused.text);
  });

  it("a token that does not exist is still 403 ACL not found", async () => {
    assert.deepEqual(await failure(client(fake, "guess").health.service("billing")), { status: 403, text: "ACL not found" });
  });

  it("catalog/services sets the header when it leaves services out", async () => {
    const [res, body] = await withResponse<Record<string, string[]>>((ctx) => client(fake, "reader").catalog.service.list({ ctx }));
    assert.deepEqual(Object.keys(body), ["orders"]);
    assert.equal(res.headers["x-consul-results-filtered-by-acls"], "true");
  });
});

describe("FakeConsul against the consul client: catalog, agent and KV", () => {
  let fake: FakeConsul;
  let consul: Client;
  before(async () => {
    fake = await FakeConsul.start();
    consul = client(fake);
    await consul.agent.service.register({ id: "web-1", name: "web", port: 8080, tags: ["Primary", "v1"], meta: { zone: "a" } });
    await consul.agent.service.register({ id: "web-2", name: "web", port: 8081, tags: ["v2"], meta: { zone: "b" } });
  });
  after(() => fake.close());

  it("catalog/service honours ?tag and ?filter (row)", async () => {
    const tagged = (await consul.catalog.service.nodes({ service: "web", tag: "v2" })) as { ServiceID: string }[];
    assert.deepEqual(tagged.map((e) => e.ServiceID), ["web-2"]);
    const filtered = (await consul.catalog.service.nodes({ service: "web", filter: 'ServiceMeta.zone == "a"' })) as { ServiceID: string }[];
    assert.deepEqual(filtered.map((e) => e.ServiceID), ["web-1"]);
    assert.equal((await failure(consul.catalog.service.nodes({ service: "web", filter: "ServiceMeta.zone ==" }))).status, 400);
  });

  it("?tag matches without regard to case, in health and catalog (row)", async () => {
    const health = (await consul.health.service({ service: "web", tag: "primary" })) as { Service: { ID: string } }[];
    assert.deepEqual(health.map((e) => e.Service.ID), ["web-1"]);
    const catalog = (await consul.catalog.service.nodes({ service: "web", tag: "PRIMARY" })) as { ServiceID: string }[];
    assert.deepEqual(catalog.map((e) => e.ServiceID), ["web-1"]);
  });

  it("catalog/services lists the servers' own service, consul, with no tags (row)", async () => {
    const services = (await consul.catalog.service.list()) as Record<string, string[]>;
    assert.deepEqual(services.consul, []);
    assert.deepEqual([...(services.web ?? [])].sort(), ["Primary", "v1", "v2"]);
    const agent = (await consul.agent.service.list()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(agent).sort(), ["web-1", "web-2"], "it is the catalog's, not the agent's");
  });

  it("deregistering an unknown service ID is 404 with Consul's message (row)", async () => {
    assert.deepEqual(await failure(consul.agent.service.deregister("nosuch")), {
      status: 404,
      text: 'Unknown service ID "nosuch". Ensure that the service ID is passed, not the service name.',
    });
    assert.equal((await failure(consul.agent.service.deregister("consul"))).status, 404, "the catalog's consul service is not the agent's");
  });

  it("keeps EnableTagOverride as registered (row)", async () => {
    // The client does not send EnableTagOverride: register over HTTP, read through the client.
    assert.equal((await http(fake, "PUT", "/v1/agent/service/register", { ID: "tagged", Name: "tagged", Port: 1, EnableTagOverride: true })).status, 200);
    const agent = (await consul.agent.service.list()) as Record<string, { EnableTagOverride: boolean }>;
    assert.equal(agent.tagged?.EnableTagOverride, true);
    const catalog = (await consul.catalog.service.nodes("tagged")) as { ServiceEnableTagOverride: boolean }[];
    assert.equal(catalog[0]?.ServiceEnableTagOverride, true);
    assert.equal(((await consul.agent.service.list()) as Record<string, { EnableTagOverride: boolean }>)["web-1"]?.EnableTagOverride, false);
  });

  it("serves the agent's checks: register, list, pass, deregister; unknown IDs are 404 (row)", async () => {
    await consul.agent.check.register({ name: "disk", ttl: "30s" });
    await consul.agent.check.register({ name: "web-ttl", id: "web-ttl", serviceid: "web-1", ttl: "30s", notes: "renewed by the app" });
    const checks = (await consul.agent.check.list()) as Record<string, { CheckID: string; Status: string; ServiceID: string; ServiceName: string; Type: string; Notes: string }>;
    assert.deepEqual(Object.keys(checks).sort(), ["disk", "web-ttl"], "CheckID defaults to the name; serfHealth is not the agent's");
    assert.deepEqual([checks["web-ttl"]?.Status, checks["web-ttl"]?.ServiceName, checks["web-ttl"]?.Type, checks["web-ttl"]?.Notes], ["critical", "web", "ttl", "renewed by the app"]);
    await consul.agent.check.pass("web-ttl");
    const health = (await consul.health.service({ service: "web", passing: true })) as { Service: { ID: string } }[];
    assert.deepEqual(health, [], "a node check (disk, critical) counts for every service of the node");
    await consul.agent.check.deregister("disk");
    const afterDisk = (await consul.health.service({ service: "web", passing: true })) as { Service: { ID: string } }[];
    assert.deepEqual(afterDisk.map((e) => e.Service.ID).sort(), ["web-1", "web-2"]);
    assert.deepEqual(await failure(consul.agent.check.deregister("disk")), {
      status: 404,
      text: 'Unknown check ID "disk". Ensure that the check ID is passed, not the check name.',
    });
    assert.deepEqual(await failure(consul.agent.check.register({ name: "x", serviceid: "nosuch", ttl: "5s" })), { status: 404, text: 'ServiceID "nosuch" does not exist' });
    assert.deepEqual(await failure(consul.agent.check.register({ name: "x", ttl: "5s", status: "bad" })), { status: 400, text: "Bad check status" });
    await consul.agent.service.deregister("web-1");
    assert.equal(((await consul.agent.check.list()) as Record<string, unknown>)["web-ttl"], undefined, "a service's checks go with it");
  });

  it("KV ?raw answers the value as stored, as text/plain no browser runs (row)", async () => {
    await consul.kv.set({ key: "config/raw", value: '{"a": 1}' });
    const [res, raw] = await withResponse<Buffer>((ctx) => consul.kv.get({ key: "config/raw", raw: true, ctx }));
    assert.equal(Buffer.from(raw).toString(), '{"a": 1}');
    assert.equal(res.headers["content-type"], "text/plain");
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    const json = (await consul.kv.get("config/raw")) as { Value: string };
    assert.equal(json.Value, '{"a": 1}', "without ?raw: the JSON entry");
  });

  it("KV ?acquire and ?release: 501 naming them, never a true that pretends (row)", async () => {
    const acquire = await failure(consul.kv.set({ key: "lock", value: "me", acquire: "4ca8e74b-6350-7587-addf-a18084928f3c" }));
    assert.equal(acquire.status, 501);
    assert.match(acquire.text, /^FakeConsul does not implement \?acquire/);
    assert.equal((await http(fake, "PUT", "/v1/kv/lock?release=4ca8e74b-6350-7587-addf-a18084928f3c", "x")).status, 501);
    assert.equal(await consul.kv.get("lock"), undefined, "nothing was written");
    const both = await http(fake, "PUT", "/v1/kv/lock?cas=0&acquire=s", "x");
    assert.deepEqual([both.status, both.text], [400, "Conflicting flags: acquire=s&cas=0\n"]);
  });

  it("KV cas=abc is an error, as Go's ParseUint answers it (row)", async () => {
    assert.deepEqual(await failure(consul.kv.set({ key: "k", value: "v", cas: "abc" })), { status: 500, text: 'strconv.ParseUint: parsing "abc": invalid syntax' });
    assert.equal((await failure(consul.kv.del({ key: "k", cas: "abc" }))).status, 500);
    assert.equal((await failure(consul.kv.set({ key: "k", value: "v", flags: "-1" }))).status, 500);
    assert.equal(await consul.kv.set({ key: "k", value: "v", cas: 0 }), true, "cas=0: only if absent");
    assert.equal((await http(fake, "PUT", "/v1/kv/k?cas=0", "w")).text, "false");
  });

  it("answers 501 naming a Consul endpoint or parameter it does not serve", async () => {
    const session = await failure(consul.session.create());
    assert.equal(session.status, 501);
    assert.match(session.text, /^FakeConsul does not implement PUT \/v1\/session\/create/);
    const near = await failure(consul.health.service({ service: "web", near: "_agent" }));
    assert.equal(near.status, 501);
    assert.match(near.text, /\?near/);
    assert.deepEqual(await failure(consul.health.service({ service: "web", dc: "dc9" })), { status: 500, text: "No path to datacenter" });
    assert.equal((await http(fake, "GET", "/v1/nosuch")).status, 404, "a path Consul does not know: Consul's 404");
    const sidecar = await http(fake, "PUT", "/v1/agent/service/register", { Name: "web", Port: 1, Connect: { SidecarService: {} } });
    assert.equal(sidecar.status, 501);
    assert.match(sidecar.text, /^FakeConsul does not implement Connect\.SidecarService/);
  });
});

describe("FakeConsul against the consul client: blocking queries", () => {
  it("wait=0s waits the default 5 minutes, not at once (row)", async () => {
    const clock = new FakeClock();
    const fake = await FakeConsul.start({ clock, random: { next: () => 0 } });
    try {
      const consul = client(fake);
      const [first] = await withResponse((ctx) => consul.catalog.service.list({ ctx }));
      const index = String(first.headers["x-consul-index"]);
      let done = false;
      const blocked = consul.catalog.service.list({ index, wait: "0s" }).then(() => (done = true));
      await waitFor(() => fake.blockedQueries === 1);
      clock.advance(5 * 60_000 - 1);
      await settle();
      assert.equal(done, false, "still waiting just before 5 minutes");
      clock.advance(1);
      await blocked;
    } finally {
      await fake.close();
    }
  });

  it("a wait over 10 minutes is capped at 10, plus up to a sixteenth of random extra (row)", async () => {
    const clock = new FakeClock();
    const fake = await FakeConsul.start({ clock, random: { next: () => 0.5 } });
    try {
      const consul = client(fake);
      const [first] = await withResponse((ctx) => consul.catalog.service.list({ ctx }));
      const index = String(first.headers["x-consul-index"]);
      let done = false;
      const blocked = consul.catalog.service.list({ index, wait: "20m" }).then(() => (done = true));
      await waitFor(() => fake.blockedQueries === 1);
      const expected = 10 * 60_000 + Math.floor(0.5 * ((10 * 60_000) / 16));
      clock.advance(expected - 1);
      await settle();
      assert.equal(done, false, "the cap plus its jitter has not passed");
      clock.advance(1);
      await blocked;
    } finally {
      await fake.close();
    }
  });

  it("a change still ends the wait at once", async () => {
    const fake = await FakeConsul.start({ clock: new FakeClock() });
    try {
      const consul = client(fake);
      const [first] = await withResponse((ctx) => consul.health.service({ service: "web", ctx }));
      const blocked = withResponse<unknown[]>((ctx) => consul.health.service({ service: "web", index: String(first.headers["x-consul-index"]), wait: "1m", ctx }));
      await waitFor(() => fake.blockedQueries === 1);
      await consul.agent.service.register({ name: "web", port: 1 });
      const [res, body] = await blocked;
      assert.equal(body.length, 1);
      assert.ok(Number(res.headers["x-consul-index"]) > Number(first.headers["x-consul-index"]));
    } finally {
      await fake.close();
    }
  });
});

describe("FakeConsul: config entries checked as Consul's graph validation checks them (row)", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
  });
  after(() => fake.close());
  const put = (entry: unknown) => http(fake, "PUT", "/v1/config", entry);

  it("refuses a router whose chain mixes protocols across services", async () => {
    assert.equal((await put({ Kind: "service-defaults", Name: "web", Protocol: "http" })).text, "true");
    assert.equal((await put({ Kind: "service-defaults", Name: "admin", Protocol: "grpc" })).text, "true");
    const res = await put({ Kind: "service-router", Name: "web", Routes: [{ Match: { HTTP: { PathPrefix: "/admin" } }, Destination: { Service: "admin" } }] });
    assert.deepEqual([res.status, res.text], [500, 'discovery chain "web" uses inconsistent protocols; service "admin" has "grpc" which is not "http"']);
  });

  it("refuses a redirect to a subset the target lacks", async () => {
    assert.equal((await put({ Kind: "service-defaults", Name: "api", Protocol: "http" })).text, "true");
    const res = await put({ Kind: "service-resolver", Name: "web", Redirect: { Service: "api", ServiceSubset: "v2" } });
    assert.deepEqual([res.status, res.text], [500, 'service "api" does not have a subset named "v2"']);
  });

  it("refuses a redirect loop", async () => {
    assert.equal((await put({ Kind: "service-resolver", Name: "api", Redirect: { Service: "web" } })).text, "true");
    const res = await put({ Kind: "service-resolver", Name: "web", Redirect: { Service: "api" } });
    assert.equal(res.status, 500);
    assert.match(res.text, /^detected circular resolver redirect: \[/);
  });

  it("refuses a split loop", async () => {
    assert.equal((await put({ Kind: "service-defaults", Name: "a", Protocol: "http" })).text, "true");
    assert.equal((await put({ Kind: "service-defaults", Name: "b", Protocol: "http" })).text, "true");
    assert.equal((await put({ Kind: "service-splitter", Name: "a", Splits: [{ Weight: 50, Service: "b" }, { Weight: 50 }] })).text, "true");
    const res = await put({ Kind: "service-splitter", Name: "b", Splits: [{ Weight: 100, Service: "a" }] });
    assert.equal(res.status, 500);
    assert.match(res.text, /^detected circular reference: \[/);
  });

  it("refuses a protocol change that would break a chain already accepted, and L7 intentions on a tcp service", async () => {
    const res = await put({ Kind: "service-defaults", Name: "b", Protocol: "tcp" });
    assert.equal(res.status, 500);
    assert.match(res.text, /uses inconsistent protocols/);
    const l7 = await put({ Kind: "service-intentions", Name: "db", Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] }] });
    assert.deepEqual([l7.status, l7.text], [500, 'service "db" has protocol "tcp", which is incompatible with L7 intentions permissions']);
  });
});

describe("FakeConsul: authorize answers Consul's reasons (row)", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
    await http(fake, "PUT", "/v1/config", { Kind: "service-defaults", Name: "api", Protocol: "http" });
    const entry = await http(fake, "PUT", "/v1/config", {
      Kind: "service-intentions",
      Name: "api",
      Sources: [
        { Name: "web", Action: "allow" },
        { Name: "batch", Action: "deny" },
        { Name: "admin", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/admin" } }] },
      ],
    });
    assert.equal(entry.text, "true");
  });
  after(() => fake.close());
  const authorize = async (uri: string) => {
    const res = await http(fake, "POST", "/v1/agent/connect/authorize", { Target: "api", ClientCertURI: uri });
    return { status: res.status, body: res.status === 200 ? (JSON.parse(res.text) as { Authorized: boolean; Reason: string }) : res.text };
  };
  const svc = (name: string, domain = "11111111-2222-3333-4444-555555555555.consul") => `spiffe://${domain}/ns/default/dc/dc1/svc/${name}`;

  it("Matched L4 intention, Matched L7 intention, Default behavior configured by ACLs", async () => {
    assert.deepEqual((await authorize(svc("web"))).body, { Authorized: true, Reason: "Matched L4 intention: default/web => default/api (Precedence: 9, Action: ALLOW)" });
    assert.deepEqual((await authorize(svc("batch"))).body, { Authorized: false, Reason: "Matched L4 intention: default/batch => default/api (Precedence: 9, Action: DENY)" });
    assert.deepEqual((await authorize(svc("admin"))).body, { Authorized: false, Reason: "Matched L7 intention: default/admin => default/api (Precedence: 9, Permissions: 1)" });
    assert.deepEqual((await authorize(svc("stranger"))).body, { Authorized: true, Reason: "Default behavior configured by ACLs" });
  });

  it("leaves a foreign trust domain to the intentions, as Consul does", async () => {
    assert.deepEqual((await authorize(svc("web", "other.consul"))).body, { Authorized: true, Reason: "Matched L4 intention: default/web => default/api (Precedence: 9, Action: ALLOW)" });
  });

  it("refuses a URI that is not a service identity with Consul's 400", async () => {
    assert.deepEqual(await authorize("not a uri"), { status: 400, body: "ClientCertURI not a valid Connect identifier" });
    assert.deepEqual(await authorize("spiffe://11111111-2222-3333-4444-555555555555.consul/agent/client/dc/dc1/id/abc"), { status: 400, body: "ClientCertURI not a valid Service identifier" });
  });
});

/** Resolves once `condition` holds, polling on the event loop (the fake signals nothing else to await). */
async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

/** Lets pending I/O callbacks run (a response that was due would arrive here). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

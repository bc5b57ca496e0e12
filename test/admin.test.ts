import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createMesh, isMeshError, type Mesh, type MeshSnapshot, type RouteExplanation, type ServiceConfig } from "proxyless";
import { startAdmin, type AdminEvent, type AdminServer } from "proxyless/admin";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

/** What an admin endpoint answers, by what the test reads of it. */
interface Answer {
  readonly error?: { readonly code: string; readonly message: string };
  readonly events?: readonly AdminEvent[];
  readonly services?: readonly { readonly name: string; readonly config: ServiceConfig }[];
}

/** A GET (or another method) to the admin server, with the headers given; the body parsed as JSON (typed as the caller expects). */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape of JSON it expects
async function get<T = Answer>(url: string, init: { readonly method?: string; readonly headers?: Record<string, string>; readonly rawPath?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: T }> {
  const target = new URL(url);
  // rawPath: sent as it is (dot segments and all), as curl --path-as-is does.
  const req = httpRequest({ host: target.hostname.replace(/^\[(.*)\]$/, "$1"), port: target.port, path: init.rawPath ?? target.pathname + target.search, method: init.method ?? "GET", headers: init.headers, agent: false });
  req.end();
  const [res] = (await once(req, "response")) as [import("node:http").IncomingMessage];
  let body = "";
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, headers: res.headers, json: (body === "" ? undefined : JSON.parse(body)) as T };
}

const SECRET = "Bearer do-not-show-me";

describe("the admin server (proxyless/admin)", () => {
  let backends: Backend[];
  let registry: MockRegistry;
  let mesh: Mesh;
  let admin: AdminServer;

  before(async () => {
    backends = await startBackends(2);
    registry = new MockRegistry(
      { orders: backends.map((b) => b.endpoint) },
      {
        orders: {
          router: {
            routes: [
              { match: { pathPrefix: "/v2/" }, destination: { requestHeaders: { set: { authorization: SECRET, "x-routed": "v2" }, remove: ["authorization", "x-user"] } } },
              { match: { pathPrefix: "/pay/", headers: [{ name: "authorization", exact: SECRET }] }, destination: { service: "payments" } },
            ],
          },
        },
      },
    );
    mesh = createMesh({ registry });
    await (await mesh.client("orders").request({ path: "/" })).body.dump();
    admin = await startAdmin(mesh, { port: 0 });
  });
  after(async () => {
    await admin.close();
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("listens on loopback and serves the mesh's snapshot as JSON", async () => {
    assert.match(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const { status, headers, json } = await get<MeshSnapshot>(`${admin.url}/api/snapshot`);
    assert.equal(status, 200);
    assert.match(String(headers["content-type"]), /^application\/json/);
    assert.equal(headers["cache-control"], "no-store");
    const orders = json.services.find((s) => s.name === "orders");
    assert.equal(orders?.status, "known");
    assert.deepEqual(orders.endpoints.map((e) => e.id).sort(), backends.map((b) => b.endpoint.id).sort());
  });

  it("serves the config in force per service, with secret header values redacted", async () => {
    const { status, json } = await get(`${admin.url}/api/config?service=orders`);
    assert.equal(status, 200);
    assert.equal(json.services?.length, 1);
    const set = json.services?.[0]?.config.router?.routes?.[0]?.destination?.requestHeaders?.set;
    assert.equal(set?.["x-routed"], "v2", "other values are shown");
    assert.equal(set?.authorization, "<redacted>");
    const routes = json.services?.[0]?.config.router?.routes;
    assert.deepEqual(routes?.[0]?.destination?.requestHeaders?.remove, ["authorization", "x-user"], "the names of removed headers are shown as they are");
    assert.deepEqual(routes?.[1]?.match?.headers, [{ name: "authorization", exact: "<redacted>" }], "a match on a secret header hides the value");
    const all = await get(`${admin.url}/api/config`);
    assert.ok(!JSON.stringify(all.json).includes("do-not-show-me"));
  });

  it("explains where a described request would go, and why", async () => {
    const { status, json } = await get<RouteExplanation>(`${admin.url}/api/explain?service=orders&method=GET&path=${encodeURIComponent("/v2/items")}&header=x-user:7`);
    assert.equal(status, 200);
    assert.equal(json.service, "orders");
    assert.equal(json.route?.index, 0);
    assert.equal(json.path, "/v2/items");
    assert.ok(!JSON.stringify(json).includes("do-not-show-me"), "a header the route sets is redacted in the explanation too");
    const plain = await get<RouteExplanation>(`${admin.url}/api/explain?service=orders&path=/v1/items`);
    assert.equal(plain.json.route, undefined, "no route matched: the default route");
  });

  it("is read-only: it explains no service the mesh does not call (that would start a watch), and refuses writes", async () => {
    const unknown = await get(`${admin.url}/api/explain?service=payments&path=/`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error?.code, "ERR_UNKNOWN_SERVICE");
    assert.equal(mesh.inspect("payments"), undefined, "nothing was watched");
    // Nor through a route of a watched service that reaches one not watched: reported, not looked up.
    const routed = await get<RouteExplanation>(`${admin.url}/api/explain?service=orders&path=/pay/x&header=${encodeURIComponent(`authorization:${SECRET}`)}`);
    assert.equal(routed.status, 200);
    assert.equal(routed.json.error?.code, "ERR_UNKNOWN_SERVICE");
    assert.match(routed.json.error?.message ?? "", /'payments' is not watched/);
    assert.equal(mesh.inspect("payments"), undefined, "the route's target was not watched either");
    assert.equal((await get(`${admin.url}/api/config?service=payments`)).status, 404);
    const post = await get(`${admin.url}/api/snapshot`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
    const bad = await get(`${admin.url}/api/explain?service=orders&header=nocolon`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.code, "ERR_INVALID_ARGUMENT");
    const missing = await get(`${admin.url}/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.json.error?.message ?? "", /\/api\/snapshot/);
  });

  it("keeps recent events as a feed, newer than a seq on request", async () => {
    const before = (await get(`${admin.url}/api/events`)).json.events ?? [];
    const last = before.at(-1)?.seq ?? 0;
    registry.setConfig("orders", { loadBalancer: { policy: "no_such_policy" } });
    registry.setEndpoints("orders", [backends[0]!.endpoint]);
    const { json } = await get(`${admin.url}/api/events?since=${String(last)}`);
    const events = json.events ?? [];
    const rejected = events.find((e) => e.type === "config_rejected");
    assert.equal(rejected?.service, "orders");
    assert.equal((rejected?.detail.error as { code: string }).code, "ERR_INVALID_CONFIG");
    const changed = events.find((e) => e.type === "endpoints_changed");
    assert.deepEqual(changed?.detail, { endpoints: 1, added: 0, removed: 1, changed: 0 });
    assert.ok(events.every((e) => e.seq > last));
    registry.setEndpoints("orders", backends.map((b) => b.endpoint));
  });

  it("does no work for pages of other sites, even unread (a cross-site GET)", async () => {
    for (const headers of [{ "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }, { origin: "https://attacker.example" }, { origin: "null" }]) {
      const r = await get(`${admin.url}/api/explain?service=orders&path=/`, { headers });
      assert.equal(r.status, 403, JSON.stringify(headers));
    }
    assert.equal((await get(`${admin.url}/api/snapshot`, { headers: { "sec-fetch-site": "same-origin", origin: admin.url } })).status, 200);
  });

  it("answers only requests addressed to this machine when it has no token (DNS rebinding)", async () => {
    const rebound = await get(`${admin.url}/api/snapshot`, { headers: { host: "attacker.example:80" } });
    assert.equal(rebound.status, 403);
    assert.equal(rebound.json.services, undefined);
    assert.equal((await get(`${admin.url}/api/snapshot`, { headers: { host: `localhost:${String(admin.port)}` } })).status, 200);
  });
});

describe("the admin server's options and access", () => {
  let mesh: Mesh;
  before(() => {
    mesh = createMesh({ registry: new MockRegistry({ orders: [{ address: "127.0.0.1", port: 1 }] }) });
  });
  after(() => mesh.close());

  it("with a token, answers only requests that send it", async () => {
    const token = "s3cret-token-of-enough-length";
    await using admin = await startAdmin(mesh, { port: 0, token });
    const none = await get(`${admin.url}/api/snapshot`);
    assert.equal(none.status, 401);
    assert.match(String(none.headers["www-authenticate"]), /^Bearer/);
    assert.equal((await get(`${admin.url}/api/snapshot`, { headers: { authorization: "Bearer wrong-token-of-enough-length" } })).status, 401);
    assert.equal((await get(`${admin.url}/api/snapshot`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    // The page and its scripts hold no data: they load without the token (the page sends it itself).
    const page = await get(`${admin.url}/`).catch(() => undefined);
    assert.equal(page, undefined, "the page is HTML, not JSON");
    for (const path of ["/", "/assets/dashboard.js", "/assets/uPlot.iife.min.js"]) {
      const res = await fetch(`${admin.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'self'/);
      await res.arrayBuffer();
    }
    assert.equal((await fetch(`${admin.url}/assets/__proto__`)).status, 401, "only the page's own files are open");
    // The path that decides whether a token is needed is the one routed: dot segments cannot reach the JSON.
    for (const path of ["/assets/../api/snapshot", "/assets/%2e%2e/api/snapshot", "/assets/x/../../api/config", "/assets/..\\api/explain?service=orders"]) {
      const raw = await get(`${admin.url}${path}`.replace(/^http:\/\/[^/]+/, admin.url), { rawPath: path });
      assert.equal(raw.status, 401, path);
    }
    // A token stands in for the Host check: a proxy in front may send its own name.
    assert.equal((await get(`${admin.url}/api/snapshot`, { headers: { authorization: `Bearer ${token}`, host: "admin.internal" } })).status, 200);
  });

  it("refuses to listen beyond loopback without a token, and bad options, with errors that never quote the token", async () => {
    await assert.rejects(startAdmin(mesh, { port: 0, host: "0.0.0.0" }), (err) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /token/.test(err.message));
    await assert.rejects(startAdmin(mesh, { port: 0, token: "short-secret" }), (err) => isMeshError(err, "ERR_INVALID_ARGUMENT") && !err.message.includes("short-secret"));
    await assert.rejects(startAdmin(mesh, { port: 70000 }), (err) => isMeshError(err, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(startAdmin(mesh, { port: 0, verbose: true } as never), (err) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /verbose/.test(err.message));
  });

  it("shows services whose names look like secrets' in full, listens on [::1], and answers 503 once the mesh is closed", async () => {
    const registry = new MockRegistry({ "auth-token-issuer": [{ address: "127.0.0.1", port: 1 }] });
    const other = createMesh({ registry });
    other.client("auth-token-issuer");
    await using admin = await startAdmin(other, { port: 0, host: "[::1]" });
    assert.match(admin.url, /^http:\/\/\[::1\]:\d+$/);
    const { json } = await get<MeshSnapshot>(`${admin.url}/api/snapshot`);
    const service = json.services.find((s) => s.name === "auth-token-issuer");
    assert.equal(service?.status, "known");
    assert.ok(!JSON.stringify(json).includes("<redacted>"), JSON.stringify(json));
    await other.close();
    const closed = await get(`${admin.url}/api/explain?service=auth-token-issuer`);
    assert.equal(closed.status, 503);
    assert.equal(closed.json.error?.code, "ERR_MESH_CLOSED");
  });

  it("says so when the port is taken, and listens on a token-protected host other than loopback", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as AddressInfo;
    await assert.rejects(startAdmin(mesh, { port }), (err) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /EADDRINUSE/.test(err.message));
    taken.close();
    await using admin = await startAdmin(mesh, { port: 0, host: "0.0.0.0", token: "another-token-long-enough" });
    assert.match(admin.url, /^http:\/\/0\.0\.0\.0:\d+$/);
  });

  it("folds bursts of the same event per source, keeps a bounded feed, and stops listening when closed", async () => {
    const admin = await startAdmin(mesh, { port: 0, events: 3 });
    mesh.emit("config_applied", { service: "orders", policy: "round_robin", version: 1 });
    // Two upstreams refusing retries together, interleaved: one entry each, and the config event stays.
    for (let i = 0; i < 5; i++) for (const service of ["a", "b"]) mesh.emit("retry_budget_exhausted", { service });
    let events = (await get(`${admin.url}/api/events`)).json.events ?? [];
    assert.deepEqual(events.map((e) => [e.type, e.service, e.count]), [["config_applied", "orders", 1], ["retry_budget_exhausted", "a", 5], ["retry_budget_exhausted", "b", 5]]);
    assert.deepEqual(((await get(`${admin.url}/api/events?since=0&limit=1`)).json.events ?? []).map((e) => e.type), ["config_applied"]);
    // Denials fold per status and caller, keeping the latest detail: one 400 does not hide fifty 403s.
    mesh.emit("inbound_denied", { status: 400, reason: "absolute-form target", caller: undefined, method: "GET", path: undefined });
    for (let i = 0; i < 3; i++) mesh.emit("inbound_denied", { status: 403, reason: `intention denies ${String(i)}`, caller: "spiffe://x/ns/default/dc/dc1/svc/attacker", method: "GET", path: "/" });
    events = (await get(`${admin.url}/api/events`)).json.events ?? [];
    const denied = events.filter((e) => e.type === "inbound_denied");
    assert.deepEqual(denied.map((e) => [e.detail.status, e.count, e.detail.reason]), [[400, 1, "absolute-form target"], [403, 3, "intention denies 2"]]);
    for (const state of ["open", "half-open", "closed", "open"] as const) mesh.emit("breaker_state_changed", { service: "orders", state });
    events = (await get(`${admin.url}/api/events`)).json.events ?? [];
    assert.deepEqual(events.map((e) => e.detail.state), ["half-open", "closed", "open"], "the oldest went");
    const listening = mesh.listenerCount("breaker_state_changed");
    await admin.close();
    await admin.close();
    assert.equal(mesh.listenerCount("breaker_state_changed"), listening - 1);
    await assert.rejects(get(`${admin.url}/api/events`), /ECONNREFUSED/);
  });
});

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, decodeHealth, isMeshError, parseIdentity, parseSpiffeId, pemIdentity, type Identity, type IntentionSource, type Mesh } from "proxyless";
import { FakeConsul, MockRegistry, TestCertificateAuthority } from "proxyless/testing";
import { consulSample } from "./helpers/consul-samples.ts";
import { TlsBackend, leafFor } from "./helpers/tls-backend.ts";
import { decodeLeaf, decodeRoots } from "../src/registry/consul/consul-connect.ts";
import { consulAuthorizer } from "../src/security/consul-authorizer.ts";
import { putEntry } from "./helpers/consul-entries.ts";


describe("mTLS with Consul Connect", () => {
  let fake: FakeConsul;
  let consul: ConsulRegistry;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];
  before(async () => {
    fake = await FakeConsul.start();
    consul = new ConsulRegistry({ url: fake.url, initialBackoffMs: 20 });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(backends.map((b) => b.close()));
    await fake.close();
  });

  /** The `orders` service: a server mesh with Connect identity, serving mTLS with the given authorization. */
  /** The reasons of the requests the `orders` servers refused (the bodies do not carry them). */
  const denied: string[] = [];

  async function ordersServer(authorize: Parameters<Mesh["inbound"]>[0]): Promise<TlsBackend> {
    const server = createMesh({ registry: consul, service: "orders", tls: { identity: consul.connectIdentity("orders") } });
    meshes.push(server);
    server.on("inbound_denied", (e) => denied.push(e.reason));
    const inbound = server.inbound(authorize);
    const backend = await TlsBackend.startWith("orders-0", await inbound.serverOptions(), inbound);
    inbound.attach(backend.server);
    backends.push(backend);
    return backend;
  }

  function caller(service: string, backend: TlsBackend): Mesh {
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backend.endpoint()] }), service, tls: { identity: consul.connectIdentity(service) }, resilience: { retries: false } });
    meshes.push(mesh);
    return mesh;
  }

  const get = async (mesh: Mesh, path: string, method: "GET" | "POST" = "GET"): Promise<{ status: number; text: string }> => {
    const res = await mesh.client("orders").request({ path, method });
    return { status: res.statusCode, text: await res.body.text() };
  };

  it("takes the identity from the agent's leaf certificate and CA roots, and follows a CA rotation", async () => {
    const source = consul.connectIdentity("web");
    try {
      const first = await source.ready();
      assert.equal(first.spiffeId, "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web");
      assert.equal(first.trustDomain, "11111111-2222-3333-4444-555555555555.consul");
      const rotated = new Promise<Identity>((resolve) => {
        const stop = source.subscribe((u) => {
          if ("identity" in u && u.identity.trustPems.length > 1 && u.identity.serialNumber !== first.serialNumber) {
            stop();
            resolve(u.identity);
          }
        });
      });
      await fake.rotateConnectCa();
      const next = await rotated;
      assert.notEqual(next.serialNumber, first.serialNumber, "a new leaf, from the new root");
      assert.equal(next.trustPems.length, 2, "the old root stays trusted while certificates from it live");
    } finally {
      await source.close();
    }
  });

  it("follows a leaf the agent renews before it expires", async () => {
    const shortLived = await FakeConsul.start({ leafValidForMs: 1500 });
    const source = new ConsulRegistry({ url: shortLived.url, initialBackoffMs: 20 }).connectIdentity("web");
    try {
      const first = await source.ready();
      const renewed = await new Promise<Identity>((resolve) => {
        const stop = source.subscribe((u) => {
          if ("identity" in u && u.identity.serialNumber !== first.serialNumber) {
            stop();
            resolve(u.identity);
          }
        });
      });
      assert.ok(renewed.notAfter.getTime() > first.notAfter.getTime(), "a later expiry");
    } finally {
      await source.close();
      await shortLived.close();
    }
  });

  it("lets a caller in when an intention allows it, and answers 403 when one denies it (the reason in the event)", async () => {
    await putEntry(fake, { Kind: "service-intentions", Name: "orders", Sources: [{ Name: "web", Action: "allow" }, { Name: "billing", Action: "deny" }] });
    const backend = await ordersServer({ authorize: "consul", cacheMs: 0 });
    const web = await get(caller("web", backend), "/v1/orders");
    assert.equal(web.status, 200);
    assert.equal((JSON.parse(web.text) as { service: string }).service, "web", "the handler reads the caller's identity");
    const billing = await get(caller("billing", backend), "/v1/orders");
    assert.equal(billing.status, 403);
    assert.equal(billing.text, "Forbidden\n");
    assert.match(denied.at(-1) ?? "", /^Consul: .*billing/);
  });

  it("evaluates L7 intentions on path and method (Consul's authorize counts them as deny)", async () => {
    // Consul refuses L7 intentions on a service whose protocol is not HTTP-like.
    await putEntry(fake, { Kind: "service-defaults", Name: "orders", Protocol: "http" });
    await putEntry(fake, {
      Kind: "service-intentions",
      Name: "orders",
      Sources: [{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/public", Methods: ["GET"] } }, { Action: "deny", HTTP: { PathPrefix: "/" } }] }],
    });
    const backend = await ordersServer({ authorize: "consul", cacheMs: 0 });
    const web = caller("web", backend);
    assert.equal((await get(web, "/public/menu")).status, 200);
    const admin = await get(web, "/admin");
    assert.equal(admin.status, 403);
    assert.match(denied.at(-1) ?? "", /permission 1 \(deny\)/);
    assert.equal((await get(web, "/public/menu", "POST")).status, 403, "the method is not allowed");
  });

  it("authorizes by a local policy", async () => {
    const backend = await ordersServer({ authorize: { allow: ["web"] } });
    assert.equal((await get(caller("web", backend), "/")).status, 200);
    const other = await get(caller("reports", backend), "/");
    assert.equal(other.status, 403);
    assert.match(denied.at(-1) ?? "", /not named by the local policy/);
  });

  it("registers an instance as Connect native, and its health answer marks it as an mTLS endpoint", async () => {
    const registration = await consul.register({ name: "natives", port: 7443, address: "127.0.0.9", connectNative: true });
    const res = await request(`${fake.url}/v1/health/service/natives`);
    const decoded = decodeHealth(await res.body.json());
    assert.deepEqual(decoded.endpoints.map((e) => [e.address, e.tls]), [["127.0.0.9", true]]);
    await registration.deregister();
  });

  it("parses the Connect samples in test/fixtures/consul-api", () => {
    const leaf = decodeLeaf(consulSample("connect-ca-leaf.json"));
    assert.equal(leaf.serviceUri, "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web");
    const roots = decodeRoots(consulSample("connect-ca-roots.json"));
    assert.ok(roots.pems.length >= 1);
    const agentRoots = decodeRoots(consulSample("connect-ca-roots.agent.json"));
    assert.equal(agentRoots.trustDomain, undefined, "the agent sample leaves out TrustDomain");
    // The documented leaf was valid for three days in May 2018, and was issued by another "Consul CA 7"
    // than the documented root (made four days later): the leaf and key parse, the chain rightly fails.
    assert.throws(
      () => parseIdentity(leaf.certPem, leaf.keyPem, roots.pems, roots.trustDomain, Date.parse("2018-05-22T00:00:00Z")),
      (err: unknown) => isMeshError(err, "ERR_INVALID_IDENTITY") && /does not chain/.test(err.message),
    );
    assert.throws(() => parseIdentity(leaf.certPem, leaf.keyPem, roots.pems), (err: unknown) => isMeshError(err, "ERR_INVALID_IDENTITY") && /expired/.test(err.message));
  });

  it("evaluates the documented L7 intention samples as Consul documents them", async () => {
    const sample = consulSample("config-service-intentions.json") as { Name: string; Sources: IntentionSource[] };
    let l4 = 0;
    const authorize = consulAuthorizer(
      { intentions: () => Promise.resolve(sample.Sources), authorize: () => Promise.resolve({ allowed: (l4++, true), reason: "L4" }) },
      sample.Name,
      { cacheMs: 0, local: () => ({ trustDomain: "td.consul", namespace: "default", partition: "default" }) },
    );
    const who = (service: string) => ({ ...parseSpiffeId(`spiffe://td.consul/ns/default/dc/dc1/svc/${service}`)!, spiffeId: `spiffe://td.consul/ns/default/dc/dc1/svc/${service}`, serialNumber: "01" });
    const call = (service: string, method: string, path: string) => authorize(who(service), { method, path, headers: {} });
    assert.equal((await call("nightly-reconciler", "POST", "/v1/reconcile-data")).allowed, true);
    assert.equal((await call("nightly-reconciler", "GET", "/v1/reconcile-data")).allowed, false, "only POST");
    assert.equal((await call("nightly-reconciler", "POST", "/v1/reconcile-data/x")).allowed, false, "PathExact");
    assert.equal(l4, 0, "L7 sources never reach Consul's L4 authorize");
    assert.equal((await call("web", "GET", "/anything")).allowed, true);
    assert.equal(l4, 1, "L4 sources do");
  });

  it("a mesh with a PEM identity talks to a Connect-identity server when both chain to the Connect CA", async () => {
    const ca: TestCertificateAuthority = await fake.connectCa();
    const leaf = await leafFor(ca, "web");
    const backend = await ordersServer({ authorize: { allow: ["web"] } });
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backend.endpoint()] }), tls: { identity: pemIdentity({ cert: leaf.certPem, key: leaf.keyPem, ca: ca.rootPem }) } });
    meshes.push(mesh);
    assert.equal((await get(mesh, "/")).status, 200);
  });
});

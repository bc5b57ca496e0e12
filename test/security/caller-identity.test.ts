import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { ConsulRegistry, createMesh, MeshError, parseSpiffeId, pemIdentity, type ConfigRejectedEvent, type InboundDeniedEvent, type LocalPolicy, type Mesh } from "proxyless";
import { FakeConsul, MockRegistry, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { certificateSpiffeId, uriSans } from "../../src/security/identity.ts";
import { TlsBackend } from "../helpers/tls-backend.ts";
import { putEntry } from "../helpers/consul-entries.ts";

// The attacker holds a certificate the server's trust bundle vouches for, whose SPIFFE ID names `web`
// somewhere else: another trust domain (a federated or migrating root in the bundle), another
// namespace or partition, or another case. None of them is the `web` a policy or intention means.

/** Every refusal's event: a refused caller's body says nothing, the reason goes to `inbound_denied`. */
const denied: InboundDeniedEvent[] = [];
/** The reason of the last refusal. */
const lastReason = (): string => denied.at(-1)?.reason ?? "";

/** Calls `backend` over mTLS with `leaf` (trusting `caPem`), and answers the status and body. */
async function call(backend: TlsBackend, leaf: TestCertificate, caPem: string | string[], path = "/", method: "GET" | "POST" = "GET"): Promise<{ status: number; text: string }> {
  const agent = new Agent({ connect: { cert: leaf.certPem, key: leaf.keyPem, ca: caPem, checkServerIdentity: () => undefined } });
  try {
    const res = await request(`https://127.0.0.1:${backend.port}${path}`, { method, dispatcher: agent });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await agent.close();
  }
}

describe("callers are full identities: the local policy", () => {
  let home: TestCertificateAuthority;
  let foreign: TestCertificateAuthority;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];
  const leaves = new Map<string, TestCertificate>();
  /** A leaf with this exact URI SAN, from `home` (or `foreign` for its trust domain). */
  const leaf = async (uri: string): Promise<TestCertificate> => {
    let l = leaves.get(uri);
    if (l === undefined) {
      l = await (uri.toLowerCase().startsWith(`spiffe://${foreign.trustDomain}`) ? foreign : home).issue({ uri });
      leaves.set(uri, l);
    }
    return l;
  };
  const bundle = (): string[] => [home.rootPem, foreign.rootPem];

  before(async () => {
    [home, foreign] = await Promise.all([TestCertificateAuthority.create({ trustDomain: "home.consul" }), TestCertificateAuthority.create({ trustDomain: "other.consul" })]);
  });
  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(meshes.map((m) => m.close()));
  });

  /** `orders` of home.consul, whose trust bundle also holds other.consul's root, behind `authorize`. */
  async function orders(authorize: LocalPolicy): Promise<TlsBackend> {
    const own = await leaf(home.spiffeId("orders"));
    const mesh = createMesh({ registry: new MockRegistry(), service: "orders", tls: { identity: pemIdentity({ cert: own.certPem, key: own.keyPem, ca: bundle() }) } });
    meshes.push(mesh);
    mesh.on("inbound_denied", (e) => denied.push(e));
    const inbound = mesh.inbound({ authorize });
    const backend = await TlsBackend.startWith("orders-0", await inbound.serverOptions(), inbound);
    backends.push(backend);
    return backend;
  }

  it("`web` is web of the mesh's own trust domain, namespace and partition, not web of another", async () => {
    const backend = await orders({ allow: ["web"] });
    const status = async (uri: string): Promise<number> => (await call(backend, await leaf(uri), bundle())).status;
    assert.equal(await status(home.spiffeId("web")), 200, "the local web");
    assert.equal(await status(home.spiffeId("web", { datacenter: "dc2" })), 200, "the local web of another datacenter: Consul names services in any datacenter");
    assert.equal(await status("spiffe://HOME.consul/ns/default/dc/dc1/svc/web"), 200, "the trust domain compares case-insensitively");
    assert.equal(await status(foreign.spiffeId("web")), 403, "web of another trust domain");
    assert.equal(await status(home.spiffeId("web", { namespace: "other" })), 403, "web of another namespace");
    assert.equal(await status(`spiffe://${home.trustDomain}/ap/eu/ns/default/dc/dc1/svc/web`), 403, "web of another partition");
    assert.equal(await status(home.spiffeId("WEB")), 403, "WEB is not web: SPIFFE paths compare case-sensitively");
  });

  it("`*` is any caller of the mesh's own trust domain, not of another", async () => {
    const backend = await orders({ allow: ["*"] });
    assert.equal((await call(backend, await leaf(home.spiffeId("anything", { namespace: "ops" })), bundle())).status, 200);
    const refused = await call(backend, await leaf(foreign.spiffeId("web")), bundle());
    assert.equal(refused.status, 403);
    assert.match(lastReason(), /not named by the local policy/);
  });

  it("takes full SPIFFE IDs: the trust domain case-insensitively, the path exactly", async () => {
    const backend = await orders({ allow: [foreign.spiffeId("web"), `spiffe://HOME.CONSUL/ns/ops/dc/dc1/svc/web`], deny: [home.spiffeId("web", { namespace: "ops", datacenter: "dc2" })] });
    const status = async (uri: string): Promise<number> => (await call(backend, await leaf(uri), bundle())).status;
    assert.equal(await status(foreign.spiffeId("web")), 200, "the foreign web it names");
    assert.equal(await status(home.spiffeId("web", { namespace: "ops" })), 200, "ops/web of home.consul, named with an upper-case trust domain");
    assert.equal(await status(home.spiffeId("web")), 403, "default/web is not named");
    assert.equal(await status(home.spiffeId("WEB", { namespace: "ops" })), 403, ".../svc/WEB is not .../svc/web");
    assert.equal(await status(home.spiffeId("web", { namespace: "OPS" })), 403, ".../ns/OPS/... is not .../ns/ops/...");
    assert.equal(await status(home.spiffeId("web", { namespace: "ops", datacenter: "dc2" })), 403, "the denied ID");
  });

  it("a SPIFFE ID in the policy also names its `/ap/default` spelling (the default partition, named), as Consul reads it", async () => {
    const denied = `spiffe://${home.trustDomain}/ns/default/dc/dc1/svc/web`;
    const backend = await orders({ deny: [denied], default: "allow" });
    const status = async (uri: string): Promise<number> => (await call(backend, await leaf(uri), bundle())).status;
    assert.equal(await status(denied), 403);
    assert.equal(await status(`spiffe://${home.trustDomain}/ap/default/ns/default/dc/dc1/svc/web`), 403, "the same identity, its partition named");
    assert.equal(await status(`spiffe://${home.trustDomain}/ap/eu/ns/default/dc/dc1/svc/web`), 200, "another partition is another identity");
  });

  it("refuses policy entries that are neither a service name, a valid SPIFFE ID nor `*`", () => {
    const mesh = createMesh({ registry: new MockRegistry(), service: "orders", tls: { identity: pemIdentity({ cert: leaves.get(home.spiffeId("orders"))?.certPem ?? "", key: leaves.get(home.spiffeId("orders"))?.keyPem ?? "", ca: bundle() }) } });
    meshes.push(mesh);
    for (const [entry, field] of [
      ["spiffe://home.consul/ns/default/dc/dc1/svc/../admin", "inbound.authorize.allow[1]"],
      ["spiffe://home.consul/ns/default/dc/dc1/svc/w%65b", "inbound.authorize.allow[1]"],
      ["spiffe://user@home.consul:443/ns/default/dc/dc1/svc/web", "inbound.authorize.allow[1]"],
      ["web/admin", "inbound.authorize.allow[1]"],
    ] as const) {
      assert.throws(
        () => mesh.inbound({ authorize: { allow: ["web", entry] } }),
        (err: unknown) => err instanceof MeshError && err.code === "ERR_INVALID_CONFIG" && err.details.field === field,
        entry,
      );
    }
  });
});

describe("callers are full identities: Consul intentions", () => {
  let fake: FakeConsul;
  let consul: ConsulRegistry;
  let ca: TestCertificateAuthority;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];

  before(async () => {
    // Default deny, as Consul with ACLs on: what no intention allows is refused.
    fake = await FakeConsul.start({ defaultIntentionPolicy: "deny" });
    consul = new ConsulRegistry({ url: fake.url, initialBackoffMs: 20 });
    ca = await fake.connectCa();
    // L7 intentions need an L7 protocol (Consul refuses them on tcp, its default).
    await putEntry(fake, { Kind: "service-defaults", Name: "orders", Protocol: "http" });
  });
  after(async () => {
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(meshes.map((m) => m.close()));
    await fake.close();
  });

  async function putIntentions(sources: unknown[]): Promise<void> {
    await putEntry(fake, { Kind: "service-intentions", Name: "orders", Sources: sources });
  }

  /** `orders` with its Connect identity, authorizing by intentions (never cached), and the config_rejected events it sends. */
  async function orders(): Promise<{ backend: TlsBackend; rejected: ConfigRejectedEvent[] }> {
    const mesh = createMesh({ registry: consul, service: "orders", tls: { identity: consul.connectIdentity("orders") } });
    meshes.push(mesh);
    const rejected: ConfigRejectedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    mesh.on("inbound_denied", (e) => denied.push(e));
    const inbound = mesh.inbound({ authorize: "consul", cacheMs: 0 });
    const backend = await TlsBackend.startWith("orders-0", await inbound.serverOptions(), inbound);
    backends.push(backend);
    return { backend, rejected };
  }

  const as = async (backend: TlsBackend, uri: string, path = "/", method: "GET" | "POST" = "GET"): Promise<{ status: number; text: string }> =>
    call(backend, await ca.issue({ uri }), ca.rootPem, path, method);
  const id = (service: string, where: { readonly namespace?: string; readonly partition?: string } = {}): string =>
    `spiffe://${ca.trustDomain}${where.partition === undefined ? "" : `/ap/${where.partition}`}/ns/${where.namespace ?? "default"}/dc/dc1/svc/${service}`;

  it("an L7 source `web` does not let in web of another trust domain, namespace or partition", async () => {
    await putIntentions([{ Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] }]);
    const { backend } = await orders();
    assert.equal((await as(backend, id("web"))).status, 200, "the local web");
    const foreign = await as(backend, "spiffe://other.consul/ns/default/dc/dc1/svc/web");
    assert.equal(foreign.status, 403, "web of another trust domain, though a root of the bundle signed it");
    assert.match(lastReason(), /trust domain/);
    assert.equal((await as(backend, id("web", { namespace: "other" }))).status, 403, "web of another namespace");
    assert.equal((await as(backend, id("web", { partition: "eu" }))).status, 403, "web of another partition");
    assert.equal((await as(backend, id("WEB"))).status, 403, "WEB is not web");
  });

  it("honours Namespace and Partition on sources, the most specific source deciding", async () => {
    await putIntentions([
      { Name: "*", Namespace: "*", Permissions: [{ Action: "deny", HTTP: { PathPrefix: "/" } }] },
      { Name: "*", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/public" } }] },
      { Name: "web", Namespace: "ops", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] },
      { Name: "web", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/", Methods: ["GET"] } }] },
      { Name: "web", Partition: "eu", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/eu" } }] },
    ]);
    const { backend } = await orders();
    const status = async (uri: string, path: string, method: "GET" | "POST" = "GET"): Promise<number> => (await as(backend, uri, path, method)).status;
    assert.equal(await status(id("web", { namespace: "ops" }), "/admin", "POST"), 200, "ops/web: its own source");
    assert.equal(await status(id("web"), "/admin"), 200, "default/web: GET allowed by the default-namespace source");
    assert.equal(await status(id("web"), "/admin", "POST"), 403, "default/web: not the ops source's POST");
    assert.equal(await status(id("billing"), "/public/menu"), 200, "default/billing: the `*` of its namespace");
    assert.equal(await status(id("billing"), "/admin"), 403);
    assert.equal(await status(id("billing", { namespace: "ops" }), "/public/menu"), 403, "ops/billing: only `*/*` names it, and it denies");
    assert.equal(await status(id("web", { partition: "eu" }), "/eu/x"), 200, "eu partition's web: its own source");
    assert.equal(await status(id("web", { partition: "eu" }), "/admin"), 403);
  });

  it("refuses Peer and SamenessGroup sources explicitly: they never match, and each is reported once", async () => {
    await putIntentions([
      { Name: "web", Peer: "cluster-2", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] },
      { Name: "billing", SamenessGroup: "shop", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] },
    ]);
    const { backend, rejected } = await orders();
    for (let i = 0; i < 3; i++) {
      assert.equal((await as(backend, id("web"))).status, 403, "the local web is not the peer's web");
      assert.equal((await as(backend, id("billing"))).status, 403, "billing is not matched through a sameness group");
    }
    assert.deepEqual(
      rejected.map((e) => [e.service, e.error.code, e.error.details.field]),
      [
        ["orders", "ERR_INVALID_CONFIG", "service-intentions 'orders' Sources[0].Peer"],
        ["orders", "ERR_INVALID_CONFIG", "service-intentions 'orders' Sources[1].SamenessGroup"],
      ],
      "reported once each, though the intentions were read six times",
    );
    assert.match(rejected[0]?.error.message ?? "", /cannot verify a peer's trust bundle/);
  });

  it("a caller a sameness group may name is refused rather than let in by a less specific L7 source", async () => {
    await putIntentions([
      { Name: "web", SamenessGroup: "shop", Action: "deny" },
      { Name: "*", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/" } }] },
    ]);
    const { backend } = await orders();
    const web = await as(backend, id("web"));
    assert.equal(web.status, 403);
    assert.match(lastReason(), /sameness group 'shop'/);
    assert.equal((await as(backend, id("billing"))).status, 200, "others: the `*` source");
  });
});

describe("callers are full identities: reading the SPIFFE ID", () => {
  it("parses Consul's layouts, with and without a partition; the trust domain lower-cased, the path as written", () => {
    assert.deepEqual(parseSpiffeId("SPIFFE://TD.Consul/ns/Ops/dc/dc1/svc/Web"), { trustDomain: "td.consul", path: "/ns/Ops/dc/dc1/svc/Web", service: "Web", namespace: "Ops", partition: "default", datacenter: "dc1" });
    assert.deepEqual(parseSpiffeId("spiffe://td.consul/ap/eu/ns/default/dc/dc1/svc/web"), { trustDomain: "td.consul", path: "/ap/eu/ns/default/dc/dc1/svc/web", service: "web", namespace: "default", partition: "eu", datacenter: "dc1" });
    assert.equal(parseSpiffeId("spiffe://cluster.local/ns/default/sa/orders")?.service, undefined, "another layout: no Consul parts");
  });

  it("refuses IDs the SPIFFE spec refuses, so none can pass for another", () => {
    for (const id of [
      "spiffe://td.consul/ns/default/dc/dc1/svc/web/",
      "spiffe://td.consul/ns/default/dc/dc1/svc/./web",
      "spiffe://td.consul/ns/default/dc/dc1/svc/w%65b",
      "spiffe://td.consul/ns/default/dc/dc1/svc/web?x=1",
      "spiffe://td.consul/ns/default/dc/dc1/svc/web#x",
      "spiffe://td.consul/ns//dc/dc1/svc/web",
      "spiffe://user@td.consul/ns/default/dc/dc1/svc/web",
      "spiffe://td.consul:8443/ns/default/dc/dc1/svc/web",
      "spiffe:///ns/default/dc/dc1/svc/web",
      `spiffe://td.consul/${"a".repeat(2048)}`,
    ]) {
      assert.equal(parseSpiffeId(id), undefined, id);
    }
  });

  it("a certificate with several SPIFFE IDs has none; a quoted SAN value is read whole", () => {
    assert.equal(certificateSpiffeId("URI:spiffe://td/ns/default/dc/dc1/svc/web"), "spiffe://td/ns/default/dc/dc1/svc/web");
    assert.equal(certificateSpiffeId("URI:spiffe://td/ns/default/dc/dc1/svc/web, URI:spiffe://td/ns/default/dc/dc1/svc/admin"), undefined);
    // Node writes a value holding ", " as a JSON string: one SAN, which is not a valid SPIFFE ID.
    const quoted = 'URI:"spiffe://evil/x\\u002c URI:spiffe://td/ns/default/dc/dc1/svc/web"';
    assert.deepEqual(uriSans(quoted), ["spiffe://evil/x, URI:spiffe://td/ns/default/dc/dc1/svc/web"]);
    assert.equal(parseSpiffeId(certificateSpiffeId(quoted) ?? ""), undefined);
  });
});

describe("servers are full identities too: the SPIFFE path is compared case-sensitively", () => {
  it("refuses a server presenting .../svc/ORDERS (or .../ns/DEFAULT/...) for orders, and takes an upper-case trust domain", async () => {
    const ca = await TestCertificateAuthority.create({ trustDomain: "home.consul" });
    const web = await ca.issue({ uri: ca.spiffeId("web") });
    const uris = [
      "spiffe://home.consul/ns/default/dc/dc1/svc/ORDERS",
      "spiffe://home.consul/ns/DEFAULT/dc/dc1/svc/orders",
      "spiffe://HOME.CONSUL/ns/default/dc/dc1/svc/inventory",
      "spiffe://HOME.CONSUL/ns/default/dc/dc1/svc/orders",
    ];
    const servers = await Promise.all(uris.map(async (uri, i) => TlsBackend.start(`server-${i}`, await ca.issue({ uri }), ca.rootPem)));
    const [upperService, upperNamespace, upperTrustDomain, pinnedUpperTrustDomain] = servers as [TlsBackend, TlsBackend, TlsBackend, TlsBackend];
    const pinned = "spiffe://home.consul/ns/default/dc/dc1/svc/orders";
    try {
      const mesh = createMesh({
        registry: new MockRegistry({
          orders: [upperService.endpoint()],
          "orders-pinned": [upperNamespace.endpoint({ identity: pinned })],
          inventory: [upperTrustDomain.endpoint()],
          "inventory-pinned": [pinnedUpperTrustDomain.endpoint({ identity: pinned })],
        }),
        service: "web",
        tls: { identity: pemIdentity({ cert: web.certPem, key: web.keyPem, ca: ca.rootPem }) },
        resilience: { retries: false },
      });
      try {
        for (const service of ["orders", "orders-pinned"]) {
          await assert.rejects(
            mesh.client(service).request({ path: "/" }).then((r) => r.body.text()),
            (err: unknown) => err instanceof MeshError && err.code === "ERR_PEER_IDENTITY" && err.details.reason === "wrong-identity",
            service,
          );
        }
        assert.equal(upperService.requests + upperNamespace.requests, 0, "nothing reached the impostors");
        for (const service of ["inventory", "inventory-pinned"]) {
          const res = await mesh.client(service).request({ path: "/" });
          await res.body.text();
          assert.equal(res.statusCode, 200, `${service}: the trust domain compares case-insensitively`);
        }
      } finally {
        await mesh.close();
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

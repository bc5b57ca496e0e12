import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConsulRegistry, createMesh, type Identity, type InboundDeniedEvent, type InboundOptions, type Mesh, type Registry } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { TlsBackend } from "../helpers/tls-backend.ts";
import { rawMtls, type RawAnswer } from "../helpers/raw-mtls.ts";
import { putEntry } from "../helpers/consul-entries.ts";

// A refused caller probes the server: what do 400, 403 and 503 answers tell it about the server's
// intentions, policy, addresses and identities? Nothing: the detail goes to the mesh's inbound_denied event.


/** Words of Consul's intentions and the local policy, and the shape of addresses and SPIFFE IDs. */
const INTERNALS = [
  /spiffe:/i,
  /\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/,
  /:\d{2,5}\b/,
  /localhost/i,
  /\b(Sources|Permissions|PathPrefix|PathExact|PathRegex|Methods|Header|Action|Precedence)\b/,
  /intention|permission|policy|consul|authoriz|ECONN|\bweb\b|\borders\b|\bnotes\b/i,
];

function assertSaysNothing(answer: RawAnswer, status: number): void {
  assert.equal(answer.status, status);
  assert.equal(answer.headers["x-proxyless-denied"], "1");
  const headers = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => name !== "date"));
  const everything = `${answer.body}\n${JSON.stringify(headers)}`;
  for (const pattern of INTERNALS) assert.doesNotMatch(everything, pattern);
}

describe("what a refused caller learns from mesh.inbound()'s 400, 403 and 503 (nothing), and what the event says", () => {
  let fake: FakeConsul;
  let consul: ConsulRegistry;
  let web: Identity;
  const meshes: Mesh[] = [];
  const backends: TlsBackend[] = [];
  const cleanup: (() => Promise<void>)[] = [];

  before(async () => {
    fake = await FakeConsul.start();
    consul = new ConsulRegistry({ url: fake.url, initialBackoffMs: 20 });
    // L7 intentions need an L7 protocol (Consul refuses them on tcp, its default).
    await putEntry(fake, { Kind: "service-defaults", Name: "orders", Protocol: "http" });
    await putEntry(fake, {
      Kind: "service-intentions",
      Name: "orders",
      Sources: [{ Name: "web", Permissions: [{ Action: "deny", HTTP: { PathPrefix: "/admin" } }, { Action: "allow", HTTP: { PathPrefix: "/" } }] }],
    });
    await putEntry(fake, { Kind: "service-intentions", Name: "notes", Sources: [{ Name: "web", Action: "deny" }] });
    const source = consul.connectIdentity("web");
    cleanup.push(() => source.close());
    web = await source.ready();
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(cleanup.map((c) => c()));
    await fake.close();
  });

  async function server(service: string, options: InboundOptions, registry: Registry = consul): Promise<{ backend: TlsBackend; denied: InboundDeniedEvent[] }> {
    const mesh = createMesh({ registry, service, tls: { identity: consul.connectIdentity(service) } });
    meshes.push(mesh);
    const denied: InboundDeniedEvent[] = [];
    mesh.on("inbound_denied", (e) => denied.push(e));
    const inbound = mesh.inbound(options);
    const backend = await TlsBackend.startWith(`${service}-0`, await inbound.serverOptions(), inbound);
    inbound.attach(backend.server);
    backends.push(backend);
    return { backend, denied };
  }

  it("an L7 intention's deny: 403 with no intention, permission or identity in it; the event names the permission", async () => {
    const { backend, denied } = await server("orders", { authorize: "consul" });
    assertSaysNothing(await rawMtls(backend.port, web, "/admin/users?token=s3cret"), 403);
    assert.equal(denied.length, 1);
    const [event] = denied as [InboundDeniedEvent];
    assert.equal(event.status, 403);
    assert.match(event.reason, /L7 intention web => orders, permission 0 \(deny\)/);
    assert.equal(event.caller, web.spiffeId);
    assert.equal(event.method, "GET");
    assert.equal(event.path, "/admin/users", "the path as authorized, without the query");
    assert.doesNotMatch(JSON.stringify(event), /s3cret/, "the query is not reported");
  });

  it("Consul's L4 deny: 403 saying nothing; the event carries Consul's reason", async () => {
    const { backend, denied } = await server("notes", { authorize: "consul" });
    assertSaysNothing(await rawMtls(backend.port, web, "/"), 403);
    assert.match(denied[0]?.reason ?? "", /^Consul: /);
    assert.equal(denied[0]?.caller, web.spiffeId);
  });

  it("the local policy's deny: 403 saying nothing; the event says the caller is not named", async () => {
    const { backend, denied } = await server("orders", { authorize: { allow: ["billing"] } });
    assertSaysNothing(await rawMtls(backend.port, web, "/"), 403);
    assert.match(denied[0]?.reason ?? "", /not named by the local policy/);
  });

  it("an authorizer that fails (Consul unreachable): 503 with no address; the event carries the error", async () => {
    const gone = await FakeConsul.start();
    const unreachable = new ConsulRegistry({ url: gone.url, initialBackoffMs: 20 });
    await gone.close();
    const { backend, denied } = await server("orders", { authorize: "consul" }, unreachable);
    assertSaysNothing(await rawMtls(backend.port, web, "/"), 503);
    assert.equal(denied[0]?.status, 503);
    assert.ok(denied[0]?.error instanceof Error, "the failure itself");
    assert.match(denied[0]?.reason ?? "", /the authorizer failed/);
  });

  it("an authorizer function that throws with an address in its message: 503 saying nothing", async () => {
    const { backend, denied } = await server("orders", {
      authorize: () => {
        throw new Error("connect ECONNREFUSED 10.0.0.7:8502 (policy store)");
      },
    });
    assertSaysNothing(await rawMtls(backend.port, web, "/"), 503);
    assert.match(denied[0]?.error?.message ?? "", /10\.0\.0\.7:8502/);
  });

  it("a refused request target: 400 saying nothing about the server; the event says what was wrong", async () => {
    const { backend, denied } = await server("orders", { authorize: "consul" });
    assertSaysNothing(await rawMtls(backend.port, web, "/public/..;/admin"), 400);
    assert.match(denied[0]?.reason ?? "", /;parameters/);
    assert.equal(denied[0]?.path, "/public/..;/admin");
  });
});

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { FakeConsul } from "proxyless/testing";
import { consulSample } from "./helpers/consul-samples.ts";

const keys = (value: unknown): string[] => Object.keys(value as object).sort();

interface Leaf {
  SerialNumber: string;
  CertPEM: string;
  PrivateKeyPEM: string;
  ServiceURI: string;
  ValidAfter: string;
  ValidBefore: string;
  ModifyIndex: number;
}
interface Roots {
  ActiveRootID: string;
  TrustDomain?: string;
  Roots: { ID: string; RootCert: string; Active: boolean }[];
}

async function call(fake: FakeConsul, method: "GET" | "PUT" | "POST", path: string, options: { body?: unknown; token?: string } = {}) {
  const res = await request(`${fake.url}${path}`, {
    method,
    headers: options.token === undefined ? {} : { "x-consul-token": options.token },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

describe("FakeConsul Connect CA, leaf certificates and authorize", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start();
  });
  after(() => fake.close());

  it("serves CA roots in the documented shapes, as real certificates with the trust domain's SPIFFE ID", async () => {
    const roots = (await call(fake, "GET", "/v1/connect/ca/roots")).json() as Roots;
    assert.deepEqual(keys(roots), keys(consulSample("connect-ca-roots.json")));
    assert.deepEqual(keys(roots.Roots[0]), keys((consulSample("connect-ca-roots.json") as Roots).Roots[0]));
    assert.equal(roots.TrustDomain, "11111111-2222-3333-4444-555555555555.consul");
    const root = new X509Certificate(roots.Roots[0]!.RootCert);
    assert.ok(root.ca);
    assert.equal(root.subjectAltName, `URI:spiffe://${roots.TrustDomain}`);
    assert.equal(roots.ActiveRootID, root.fingerprint.toLowerCase());

    const agent = await call(fake, "GET", "/v1/agent/connect/ca/roots");
    assert.deepEqual(keys(agent.json()), keys(consulSample("connect-ca-roots.agent.json")));
    assert.ok(Number(agent.headers["x-consul-index"]) >= 1, "the agent roots endpoint blocks, so it carries the index");

    const pem = await call(fake, "GET", "/v1/connect/ca/roots?pem=true");
    assert.equal(pem.headers["content-type"], "application/pem-certificate-chain");
    assert.equal(new X509Certificate(pem.text).fingerprint, root.fingerprint);
  });

  it("issues a leaf in the documented shape that chains to the root and names the service", async () => {
    const res = await call(fake, "GET", "/v1/agent/connect/ca/leaf/web");
    const leaf = res.json() as Leaf;
    assert.deepEqual(keys(leaf), keys(consulSample("connect-ca-leaf.json")));
    const cert = new X509Certificate(leaf.CertPEM);
    const roots = (await call(fake, "GET", "/v1/connect/ca/roots")).json() as Roots;
    assert.ok(cert.verify(new X509Certificate(roots.Roots[0]!.RootCert).publicKey), "signed by the active root");
    assert.equal(leaf.ServiceURI, "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web");
    assert.equal(cert.subjectAltName, `URI:${leaf.ServiceURI}`);
    // As Consul issues them: valid from a minute ago, for 72 hours from now.
    assert.equal(new Date(leaf.ValidBefore).getTime() - new Date(leaf.ValidAfter).getTime(), 72 * 3_600_000 + 60_000);
    const again = (await call(fake, "GET", "/v1/agent/connect/ca/leaf/web")).json() as Leaf;
    assert.equal(again.SerialNumber, leaf.SerialNumber, "the same leaf until it must change");
  });

  it("gives concurrent first requests for a leaf the same certificate", async () => {
    const leaves = await Promise.all([1, 2, 3].map(() => call(fake, "GET", "/v1/agent/connect/ca/leaf/billing")));
    assert.equal(new Set(leaves.map((l) => (l.json() as Leaf).SerialNumber)).size, 1);
  });

  it("ends a blocked leaf query with a new certificate when the CA rotates, and the new root joins the old", async () => {
    const first = await call(fake, "GET", "/v1/agent/connect/ca/leaf/web");
    const index = String(first.headers["x-consul-index"]);
    const blocked = call(fake, "GET", `/v1/agent/connect/ca/leaf/web?index=${index}&wait=30s`);
    const blockedRoots = call(fake, "GET", `/v1/agent/connect/ca/roots?index=${String((await call(fake, "GET", "/v1/agent/connect/ca/roots")).headers["x-consul-index"])}&wait=30s`);
    await fake.rotateConnectCa();
    const rotated = (await blocked).json() as Leaf;
    assert.notEqual(rotated.SerialNumber, (first.json() as Leaf).SerialNumber);
    assert.ok(rotated.ModifyIndex > Number(index));
    const roots = (await blockedRoots).json() as Roots;
    assert.equal(roots.Roots.length, 2);
    const active = roots.Roots.find((r) => r.Active);
    assert.equal(active?.ID, roots.ActiveRootID);
    assert.ok(new X509Certificate(rotated.CertPEM).verify(new X509Certificate(active.RootCert).publicKey), "the new leaf chains to the new root");
  });

  it("authorizes by the service-intentions entries: allow, deny, L7 counts as deny, default allow, any trust domain", async () => {
    const request = consulSample("connect-authorize.request.json") as { Target: string; ClientCertURI: string };
    // L7 intentions (Permissions) need an HTTP-like destination, as Consul's graph validation checks.
    assert.equal((await call(fake, "PUT", "/v1/config", { body: { Kind: "service-defaults", Name: "api", Protocol: "http" } })).text, "true");
    const entry = await call(fake, "PUT", "/v1/config", { body: consulSample("config-service-intentions.json") });
    assert.equal(entry.text, "true");
    const ca = await fake.connectCa();
    const authorize = async (source: string, target = "api") => {
      const res = await call(fake, "POST", "/v1/agent/connect/authorize", { body: { ...request, Target: target, ClientCertURI: ca.spiffeId(source) } });
      assert.equal(res.status, 200, res.text);
      const body = res.json() as { Authorized: boolean };
      assert.deepEqual(keys(body), keys(consulSample("connect-authorize.response.json")));
      return body.Authorized;
    };
    assert.equal(await authorize("web"), true);
    assert.equal(await authorize("hackathon-project"), false);
    assert.equal(await authorize("nightly-reconciler"), false, "authorize is L4: an intention with Permissions counts as deny");
    assert.equal(await authorize("stranger"), true, "no intention: the default (allow, ACLs off)");
    // Consul does not check the trust domain here ("Note that we DON'T explicitly validate the
    // trust-domain"): the intentions decide, by service name.
    const foreign = await call(fake, "POST", "/v1/agent/connect/authorize", { body: { Target: "api", ClientCertURI: "spiffe://other.consul/ns/default/dc/dc1/svc/web" } });
    assert.equal((foreign.json() as { Authorized: boolean }).Authorized, true);
    const documented = await call(fake, "POST", "/v1/agent/connect/authorize", { body: request });
    assert.equal(documented.status, 200);
    assert.equal((await call(fake, "POST", "/v1/agent/connect/authorize", { body: { ClientCertURI: ca.spiffeId("web") } })).status, 400);
  });

  it("answers the intention queries in the documented shapes", async () => {
    const exact = await call(fake, "GET", "/v1/connect/intentions/exact?source=web&destination=api");
    assert.equal(exact.status, 200);
    assert.deepEqual(keys(exact.json()), keys(consulSample("connect-intentions-exact.json")));
    assert.equal((exact.json() as { Precedence: number }).Precedence, 9);
    assert.equal((await call(fake, "GET", "/v1/connect/intentions/exact?source=nobody&destination=api")).status, 404);
    assert.deepEqual((await call(fake, "GET", "/v1/connect/intentions/check?source=hackathon-project&destination=api")).json(), { Allowed: false });
    assert.deepEqual(keys((await call(fake, "GET", "/v1/connect/intentions/check?source=web&destination=api")).json()), keys(consulSample("connect-intentions-check.json")));
    const match = (await call(fake, "GET", "/v1/connect/intentions/match?by=destination&name=api")).json() as Record<string, { SourceName: string }[]>;
    assert.deepEqual(match.api?.map((i) => i.SourceName).sort(), ["hackathon-project", "nightly-reconciler", "web"]);
    // The documented match sample lacks Precedence, which the exact sample (and Consul's Intention) has.
    const documented = Object.keys((consulSample("connect-intentions-match.json") as Record<string, object[]>).web?.[0] ?? {});
    const web = (await call(fake, "GET", "/v1/connect/intentions/match?by=source&name=web")).json() as Record<string, object[]>;
    for (const key of documented) assert.ok(key in (web.web?.[0] ?? {}), `match results carry ${key}`);
  });
});

describe("FakeConsul leaf renewal before expiry", () => {
  it("renews a short-lived leaf at 80% of its life and ends the blocked query with it", async () => {
    const fake = await FakeConsul.start({ leafValidForMs: 1500 });
    try {
      const first = await call(fake, "GET", "/v1/agent/connect/ca/leaf/orders");
      const renewed = await call(fake, "GET", `/v1/agent/connect/ca/leaf/orders?index=${String(first.headers["x-consul-index"])}&wait=20s`);
      const [a, b] = [first.json() as Leaf, renewed.json() as Leaf];
      assert.notEqual(b.SerialNumber, a.SerialNumber);
      assert.ok(new Date(b.ValidBefore) > new Date(a.ValidBefore));
    } finally {
      await fake.close();
    }
  });
});

describe("FakeConsul ACLs", () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await FakeConsul.start({ aclTokens: { reader: { serviceRead: ["orders"] }, writer: { serviceWrite: [""] } } });
    const res = await call(fake, "PUT", "/v1/agent/service/register", { token: "writer", body: { Name: "orders", Port: 8080 } });
    assert.equal(res.status, 200, res.text);
    assert.equal((await call(fake, "PUT", "/v1/agent/service/register", { token: "writer", body: { Name: "billing", Port: 8081 } })).status, 200);
  });
  after(() => fake.close());

  it("refuses what a token may not do with 403 and Consul's wording, and allows what it may", async () => {
    // Reads of a service the token may not see are filtered to [], not refused (see the contract tests).
    const anonymous = await call(fake, "GET", "/v1/agent/service/orders");
    assert.equal(anonymous.status, 403);
    assert.match(anonymous.text, /^Permission denied: .* lacks permission 'service:read' on "orders"/);
    assert.equal(anonymous.headers["x-consul-default-acl-policy"], "deny");
    const unknown = await call(fake, "GET", "/v1/health/service/orders", { token: "guess" });
    assert.deepEqual([unknown.status, unknown.text], [403, "ACL not found"]);
    assert.equal(((await call(fake, "GET", "/v1/health/service/orders", { token: "reader" })).json() as unknown[]).length, 1);
    const hidden = await call(fake, "GET", "/v1/health/service/billing", { token: "reader" });
    assert.deepEqual([hidden.status, hidden.json(), hidden.headers["x-consul-results-filtered-by-acls"]], [200, [], "true"]);
    const register = await call(fake, "PUT", "/v1/agent/service/register", { token: "reader", body: { Name: "orders", Port: 9 } });
    assert.equal(register.status, 403);
    assert.match(register.text, /'service:write' on "orders"/);
    const bearer = await request(`${fake.url}/v1/health/service/orders`, { headers: { authorization: "Bearer reader" } });
    assert.equal(bearer.statusCode, 200, "Authorization: Bearer works too");
    await bearer.body.dump();
  });

  it("filters lists down to what the token may read", async () => {
    const services = (await call(fake, "GET", "/v1/catalog/services", { token: "reader" })).json();
    assert.deepEqual(Object.keys(services as object), ["orders"]);
    const agent = (await call(fake, "GET", "/v1/agent/services", { token: "reader" })).json();
    assert.deepEqual(Object.keys(agent as object), ["orders"]);
  });

  it("guards check updates, agent service reads and catalog registration too", async () => {
    assert.equal((await call(fake, "PUT", "/v1/agent/service/register", { token: "writer", body: { Name: "ttl", Check: { TTL: "30s" } } })).status, 200);
    assert.equal((await call(fake, "PUT", "/v1/agent/check/pass/service:ttl")).status, 403);
    assert.equal((await call(fake, "PUT", "/v1/agent/check/pass/service:ttl", { token: "reader" })).status, 403);
    assert.equal((await call(fake, "PUT", "/v1/agent/check/pass/service:ttl", { token: "writer" })).status, 200);
    assert.equal((await call(fake, "GET", "/v1/agent/service/orders")).status, 403);
    assert.equal((await call(fake, "GET", "/v1/agent/service/orders", { token: "reader" })).status, 200);
    assert.equal((await call(fake, "PUT", "/v1/catalog/register", { token: "reader", body: { Node: "n1", Address: "10.0.0.1", Service: { Service: "orders" } } })).status, 403);
  });
});

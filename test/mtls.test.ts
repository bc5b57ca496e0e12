import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request as undiciRequest, Agent } from "undici";
import { createMesh, isMeshError, MeshError, pemIdentity, type Mesh, meshErrorOf } from "proxyless";
import { MockRegistry, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { Backend } from "./helpers/backend.ts";
import { TlsBackend, leafFor } from "./helpers/tls-backend.ts";

describe("mTLS on outgoing calls", () => {
  let ca: TestCertificateAuthority;
  let webLeaf: TestCertificate;
  let orders: TlsBackend;
  before(async () => {
    ca = await TestCertificateAuthority.create();
    webLeaf = await leafFor(ca, "web");
    orders = await TlsBackend.start("orders-0", await leafFor(ca, "orders"), ca.rootPem);
  });
  after(() => orders.close());

  const meshFor = (endpoints: Record<string, object[]>, extra: Partial<Parameters<typeof createMesh>[0]> = {}): Mesh =>
    createMesh({
      registry: new MockRegistry(endpoints as never),
      service: "web",
      tls: { identity: pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem }) },
      resilience: { retries: false },
      ...extra,
    });

  it("authenticates both ways: the server sees the caller's SPIFFE ID, the client checked the server's", async () => {
    const mesh = meshFor({ orders: [orders.endpoint()] });
    try {
      const res = await mesh.client("orders").request({ path: "/v1/orders" });
      const body = (await res.body.json()) as { caller: string; service: string };
      assert.equal(res.statusCode, 200);
      assert.equal(body.caller, ca.spiffeId("web"));
      assert.equal(body.service, "web");
      const viaFetch = await mesh.client("orders").fetch("/v1/orders");
      assert.equal(((await viaFetch.json()) as { service: string }).service, "web");
    } finally {
      await mesh.close();
    }
  });

  it("calls with and without a Host header of the service's name share one connection (no new handshake each time)", async () => {
    const before = orders.clientSerials.length;
    const mesh = meshFor({ orders: [orders.endpoint()] }, { pool: { connections: 1 } });
    try {
      for (let i = 0; i < 10; i++) {
        const res = await mesh.client("orders").request({ path: "/", ...(i % 2 === 0 ? {} : { headers: { host: "orders" } }) });
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
      assert.equal(orders.clientSerials.length - before, 1, "one TLS handshake for ten calls");
    } finally {
      await mesh.close();
    }
  });

  it("refuses a server with the wrong SPIFFE ID with ERR_PEER_IDENTITY, before any request data is sent", async () => {
    const impostor = await TlsBackend.start("impostor", await leafFor(ca, "payments"), ca.rootPem);
    const mesh = meshFor({ orders: [impostor.endpoint()] });
    try {
      await assert.rejects(mesh.client("orders").request({ path: "/secret", method: "POST", body: "card=4111" }), (err: unknown) => {
        assert.ok(err instanceof MeshError && err.code === "ERR_PEER_IDENTITY", String(err));
        assert.equal(err.details.reason, "wrong-identity");
        assert.deepEqual(err.details.presented, [ca.spiffeId("payments")]);
        return true;
      });
      assert.equal(impostor.requests, 0, "no request reached the impostor");
    } finally {
      await mesh.close();
      await impostor.close();
    }
  });

  it("refuses a server whose certificate comes from an untrusted CA, or has expired", async () => {
    const other = await TestCertificateAuthority.create({ trustDomain: ca.trustDomain });
    const untrusted = await TlsBackend.start("untrusted", await leafFor(other, "orders"), [ca.rootPem, other.rootPem]);
    const old = new Date(Date.now() - 10 * 86_400_000);
    const expired = await TlsBackend.start("expired", await leafFor(ca, "orders", { notBefore: old, notAfter: new Date(old.getTime() + 86_400_000) }), ca.rootPem);
    const mesh = meshFor({ orders: [untrusted.endpoint()], inventory: [expired.endpoint()] });
    try {
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_PEER_IDENTITY") && meshErrorOf(err)?.details.reason === "untrusted");
      await assert.rejects(mesh.client("inventory").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_PEER_IDENTITY") && meshErrorOf(err)?.details.reason === "expired");
      assert.equal(untrusted.requests + expired.requests, 0);
    } finally {
      await mesh.close();
      await Promise.all([untrusted.close(), expired.close()]);
    }
  });

  it("a client without a certificate, or with one from an untrusted CA, is refused by an mTLS server", async () => {
    const noCert = new Agent({ connect: { ca: ca.rootPem, rejectUnauthorized: true, servername: "orders", checkServerIdentity: () => undefined } });
    const before = orders.requests;
    await assert.rejects(undiciRequest(`https://127.0.0.1:${orders.port}/`, { dispatcher: noCert }).then((r) => r.body.text()));
    // Same trust domain, another CA: the client accepts the server, the server must refuse the client.
    const other = await TestCertificateAuthority.create({ trustDomain: ca.trustDomain });
    const stranger = await leafFor(other, "web");
    const strange = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint()] }), tls: { identity: pemIdentity({ cert: stranger.certPem, key: stranger.keyPem, ca: [other.rootPem, ca.rootPem] }) }, resilience: { retries: false } });
    try {
      await assert.rejects(strange.client("orders").request({ path: "/" }).then((r) => r.body.text()));
      assert.equal(orders.requests, before, "neither request reached the handler");
      assert.ok(orders.handshakeErrors.length >= 2, `the server refused both handshakes (${orders.handshakeErrors.length})`);
    } finally {
      await strange.close();
      await noCert.close();
    }
  });

  it("strict mode refuses a plaintext endpoint with ERR_TLS_REQUIRED and no I/O; permissive mode sends plaintext to it", async () => {
    const plain = await Backend.start("plain");
    try {
      const strict = meshFor({ legacy: [{ ...plain.endpoint, tls: false }] });
      await assert.rejects(strict.client("legacy").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_TLS_REQUIRED"));
      assert.equal(plain.accepted, 0, "no connection was made");
      await strict.close();
      const permissive = createMesh({
        registry: new MockRegistry({ legacy: [{ ...plain.endpoint, tls: false }], orders: [orders.endpoint()] }),
        tls: { identity: pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem }), mode: "permissive" },
      });
      const res = await permissive.client("legacy").request({ path: "/" });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
      const secure = await permissive.client("orders").request({ path: "/" });
      assert.equal(((await secure.body.json()) as { service: string }).service, "web", "endpoints not marked plaintext still get mTLS");
      await permissive.close();
    } finally {
      await plain.close();
    }
  });

  it("rotation under load fails no request; new connections use the new certificate", async () => {
    const identity = pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem });
    const mesh = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint()] }), service: "web", tls: { identity }, pool: { keepAliveTimeout: 50 } });
    const next = await leafFor(ca, "web");
    const nextSerial = next.serialNumber.replaceAll(":", "").toUpperCase();
    let failures = 0;
    let sent = 0;
    let rotated = false;
    try {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!rotated || !orders.clientSerials.some((s) => s.toUpperCase() === nextSerial)) {
            try {
              const res = await mesh.client("orders").request({ path: "/", reset: sent % 5 === 0 });
              await res.body.dump();
              if (res.statusCode !== 200) failures++;
            } catch {
              failures++;
            }
            sent++;
            if (sent === 100 && !rotated) {
              identity.update({ cert: next.certPem, key: next.keyPem, ca: ca.rootPem });
              rotated = true;
            }
          }
        }),
      );
      assert.equal(failures, 0, `${failures} of ${sent} failed`);
      assert.ok(sent > 100);
    } finally {
      await mesh.close();
    }
  });

  it("keeps the last good identity when an update is unusable", () => {
    const identity = pemIdentity({ cert: webLeaf.certPem, key: webLeaf.keyPem, ca: ca.rootPem });
    const before = identity.current();
    assert.throws(() => identity.update({ cert: webLeaf.certPem, key: "not a key", ca: ca.rootPem }), (err: unknown) => isMeshError(err, "ERR_INVALID_IDENTITY"));
    assert.equal(identity.current(), before);
  });
});

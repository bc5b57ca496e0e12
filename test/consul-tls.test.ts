import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, type RegistryErrorEvent, type RegistryUpdate, meshErrorOf } from "proxyless";
import { FakeConsul, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

describe("ConsulRegistry over HTTPS", () => {
  let ca: TestCertificateAuthority;
  let serverCert: TestCertificate;
  let clientCert: TestCertificate;
  let fake: FakeConsul;
  let backend: Backend;
  before(async () => {
    ca = await TestCertificateAuthority.create();
    [serverCert, clientCert] = await Promise.all([ca.issue({ commonName: "consul", ipAddresses: ["127.0.0.1"] }), ca.issue({ commonName: "client" })]);
    // Consul with verify_incoming: clients must present a certificate from the CA.
    fake = await FakeConsul.start({ tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.rootPem, requireClientCert: true } });
    backend = (await startBackends(1))[0]!;
    const dispatcher = new Agent({ connect: { ca: ca.rootPem, cert: clientCert.certPem, key: clientCert.keyPem } });
    const res = await request(`${fake.url}/v1/config`, { method: "PUT", dispatcher, body: JSON.stringify({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "least_request" } }) });
    assert.equal(await res.body.text(), "true");
    await dispatcher.close();
  });
  after(async () => {
    await fake.close();
    await backend.close();
  });

  it("watches, reads config entries and registers with the CA and client certificate given", async () => {
    assert.match(fake.url, /^https:/);
    const registry = new ConsulRegistry({ url: fake.url, tls: { ca: ca.rootPem, cert: clientCert.certPem, key: clientCert.keyPem } });
    const mesh = createMesh({ registry });
    await mesh.register({ name: "orders", port: backend.port, address: "127.0.0.1" });
    const res = await mesh.client("orders").request({ path: "/" });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(mesh.inspect("orders")?.policy, "least_request", "config entries came over TLS too");
    await mesh.close();
    const after = await new Promise<RegistryUpdate>((resolve) => {
      const check = new ConsulRegistry({ url: fake.url, tls: { ca: ca.rootPem, cert: clientCert.certPem, key: clientCert.keyPem } });
      const watch = check.watch("orders", (u) => {
        if (u.type !== "endpoints" && u.type !== "missing") return;
        watch.close();
        void check.close();
        resolve(u);
      });
    });
    // Deregistered over TLS on close: Consul has no instance left, so it no longer knows the service.
    assert.equal(after.type, "missing", "deregistered over TLS on close");
  });

  it("reports an agent whose certificate it cannot verify, and one that wants a client certificate", async () => {
    for (const [tls, expected] of [
      [undefined, /certificate/i],
      // Without a client certificate the agent ends the TLS session (TLS 1.3 reports it after the handshake).
      [{ ca: ca.rootPem }, /certificate|closed|ECONNRESET|alert/i],
    ] as const) {
      const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, initialBackoffMs: 10, ...(tls === undefined ? {} : { tls }) }), discoveryTimeout: 300 });
      const errors: RegistryErrorEvent[] = [];
      mesh.on("registry_error", (e) => errors.push(e));
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"));
      await until(() => errors.length > 0);
      assert.match(errors[0]!.error.message, expected);
      await mesh.close();
    }
  });

  it("refuses TLS settings without an https URL, and a certificate without its key", () => {
    assert.throws(() => new ConsulRegistry({ url: "http://127.0.0.1:8500", tls: { ca: ca.rootPem } }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "consul.tls");
    assert.throws(() => new ConsulRegistry({ url: fake.url, tls: { cert: clientCert.certPem } }), /cert and key together/);
  });
});

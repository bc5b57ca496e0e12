import assert from "node:assert/strict";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { connect as http2Connect, createSecureServer } from "node:http2";
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { callerIdentity, createMesh, fileIdentity, isMeshError, pemIdentity, type Identity } from "proxyless";
import { MockRegistry, TestCertificateAuthority, type TestCertificate } from "proxyless/testing";
import { leafFor } from "./helpers/tls-backend.ts";

describe("identity from files", () => {
  let dir: string;
  let ca: TestCertificateAuthority;
  let first: TestCertificate;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "proxyless-id-"));
    ca = await TestCertificateAuthority.create();
    first = await leafFor(ca, "web");
    await writeFile(join(dir, "ca.pem"), ca.rootPem);
    await writeFile(join(dir, "tls.crt"), first.certPem);
    await writeFile(join(dir, "tls.key"), first.keyPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("loads the files, reloads them when they change (written in place or swapped in), and keeps the last good identity on a bad write", async () => {
    const source = fileIdentity({ certFile: join(dir, "tls.crt"), keyFile: join(dir, "tls.key"), caFile: join(dir, "ca.pem"), settleMs: 20 });
    const updates: ({ identity: Identity } | { error: Error })[] = [];
    let wake: (() => void) | undefined;
    source.subscribe((u) => {
      updates.push(u);
      wake?.();
    });
    const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));
    try {
      const loaded = await source.ready();
      assert.equal(loaded.spiffeId, ca.spiffeId("web"));
      // A certificate whose key has not been written yet: reported, the old identity stays.
      const second = await leafFor(ca, "web");
      let event = next();
      await writeFile(join(dir, "tls.crt"), second.certPem);
      await event;
      assert.ok("error" in updates.at(-1)!, "a mismatched key is reported");
      assert.ok(isMeshError((updates.at(-1) as { error: Error }).error, "ERR_INVALID_IDENTITY"));
      assert.equal(source.current(), loaded);
      event = next();
      await writeFile(join(dir, "tls.key"), second.keyPem);
      await event;
      assert.equal(source.current()?.serialNumber, new (await import("node:crypto")).X509Certificate(second.certPem).serialNumber);
      // A swap by rename, as Kubernetes and cert-manager do.
      const third = await leafFor(ca, "web");
      await writeFile(join(dir, "next.crt"), third.certPem);
      await writeFile(join(dir, "next.key"), third.keyPem);
      event = next();
      await rename(join(dir, "next.key"), join(dir, "tls.key"));
      await rename(join(dir, "next.crt"), join(dir, "tls.crt"));
      while (source.current()?.serialNumber !== new (await import("node:crypto")).X509Certificate(third.certPem).serialNumber) {
        await event;
        event = next();
      }
    } finally {
      await source.close();
    }
  });
});

describe("mesh.inbound() on a node:http2 secure server", () => {
  it("requires a client certificate, reads the caller's identity, applies the policy, and follows a rotation", async () => {
    const ca = await TestCertificateAuthority.create();
    const [server, web, reports] = await Promise.all([leafFor(ca, "orders"), leafFor(ca, "web"), leafFor(ca, "reports")]);
    const mesh = createMesh({ registry: new MockRegistry(), service: "orders", tls: { identity: pemIdentity({ cert: server.certPem, key: server.keyPem, ca: ca.rootPem }) } });
    const denied: string[] = [];
    mesh.on("inbound_denied", (e) => denied.push(e.reason));
    const inbound = mesh.inbound({ authorize: { allow: ["web"] } });
    const h2 = createSecureServer(
      await inbound.serverOptions(),
      inbound.handler((req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`hello ${callerIdentity(req)?.service ?? "?"}${req.url === "/" ? "" : ` at ${req.url}`}`);
      }),
    );
    h2.listen(0, "127.0.0.1");
    await once(h2, "listening");
    const port = (h2.address() as AddressInfo).port;
    const call = async (leaf: TestCertificate, path = "/"): Promise<[number, string]> => {
      const session = http2Connect(`https://127.0.0.1:${port}`, { cert: leaf.certPem, key: leaf.keyPem, ca: ca.rootPem, checkServerIdentity: () => undefined });
      try {
        const stream = session.request({ ":path": path });
        const [headers] = (await once(stream, "response")) as [Record<string, unknown>];
        let body = "";
        for await (const chunk of stream) body += String(chunk);
        return [Number(headers[":status"]), body];
      } finally {
        session.close();
      }
    };
    const detach = inbound.attach(h2);
    try {
      assert.deepEqual(await call(web), [200, "hello web"]);
      assert.deepEqual(await call(web, "/a/./b/../c?q=/../x"), [200, "hello web at /a/c?q=/../x"], "the app gets the normalized path over HTTP/2 too");
      // A rotation of the server's identity: new connections get the new certificate.
      const rotated = await leafFor(ca, "orders");
      (mesh.identity as ReturnType<typeof pemIdentity>).update({ cert: rotated.certPem, key: rotated.keyPem, ca: ca.rootPem });
      const socket = tlsConnect({ host: "127.0.0.1", port, cert: web.certPem, key: web.keyPem, ca: ca.rootPem, ALPNProtocols: ["h2"], checkServerIdentity: () => undefined });
      await once(socket, "secureConnect");
      assert.equal(socket.getPeerCertificate().serialNumber, new X509Certificate(rotated.certPem).serialNumber);
      socket.destroy();
      const [status, body] = await call(reports);
      assert.deepEqual([status, body], [403, "Forbidden\n"]);
      assert.match(denied.at(-1) ?? "", /reports/);
    } finally {
      detach();
      h2.close();
      await mesh.close();
    }
  });
});

import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { fetch as undiciFetch } from "undici";
import { createMesh, isMeshError, meshErrorOf, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend } from "../helpers/backend.ts";

/**
 * The threat: an upstream (compromised, or just careless) answers a POST with a redirect to another
 * service. Followed blindly, the caller's body and headers go to a service the caller never named,
 * on the caller's mTLS identity. The mesh follows redirects within the service called; to another
 * service only when the caller lists it.
 */

/** A service that answers `/go?status=307&to=<url>` with that redirect, and everything else with 200 and its name. */
async function redirector(name: string): Promise<{ server: Server; endpoint: { id: string; address: string; port: number }; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      bodies.push(Buffer.concat(chunks).toString());
      const url = new URL(req.url ?? "/", "http://x");
      const to = url.searchParams.get("to");
      if (url.pathname === "/go" && to !== null) {
        res.writeHead(Number(url.searchParams.get("status") ?? "307"), { location: to });
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "x-instance": name });
      res.end(JSON.stringify({ instance: name, method: req.method, url: req.url, body: Buffer.concat(chunks).toString() }));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, bodies, endpoint: { id: `${name}-0`, address: "127.0.0.1", port: (server.address() as AddressInfo).port } };
}

describe("redirects stay on the service called unless the caller allows another", () => {
  let orders: Awaited<ReturnType<typeof redirector>>;
  let payments: Backend;
  let mesh: Mesh;
  const go = (status: number, to: string): string => `/go?status=${status}&to=${encodeURIComponent(to)}`;
  const secret = JSON.stringify({ card: "4111 1111 1111 1111" });

  before(async () => {
    [orders, payments] = await Promise.all([redirector("orders"), Backend.start("payments-0")]);
    mesh = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint], payments: [payments.endpoint] }) });
  });
  after(async () => {
    await mesh.close();
    orders.server.closeAllConnections();
    orders.server.close();
    await payments.close();
  });
  beforeEach(() => payments.reset());

  for (const status of [307, 308]) {
    it(`a ${status} POST to another service is refused by default: its body never reaches that service`, async () => {
      const err = await mesh
        .client("orders")
        .fetch(go(status, "http://payments/charge"), { method: "POST", body: secret, headers: { "content-type": "application/json", "x-api-key": "k-123" } })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof TypeError, "fetch's convention: a TypeError");
      assert.ok(isMeshError(err, "ERR_REDIRECT_REFUSED"), String(meshErrorOf(err)?.code));
      const cause = meshErrorOf(err)!;
      assert.match(cause.message, /payments/);
      assert.match(cause.message, /allowRedirectsTo/);
      assert.equal(cause.details.service, "orders");
      assert.equal(cause.details.target, "payments");
      assert.equal(payments.seen.length, 0, "nothing reached payments");
    });
  }

  it("a 303 to another service (a GET, no body, but the caller's identity and headers) is refused too", async () => {
    await assert.rejects(
      mesh.client("orders").fetch(go(303, "http://payments/receipt"), { method: "POST", body: secret, headers: { "x-api-key": "k-123" } }),
      (err: unknown) => isMeshError(err, "ERR_REDIRECT_REFUSED"),
    );
    await assert.rejects(mesh.client("orders").fetch(go(302, "http://payments/receipt")), (err: unknown) => isMeshError(err, "ERR_REDIRECT_REFUSED"));
    assert.equal(payments.seen.length, 0, "nothing reached payments");
  });

  it("a redirect to a service that does not exist is refused before the mesh looks it up (no watch, no state)", async () => {
    await assert.rejects(mesh.client("orders").fetch(go(307, "http://nosuch-by-redirect/x"), { method: "POST", body: "x" }), (err: unknown) => isMeshError(err, "ERR_REDIRECT_REFUSED"));
    assert.equal(mesh.inspect("nosuch-by-redirect"), undefined);
  });

  it("with the target in allowRedirectsTo, a 307 re-sends the body there", async () => {
    const res = await mesh.client("orders").fetch(go(307, "http://payments/charge"), { method: "POST", body: secret, allowRedirectsTo: ["payments"] });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-instance"), "payments-0");
    const seen = payments.seen.at(-1)!;
    assert.deepEqual([seen.method, seen.url, seen.body, seen.headers.host], ["POST", "/charge", secret, "payments"]);
    await res.arrayBuffer();
  });

  it("allowRedirectsTo allows the services listed only: a chain through payments to billing needs billing too", async () => {
    const billing = await redirector("billing");
    const registry = new MockRegistry({ orders: [orders.endpoint], payments: [billing.endpoint], billing: [billing.endpoint] });
    const chained = createMesh({ registry });
    try {
      // orders -> payments (here served by the redirector) -> billing
      const hop2 = `http://payments${go(307, "http://billing/end")}`;
      await assert.rejects(chained.client("orders").fetch(go(307, hop2), { method: "POST", body: "b", allowRedirectsTo: ["payments"] }), (err: unknown) => isMeshError(err, "ERR_REDIRECT_REFUSED") && meshErrorOf(err)!.details.target === "billing");
      const res = await chained.client("orders").fetch(go(307, hop2), { method: "POST", body: "b", allowRedirectsTo: ["payments", "billing"] });
      assert.deepEqual(await res.json(), { instance: "billing", method: "POST", url: "/end", body: "b" });
    } finally {
      await chained.close();
      billing.server.closeAllConnections();
      billing.server.close();
    }
  });

  it("a redirect within the service is followed, body and all, with no option", async () => {
    const rel = await mesh.client("orders").fetch(go(307, "/landing"), { method: "POST", body: "same" });
    assert.deepEqual(await rel.json(), { instance: "orders", method: "POST", url: "/landing", body: "same" });
    const abs = await mesh.client("orders").fetch(go(308, "http://orders/abs"), { method: "PUT", body: "same" });
    assert.deepEqual(await abs.json(), { instance: "orders", method: "PUT", url: "/abs", body: "same" });
  });

  it('redirect: "manual" hands the 3xx to the caller, as fetch does, and sends nothing on', async () => {
    const res = await mesh.client("orders").fetch(go(307, "http://payments/charge"), { method: "POST", body: secret, redirect: "manual" });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get("location"), "http://payments/charge");
    assert.equal(payments.seen.length, 0);
  });

  it("allowRedirectsTo is checked: service names only", async () => {
    for (const bad of ["Payments", "payments.example.com", 42, "*"] as unknown[]) {
      await assert.rejects(mesh.client("orders").fetch("/x", { allowRedirectsTo: [bad] as string[] }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /allowRedirectsTo/.test(meshErrorOf(err)!.message), String(bad));
    }
    await assert.rejects(mesh.client("orders").fetch("/x", { allowRedirectsTo: "payments" as unknown as string[] }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT"));
  });
});

describe("through mesh.dispatcher, a redirect to another service reaches the caller without its Location", () => {
  let orders: Awaited<ReturnType<typeof redirector>>;
  let payments: Backend;
  const meshes: Mesh[] = [];
  const go = (status: number, to: string): string => `/go?status=${status}&to=${encodeURIComponent(to)}`;
  const secret = JSON.stringify({ card: "4111 1111 1111 1111" });
  const meshWith = (allowRedirectsTo?: readonly string[] | "*"): Mesh => {
    const mesh = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint], payments: [payments.endpoint] }), ...(allowRedirectsTo === undefined ? {} : { allowRedirectsTo }) });
    meshes.push(mesh);
    return mesh;
  };

  before(async () => {
    [orders, payments] = await Promise.all([redirector("orders"), Backend.start("payments-0")]);
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    orders.server.closeAllConnections();
    orders.server.close();
    await payments.close();
  });
  beforeEach(() => payments.reset());

  for (const status of [307, 308, 303, 302, 301]) {
    it(`a ${status} from orders to payments: fetch gets the ${status} itself, nothing reaches payments`, async () => {
      const mesh = meshWith();
      const res = await undiciFetch(`http://orders${go(status, "http://payments/charge")}`, { method: "POST", body: secret, dispatcher: mesh.dispatcher });
      await res.arrayBuffer();
      assert.equal(res.status, status);
      assert.equal(res.headers.get("location"), null, "the Location is withheld");
      assert.equal(res.headers.get("x-proxyless-redirect-refused"), "payments");
      assert.equal(payments.seen.length, 0, "nothing reached payments");
    });
  }

  it("a relative Location, or one within orders, is followed as before", async () => {
    const mesh = meshWith();
    const relative = await undiciFetch(`http://orders${go(307, "/landed")}`, { method: "POST", body: "b", dispatcher: mesh.dispatcher });
    assert.deepEqual([relative.status, ((await relative.json()) as { url: string; body: string }).body], [200, "b"]);
    const absolute = await undiciFetch(`http://orders${go(307, "http://orders/landed")}`, { method: "POST", body: "c", dispatcher: mesh.dispatcher });
    assert.deepEqual([absolute.status, ((await absolute.json()) as { url: string; body: string }).body], [200, "c"]);
  });

  it("createMesh({ allowRedirectsTo }) lets the listed services (or every one, with \"*\") be followed", async () => {
    for (const allowed of [["payments"], "*"] as const) {
      const mesh = meshWith(allowed);
      const res = await undiciFetch(`http://orders${go(307, "http://payments/charge")}`, { method: "POST", body: secret, dispatcher: mesh.dispatcher });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(payments.seen.at(-1)?.body, secret);
    }
    assert.throws(() => createMesh({ registry: new MockRegistry(), allowRedirectsTo: ["pay ments"] }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "allowRedirectsTo");
  });
});

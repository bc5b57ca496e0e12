import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createMesh, isMeshError, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { Backend } from "./helpers/backend.ts";

describe("client.fetch follows redirects through the mesh", () => {
  let orders: Backend;
  let payments: Backend;
  let mesh: Mesh;
  before(async () => {
    [orders, payments] = await Promise.all([Backend.start("orders-0"), Backend.start("payments-0")]);
    mesh = createMesh({ registry: new MockRegistry({ orders: [orders.endpoint], payments: [payments.endpoint] }) });
  });
  after(async () => {
    await mesh.close();
    await Promise.all([orders.close(), payments.close()]);
  });

  const to = (url: string): string => `/redirect?to=${encodeURIComponent(url)}`;

  it("a relative redirect stays on the service", async () => {
    const res = await mesh.client("orders").fetch(to("/landing"));
    assert.equal(res.headers.get("x-instance"), "orders-0");
    assert.equal(((await res.json()) as { url: string }).url, "/landing");
  });

  it("a redirect to another service the caller allows goes to that service, with its Host (test/security/redirect-across-services.test.ts: refused otherwise)", async () => {
    await assert.rejects(mesh.client("orders").fetch(to("http://payments/pay")), (err: unknown) => isMeshError(err, "ERR_REDIRECT_REFUSED"));
    const res = await mesh.client("orders").fetch(to("http://payments/pay"), { allowRedirectsTo: ["payments"] });
    assert.equal(res.headers.get("x-instance"), "payments-0");
    const seen = (await res.json()) as { url: string; headers: Record<string, string> };
    assert.deepEqual([seen.url, seen.headers.host], ["/pay", "payments"]);
  });

  for (const [name, url, code] of [
    ["https://", "https://secure.example.com/login?token=abc", "ERR_INVALID_ARGUMENT"],
    ["a host that is not a service", "http://secure.example.com/login?token=abc", "ERR_INVALID_ARGUMENT"],
    ["a service name with a port", "http://payments:8443/login?token=abc", "ERR_INVALID_ARGUMENT"],
  ] as const) {
    it(`a redirect to ${name} fails and sends nothing to the service's endpoint`, async () => {
      const before = orders.seen.length;
      await assert.rejects(mesh.client("orders").fetch(to(url)), (err: unknown) => err instanceof TypeError && isMeshError(err.cause, code));
      assert.equal(orders.seen.length, before + 1, "only the request that was redirected");
      assert.ok(!orders.seen.some((s) => s.url.startsWith("/login")));
    });
  }
});

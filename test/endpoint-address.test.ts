import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fetch as undiciFetch, request as undiciRequest } from "undici";
import { createMesh, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";

/** What the backend saw of one request. */
interface Seen {
  readonly host: string | undefined;
  readonly remote: string | undefined;
}

async function listen(host: string): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ host: req.headers.host, remote: req.socket.remoteAddress });
    req.resume();
    res.end("ok");
  });
  server.listen(0, host);
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port, seen };
}

// An endpoint's pool is named after its service (undici then sends `Host: <service>` itself, once per
// connection) and dials the endpoint's own address: an IPv6 literal or a host name must still be reached.
describe("endpoint pools dial the endpoint's address and send the service as Host", () => {
  let v6: Awaited<ReturnType<typeof listen>>;
  let v4: Awaited<ReturnType<typeof listen>>;
  let mesh: Mesh;

  before(async () => {
    v6 = await listen("::1");
    v4 = await listen("127.0.0.1");
    const registry = new MockRegistry({
      orders: [{ address: "::1", port: v6.port }],
      payments: [{ address: "localhost", port: v4.port }],
    });
    mesh = createMesh({ registry });
  });

  after(async () => {
    await mesh.close();
    v6.server.close();
    v4.server.close();
  });

  it("an IPv6 endpoint is reached by request(), fetch() and mesh.dispatcher, with Host = the service", async () => {
    const { statusCode, body } = await mesh.client("orders").request({ path: "/a" });
    assert.equal(statusCode, 200);
    await body.text();
    const res = await mesh.client("orders").fetch("/b");
    assert.equal(await res.text(), "ok");
    const viaDispatcher = await undiciRequest("http://orders/c", { dispatcher: mesh.dispatcher });
    await viaDispatcher.body.text();
    assert.deepEqual(
      v6.seen.map((s) => [s.host, s.remote]),
      [
        ["orders", "::1"],
        ["orders", "::1"],
        ["orders", "::1"],
      ],
    );
  });

  it("an endpoint registered by host name is reached, and a Host the caller sets is kept", async () => {
    const res = await undiciFetch("http://payments/x", { dispatcher: mesh.dispatcher });
    assert.equal(await res.text(), "ok");
    const { body } = await mesh.client("payments").request({ path: "/y", headers: { host: "payments.internal" } });
    await body.text();
    assert.deepEqual(
      v4.seen.map((s) => s.host),
      ["payments", "payments.internal"],
    );
  });

  // (fetch() and mesh.dispatcher cannot name such a service at all: their URL's host parses as an IPv4 address.)
  it("request() to a service named like a number (1234, 0x7f) sends its name as Host, not the IPv4 address a URL parser reads", async () => {
    const registry = new MockRegistry({ "1234": [{ address: "127.0.0.1", port: v4.port }], "0x7f": [{ address: "127.0.0.1", port: v4.port }] });
    const numeric = createMesh({ registry });
    try {
      v4.seen.length = 0;
      for (const name of ["1234", "0x7f"]) {
        const { body } = await numeric.client(name).request({ path: "/" });
        await body.text();
      }
      assert.deepEqual(
        v4.seen.map((s) => s.host),
        ["1234", "0x7f"],
      );
    } finally {
      await numeric.close();
    }
  });
});

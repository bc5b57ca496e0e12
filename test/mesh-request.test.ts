import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Readable } from "node:stream";
import { once } from "node:events";
import { createServer } from "node:http";
import { fetch as undiciFetch, request as undiciRequest, upgrade as undiciUpgrade } from "undici";
import { createMesh, isMeshError, type Mesh } from "proxyless";
import { createSeededRandom, MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

describe("requests through the mesh reach a real backend", () => {
  let backends: Backend[];
  let mesh: Mesh;

  before(async () => {
    backends = await startBackends(1);
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    mesh = createMesh({ registry, random: createSeededRandom(1) });
  });
  after(async () => {
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("client.fetch returns status, headers and body, and sends Host = service name", async () => {
    const res = await mesh.client("orders").fetch("/status/201?x=1", { method: "POST", body: "hello" });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("x-instance"), "orders-0");
    const body = (await res.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
    assert.equal(body.method, "POST");
    assert.equal(body.url, "/status/201?x=1");
    assert.equal(body.headers.host, "orders");
    assert.equal(body.body, "hello");
  });

  it("client.fetch accepts a URL whose host is the service name", async () => {
    const res = await mesh.client("orders").fetch(new URL("http://orders/v1/orders"));
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, "/v1/orders");
  });

  it("client.fetch streams the response body", async () => {
    const res = await mesh.client("orders").fetch("/stream");
    const parts: string[] = [];
    for await (const chunk of res.body!) parts.push(Buffer.from(chunk).toString());
    assert.equal(parts.join(""), "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;");
  });

  it("client.request returns status, headers and a streamed body and forwards a streamed request body", async () => {
    const { statusCode, headers, body } = await mesh.client("orders").request({
      path: "/v1/orders",
      method: "PUT",
      headers: { "content-type": "text/plain" },
      body: Readable.from(["a", "b", "c"]),
    });
    assert.equal(statusCode, 200);
    assert.equal(headers["x-instance"], "orders-0");
    const seen = (await body.json()) as { method: string; body: string; headers: Record<string, string> };
    assert.equal(seen.method, "PUT");
    assert.equal(seen.body, "abc");
    assert.equal(seen.headers.host, "orders");
    assert.equal(seen.headers["content-type"], "text/plain");
  });

  it("client.request defaults to GET and keeps a Host header the caller set", async () => {
    const { body } = await mesh.client("orders").request({ path: "/x", headers: { Host: "orders.internal" } });
    const seen = (await body.json()) as { method: string; headers: Record<string, string> };
    assert.equal(seen.method, "GET");
    assert.equal(seen.headers.host, "orders.internal");
  });

  it("client.request accepts headers as a flat array and as pairs", async () => {
    const flat = await mesh.client("orders").request({ path: "/", headers: ["x-a", "1"] });
    const a = (await flat.body.json()) as { headers: Record<string, string> };
    assert.deepEqual([a.headers["x-a"], a.headers.host], ["1", "orders"]);
    const pairs = await mesh.client("orders").request({ path: "/", headers: new Map([["x-b", "2"]]) });
    const b = (await pairs.body.json()) as { headers: Record<string, string> };
    assert.deepEqual([b.headers["x-b"], b.headers.host], ["2", "orders"]);
  });

  it("mesh.dispatcher routes fetch() by URL host", async () => {
    const res = await undiciFetch("http://orders/v1/items?a=b", {
      method: "POST",
      body: JSON.stringify({ n: 1 }),
      dispatcher: mesh.dispatcher,
    });
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { url: string; body: string; headers: Record<string, string> };
    assert.equal(seen.url, "/v1/items?a=b");
    assert.equal(seen.body, '{"n":1}');
    assert.equal(seen.headers.host, "orders");
  });

  it("mesh.dispatcher works with Node's global fetch", async () => {
    // The global fetch's RequestInit types do not declare undici's `dispatcher` option (or declare it with
    // undici-types, a second copy of undici's classes); at run time it works, which is what this test shows.
    const init = { dispatcher: mesh.dispatcher } as unknown as RequestInit;
    const res = await fetch("http://orders/v1/global", init);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, "/v1/global");
  });

  it("mesh.dispatcher refuses https:// rather than send in clear", async () => {
    await assert.rejects(undiciRequest("https://orders/", { dispatcher: mesh.dispatcher }), (err: unknown) => {
      return isMeshError(err, "ERR_INVALID_ARGUMENT") && /http:\/\//.test(err.message);
    });
  });

  it("client.fetch refuses a URL for another service and a path without '/'", async () => {
    const client = mesh.client("orders");
    await assert.rejects(client.fetch("http://payments/x"), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(client.fetch("v1/orders"), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT"));
    await assert.rejects(client.request({ path: "v1/orders" }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /must start with '\/'/.test(err.message));
  });

  it("mesh.dispatcher routes undici.request by URL host", async () => {
    const { statusCode, headers, body } = await undiciRequest("http://orders/status/404", { dispatcher: mesh.dispatcher });
    assert.equal(statusCode, 404);
    assert.equal(headers["x-instance"], "orders-0");
    assert.equal(((await body.json()) as { url: string }).url, "/status/404");
  });

  it("mesh.client returns the same client for the same name", () => {
    assert.equal(mesh.client("orders"), mesh.client("orders"));
  });
});

describe("upgrades through mesh.dispatcher", () => {
  it("hands over the socket and counts no load", async () => {
    const server = createServer();
    server.on("upgrade", (_req, socket) => {
      socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const mesh = createMesh({ registry: new MockRegistry({ orders: [{ address: "127.0.0.1", port }] }) });
    const upgraded = await undiciUpgrade("http://orders/", { dispatcher: mesh.dispatcher, protocol: "echo" });
    assert.equal(upgraded.headers.upgrade, "echo");
    assert.equal(mesh.inspect("orders")?.targets[0]?.pending, 0);
    upgraded.socket.destroy();
    await mesh.close();
    server.close();
  });
});

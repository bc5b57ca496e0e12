import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createMesh, type Mesh } from "proxyless";
import { createSeededRandom, FakeClock, MockRegistry } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { until } from "./helpers/events.ts";

/** Lets pending I/O callbacks and promise jobs run: a request that was going to be sent has been. */
async function settleIo(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("traffic mirroring and fault injection", () => {
  let live: Backend;
  let shadow: Backend;
  let registry: MockRegistry;
  let clock: FakeClock;
  let mesh: Mesh;
  before(async () => {
    [live, shadow] = (await startBackends(2, "mirror")) as [Backend, Backend];
  });
  after(() => Promise.all([live.close(), shadow.close()]));
  beforeEach(() => {
    registry = new MockRegistry({ web: [live.endpoint], "web-next": [shadow.endpoint] });
    clock = new FakeClock(Date.now());
    mesh = createMesh({ registry, clock, random: createSeededRandom(7) });
    live.seen.length = 0;
    shadow.seen.length = 0;
  });
  afterEach(() => mesh.close());

  async function send(path: string, headers: Record<string, string> = {}, body?: string) {
    const res = await mesh.client("web").request({ path, headers, method: body === undefined ? "GET" : "POST", ...(body === undefined ? {} : { body }) });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }

  it("copies every request to the mirror target, with a -shadow Host, while the caller gets the live answer", async () => {
    registry.setConfig("web", { router: { routes: [{ mirror: { service: "web-next", percent: 100 } }] } });
    await send("/warm"); // the first copy waits for nothing: web-next is discovered from here on
    for (let i = 0; i < 5; i++) {
      const res = await send(`/orders/${i}`, {}, `body-${i}`);
      assert.equal(res.headers["x-instance"], live.name);
    }
    await until(() => shadow.seen.length >= 5);
    const copies = shadow.seen.filter((r) => r.url.startsWith("/orders/"));
    assert.deepEqual(copies.map((r) => [r.url, r.body, r.headers.host]), [0, 1, 2, 3, 4].map((i) => [`/orders/${i}`, `body-${i}`, "web-shadow"]));
  });

  it("copies about the configured share, and a failing mirror never reaches the caller", async () => {
    registry.setConfig("web", { router: { routes: [{ mirror: { service: "web-next", percent: 25 } }] } });
    await send("/warm");
    for (let i = 0; i < 200; i++) await send(`/s/${i}`);
    await until(() => shadow.seen.length > 0);
    const copied = shadow.seen.filter((r) => r.url.startsWith("/s/")).length;
    assert.ok(copied > 25 && copied < 75, `about a quarter copied (${copied} of 200)`);
    // A mirror target that refuses connections: callers see nothing of it.
    registry.setEndpoints("web-next", [{ address: "127.0.0.1", port: 9 }]);
    for (let i = 0; i < 20; i++) assert.equal((await send(`/t/${i}`)).status, 200);
  });

  it("does not let a mirror target that never answers hold up close()", async () => {
    const silent = createServer(() => undefined); // accepts, never answers
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    try {
      registry.setEndpoints("web-next", [{ address: "127.0.0.1", port: (silent.address() as AddressInfo).port }]);
      registry.setConfig("web", { router: { routes: [{ mirror: { service: "web-next", percent: 100 } }] } });
      await send("/warm");
      for (let i = 0; i < 3; i++) assert.equal((await send(`/m/${i}`)).status, 200);
      const inFlight = (): number | undefined => mesh.inspect("web-next")?.targets.reduce((n, t) => n + t.pending, 0);
      assert.equal(inFlight(), 4, "the copies in flight load their endpoint (least_request sees them)");
      await mesh.close(); // resolves: the copies in flight are aborted
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("changes response headers on the fetch path without touching other headers' bytes", async () => {
    const server = createServer((_req, res) => {
      res.setHeader("x-name", "café"); // sent as latin1 bytes
      res.end("ok");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      registry.setEndpoints("web", [{ address: "127.0.0.1", port: (server.address() as AddressInfo).port }]);
      const plain = await mesh.client("web").fetch("/");
      await plain.text();
      registry.setConfig("web", { router: { routes: [{ destination: { responseHeaders: { set: { "x-routed": "yes" } } } }] } });
      const routed = await mesh.client("web").fetch("/");
      await routed.text();
      assert.equal(routed.headers.get("x-routed"), "yes");
      assert.equal(routed.headers.get("x-name"), plain.headers.get("x-name"));
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("aborts requests that carry the fault header with the configured status, without sending them", async () => {
    registry.setConfig("web", { router: { routes: [{ fault: { abort: { status: 503, header: "x-fault" } } }] } });
    const aborted = await send("/x", { "x-fault": "1" });
    assert.deepEqual([aborted.status, aborted.text, aborted.headers["x-proxyless-fault"]], [503, "fault filter abort", "abort"]);
    assert.equal(live.seen.length, 0);
    const fetched = await mesh.client("web").fetch("/y", { headers: { "x-fault": "yes" } });
    assert.equal(fetched.status, 503);
    await fetched.text();
    assert.equal((await send("/z")).status, 200, "requests without the header go through");
    assert.equal(live.seen.length, 1);
  });

  it("delays a share of requests by the configured time on the mesh's clock", async () => {
    registry.setConfig("web", { router: { routes: [{ match: { pathPrefix: "/slow" }, fault: { delay: { ms: 2000, percent: 100 } } }] } });
    assert.equal((await send("/fast")).status, 200);
    const pending = send("/slow/1");
    await until(() => clock.pendingTimers > 0);
    assert.equal(live.seen.filter((r) => r.url === "/slow/1").length, 0, "held back");
    clock.advance(1999);
    await settleIo();
    assert.equal(live.seen.filter((r) => r.url === "/slow/1").length, 0, "still held back");
    clock.advance(1);
    assert.equal((await pending).status, 200);
    const why = await mesh.explain("web", { path: "/slow/2" });
    assert.deepEqual(why.fault, { delay: { ms: 2000, percent: 100 } });
  });
});

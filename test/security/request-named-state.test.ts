import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { readdirSync } from "node:fs";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, meshErrorOf, type Mesh } from "proxyless";
import { FakeClock, FakeConsul, MockRegistry } from "proxyless/testing";
import { Backend } from "../helpers/backend.ts";
import { CountingRegistry } from "../helpers/counting-registry.ts";
import { until } from "../helpers/events.ts";

/**
 * The threat: whoever chooses the URLs given to `mesh.dispatcher` (a webhook target, a link in a
 * document, a redirect) chooses host names, and each new name used to become a permanent registry watch
 * with its state: 10,000 names, 10,000 watches and ~48 MB; with Consul, a long poll and two sockets
 * each. Names first seen in request data are now capped (`dynamicServices.max`), forgotten at once
 * when the registry does not know them, and released after `dynamicServices.idleTimeout` unused.
 */

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("state from request data stays bounded", () => {
  let backend: Backend;
  before(async () => {
    backend = await Backend.start("svc");
  });
  after(() => backend.close());

  it("10,000 made-up host names at once: watches stay under the cap, and nothing is left once the registry answered", async () => {
    const inner = new MockRegistry({ orders: [backend.endpoint] });
    const registry = new CountingRegistry(inner, { async: true });
    const mesh = createMesh({ registry });
    try {
      // Warm up what every request allocates once (undici, the mesh's caches) before measuring.
      await Promise.allSettled(Array.from({ length: 200 }, (_, i) => request(`http://warm-${i}/`, { dispatcher: mesh.dispatcher })));
      await tick();
      const heapBefore = heapUsed();
      // In a function of its own, so that the 10,000 results (and their errors) are garbage when the heap is measured.
      const burst = async (): Promise<Map<string, number>> => {
        const codes = new Map<string, number>();
        const results = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) => request(`http://made-up-${i}/x`, { method: "POST", body: "payload", dispatcher: mesh.dispatcher })));
        for (const r of results) {
          assert.equal(r.status, "rejected");
          const code = meshErrorOf(r.reason)?.code ?? String(r.reason);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
        return codes;
      };
      const codes = await burst();
      await tick();
      await tick();
      assert.deepEqual([...codes.keys()].sort(), ["ERR_TOO_MANY_SERVICES", "ERR_UNKNOWN_SERVICE"]);
      assert.equal(codes.get("ERR_UNKNOWN_SERVICE"), 1024, "the default cap: 1024 looked up at once");
      assert.ok(registry.peak <= 1024 + 1, `at most the cap of watches at once, got ${registry.peak}`);
      assert.equal(registry.active, 0, "no watch left");
      assert.deepEqual(mesh.snapshot().services, []);
      for (let i = 0; i < 10_000; i += 997) assert.equal(inner.watchCount(`made-up-${i}`), 0);
      const grown = heapUsed() - heapBefore;
      assert.ok(grown < 4 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
      // The cap is per moment, not for life: once answered, new names are looked up again.
      await assert.rejects(request("http://made-up-again/", { dispatcher: mesh.dispatcher }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE"));
      assert.equal(backend.seen.length, 0, "nothing was sent anywhere");
    } finally {
      await mesh.close();
    }
  });

  it("10,000 host names that exist: watches, connections and heap stay bounded, idle ones released on the mesh's clock", async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `svc-${i}`);
    const inner = new MockRegistry(Object.fromEntries(names.map((n) => [n, [backend.endpoint]])));
    const registry = new CountingRegistry(inner);
    const clock = new FakeClock();
    const mesh = createMesh({ registry, clock, dynamicServices: { max: 500, idleTimeout: 60_000 } });
    backend.reset();
    try {
      let heapBefore = 0;
      let refused = 0;
      let maxSockets = 0;
      for (let wave = 0; wave < names.length; wave += 1000) {
        if (wave === 1000) heapBefore = heapUsed();
        const results = await Promise.allSettled(
          names.slice(wave, wave + 1000).map(async (n) => {
            const res = await request(`http://${n}/`, { dispatcher: mesh.dispatcher });
            await res.body.dump();
            return res.statusCode;
          }),
        );
        for (const r of results) {
          if (r.status === "fulfilled") assert.equal(r.value, 200);
          else {
            assert.ok(isMeshError(r.reason, "ERR_TOO_MANY_SERVICES"), String(r.reason));
            refused++;
          }
        }
        maxSockets = Math.max(maxSockets, backend.openSockets);
        assert.ok(registry.active <= 500, `watches ${registry.active}`);
        // An idle period on the mesh's clock: every service named by these requests is released.
        clock.advance(60_000);
        await backend.waitForSocketsClosed();
        assert.equal(registry.active, 0);
      }
      assert.equal(refused, 5000, "500 of each 1000 over the cap");
      assert.equal(backend.seen.length, 5000);
      assert.ok(maxSockets <= 500, `sockets ${maxSockets}`);
      assert.deepEqual(mesh.snapshot().services, []);
      const grown = heapUsed() - heapBefore;
      assert.ok(grown < 4 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
    } finally {
      await mesh.close();
    }
  });
});

describe("which services the idle period releases", () => {
  let backend: Backend;
  let mesh: Mesh | undefined;
  let registry: CountingRegistry;
  let clock: FakeClock;
  before(async () => {
    backend = await Backend.start("svc");
    registry = new CountingRegistry(new MockRegistry({ a: [backend.endpoint], b: [backend.endpoint], c: [backend.endpoint], d: [backend.endpoint], own: [backend.endpoint] }));
    clock = new FakeClock();
    mesh = createMesh({ registry, clock, service: "own", dynamicServices: { idleTimeout: 1000 } });
  });
  after(async () => {
    await backend.close();
    await mesh?.close();
  });

  const call = async (name: string, path = "/"): Promise<number> => {
    const res = await request(`http://${name}${path}`, { dispatcher: mesh!.dispatcher });
    await res.body.dump();
    return res.statusCode;
  };

  it("a service used within the period stays; one unused for a whole period is released, and found again on its next use", async () => {
    assert.equal(await call("a"), 200);
    assert.equal(await call("b"), 200);
    clock.advance(600);
    assert.equal(await call("a"), 200);
    clock.advance(600);
    assert.equal(registry.open.get("a"), 1, "a was used 600 ms ago");
    assert.equal(registry.open.get("b"), undefined, "b unused for 1200 ms");
    assert.equal(mesh!.inspect("b"), undefined);
    clock.advance(600);
    assert.equal(registry.open.get("a"), undefined);
    assert.equal(await call("b"), 200, "back on its next use");
    assert.equal(registry.open.get("b"), 1);
    clock.advance(1000);
  });

  it("a service with a request in flight is not released; it is once idle after it", async () => {
    const held = request("http://c/hold", { dispatcher: mesh!.dispatcher });
    await backend.waitForHeld();
    clock.advance(5000);
    assert.equal(registry.open.get("c"), 1, "in flight: kept");
    backend.release();
    await (await held).body.dump();
    clock.advance(1000);
    assert.equal(registry.open.get("c"), undefined);
  });

  it("a service the code asked for by mesh.client() is never released, even if a request named it first", async () => {
    assert.equal(await call("d"), 200);
    mesh!.client("d");
    clock.advance(10_000);
    assert.equal(registry.open.get("d"), 1);
    assert.equal(registry.open.get("own"), 1, "the mesh's own service (its config) stays watched");
    assert.equal(await call("own"), 200);
    clock.advance(10_000);
    assert.equal(registry.open.get("own"), 1);
  });
});

describe("dynamicServices.max", () => {
  it("refuses a new name over the cap with ERR_TOO_MANY_SERVICES naming the option, sends nothing, and counts no service the code named", async () => {
    const backend = await Backend.start("svc");
    const registry = new CountingRegistry(new MockRegistry({ a: [backend.endpoint], b: [backend.endpoint], c: [backend.endpoint], coded: [backend.endpoint] }));
    const clock = new FakeClock();
    let mesh: Mesh | undefined;
    try {
      mesh = createMesh({ registry, clock, dynamicServices: { max: 2, idleTimeout: 1000 } });
      for (const n of ["a", "b"]) await (await request(`http://${n}/`, { dispatcher: mesh.dispatcher })).body.dump();
      const seen = backend.seen.length;
      const err = await request("http://c/", { method: "POST", body: "x", dispatcher: mesh.dispatcher }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isMeshError(err, "ERR_TOO_MANY_SERVICES"), String(err));
      const cause = meshErrorOf(err)!;
      assert.match(cause.message, /dynamicServices\.max/);
      assert.match(cause.message, /mesh\.client/);
      assert.equal(cause.details.field, "dynamicServices.max");
      assert.equal(backend.seen.length, seen, "nothing sent");
      assert.equal(registry.open.get("c"), undefined, "no watch");
      // Named services already watched still work, and the code's own names are not capped.
      await (await request("http://a/", { dispatcher: mesh.dispatcher })).body.dump();
      const res = await mesh.client("coded").request({ path: "/" });
      await res.body.dump();
      await (await request("http://coded/", { dispatcher: mesh.dispatcher })).body.dump();
      // Once a slot is released, the name goes through.
      clock.advance(1000);
      await (await request("http://c/", { dispatcher: mesh.dispatcher })).body.dump();
    } finally {
      await backend.close();
      await mesh?.close();
    }
  });

  it("is validated", () => {
    for (const bad of [{ max: 0 }, { max: -1 }, { max: 1.5 }, { idleTimeout: 0 }, { idleTimeout: "5m" }, { other: 1 }]) {
      assert.throws(() => createMesh({ registry: new MockRegistry(), dynamicServices: bad as never }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /dynamicServices/.test((err as Error).message), JSON.stringify(bad));
    }
  });
});

describe("with Consul: long polls and sockets", () => {
  const openFds = (): number => readdirSync("/proc/self/fd").length;

  it("2,000 made-up names, then 200 that exist: long polls stay under the cap and are all gone after the idle period", async () => {
    const [fake, backend] = await Promise.all([FakeConsul.start(), Backend.start("svc")]);
    const consul = new ConsulRegistry({ url: fake.url });
    const clock = new FakeClock();
    let mesh: Mesh | undefined;
    try {
      mesh = createMesh({ registry: consul, clock, dynamicServices: { max: 50, idleTimeout: 60_000 } });
      const dispatcher = mesh.dispatcher;
      for (let i = 0; i < 200; i++) {
        const res = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: `svc-${i}`, ID: `svc-${i}`, Address: "127.0.0.1", Port: backend.port }) });
        await res.body.dump();
      }
      const fdsBefore = openFds();
      let peak = 0;
      const sample = setInterval(() => (peak = Math.max(peak, consul.watchCount)), 1);
      const made = await Promise.allSettled(Array.from({ length: 2000 }, (_, i) => request(`http://made-up-${i}/`, { dispatcher })));
      clearInterval(sample);
      for (const r of made) assert.ok(r.status === "rejected" && (isMeshError(r.reason, "ERR_UNKNOWN_SERVICE") || isMeshError(r.reason, "ERR_TOO_MANY_SERVICES")), String((r as PromiseRejectedResult).reason));
      assert.ok(peak <= 50, `long polls at once: ${peak}`);
      await until(() => consul.watchCount === 0 && fake.blockedQueries === 0);
      // What stays is the Consul client's keep-alive sockets (two descriptors each, both ends being in this process), not one per name.
      const afterMadeUp = openFds();
      assert.ok(afterMadeUp - fdsBefore <= 200, `descriptors after 2,000 names: ${afterMadeUp - fdsBefore}`);
      for (let wave = 0; wave < 200; wave += 50) {
        for (let i = wave; i < wave + 50; i++) await (await request(`http://svc-${i}/`, { dispatcher })).body.dump();
        assert.equal(consul.watchCount, 50);
        await assert.rejects(request(`http://svc-${(wave + 50) % 200}/`, { dispatcher }), (err: unknown) => isMeshError(err, "ERR_TOO_MANY_SERVICES"));
        // Per service watched: its long poll and its connection to the backend, both ends of each.
        assert.ok(openFds() - afterMadeUp <= 4 * 50 + 10, `descriptors with 50 services: ${openFds() - afterMadeUp}`);
        clock.advance(60_000);
        await until(() => consul.watchCount === 0 && fake.blockedQueries === 0);
        await backend.waitForSocketsClosed();
      }
      assert.ok(openFds() - afterMadeUp <= 10, `descriptors once idle: ${openFds() - afterMadeUp}`);
    } finally {
      await mesh?.close();
      await consul.close();
      await Promise.all([fake.close(), backend.close()]);
    }
  });
});

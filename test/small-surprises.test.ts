import assert from "node:assert/strict";
import { once } from "node:events";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { request } from "undici";
import { ConsulRegistry, createMesh, isMeshError, meshErrorOf, StaticRegistry } from "proxyless";
import { FakeClock, FakeConsul, MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { ManualRegistry } from "./helpers/manual-registry.ts";

describe("small surprises a newcomer met", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(1);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  it("explain() waits at most discoveryTimeout for a registry that never answers", async () => {
    const clock = new FakeClock();
    const registry = new ManualRegistry();
    const mesh = createMesh({ registry, clock, discoveryTimeout: 1000 });
    let done = false;
    const explained = mesh.explain("web", { path: "/" }).then((e) => {
      done = true;
      return e;
    });
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(999);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false, "still waiting before the discovery timeout");
    clock.advance(1);
    for (let i = 0; i < 5 && !done; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, true, "answered at the discovery timeout, not twice it");
    assert.equal((await explained).error?.code, "ERR_DISCOVERY_TIMEOUT");
    await mesh.close();
  });

  it("a port in a client.fetch URL is refused, not silently ignored", async () => {
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }) });
    await assert.rejects(mesh.client("orders").fetch("http://orders:9999/x"), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /port/.test(meshErrorOf(err)!.message));
    assert.equal(backends[0]!.seen.length, 0);
    await mesh.close();
  });

  it("a service Consul does not know at all is ERR_UNKNOWN_SERVICE, naming close matches", async () => {
    const fake = await FakeConsul.start();
    try {
      for (const [id, name] of [["o1", "orders"], ["p1", "payments"]]) {
        const res = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: name, ID: id, Address: "127.0.0.1", Port: backends[0]!.port }) });
        await res.body.dump();
      }
      const mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url }) });
      await assert.rejects(mesh.client("order").request({ path: "/" }), (err: unknown) => {
        assert.ok(isMeshError(err, "ERR_UNKNOWN_SERVICE"), String(err));
        assert.match(meshErrorOf(err)!.message, /'order' is not in the registry.*did you mean 'orders'\?/is);
        return true;
      });
      await assert.rejects(mesh.client("zzz").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE") && !/did you mean/i.test(meshErrorOf(err)!.message));
      const ok = await mesh.client("orders").request({ path: "/" });
      assert.equal(ok.statusCode, 200);
      await ok.body.dump();
      // Scaled to zero: Consul lists no instance any more, but the service was seen: known and empty, as MockRegistry says.
      const gone = once(mesh, "endpoints_changed");
      const res = await request(`${fake.url}/v1/agent/service/deregister/o1`, { method: "PUT" });
      await res.body.dump();
      await gone;
      await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_NO_ENDPOINTS"));
      await mesh.close();
    } finally {
      await fake.close();
    }
  });

  it("StaticRegistry and MockRegistry name close matches too", async () => {
    const mesh = createMesh({ registry: new StaticRegistry({ orders: [backends[0]!.endpoint] }) });
    await assert.rejects(mesh.client("ordres").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE") && /did you mean 'orders'\?/i.test(meshErrorOf(err)!.message));
    await mesh.close();
  });

  it("mesh.snapshot() lists the services called, not the caller's own service", async () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint], checkout: [{ address: "127.0.0.1", port: 1 }] });
    const mesh = createMesh({ registry, service: "checkout" });
    const res = await mesh.client("orders").request({ path: "/" });
    await res.body.dump();
    assert.deepEqual(mesh.snapshot().services.map((s) => s.name), ["orders"]);
    // Calling itself makes it an upstream like any other.
    await mesh.client("checkout").request({ path: "/" }).then((r) => r.body.dump(), () => undefined);
    assert.deepEqual(mesh.snapshot().services.map((s) => s.name), ["checkout", "orders"]);
    await mesh.close();
  });

  it("no declaration in src/ carries two doc comments (a doc comment left above the wrong member)", () => {
    const src = fileURLToPath(new URL("../src", import.meta.url));
    const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith(".ts") ? [join(dir, f)] : []));
    const doubled: string[] = [];
    for (const file of files(src)) {
      const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        const docs = (node as { jsDoc?: ts.JSDoc[] }).jsDoc;
        if (docs !== undefined && docs.length > 1) {
          const name = (node as { name?: ts.Node }).name?.getText(source) ?? ts.SyntaxKind[node.kind];
          doubled.push(`${file.slice(src.length + 1)}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1} ${name}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    assert.deepEqual(doubled, []);
  });
});

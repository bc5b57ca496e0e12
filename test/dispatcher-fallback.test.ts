import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Agent, Dispatcher, fetch as undiciFetch, getGlobalDispatcher, request, setGlobalDispatcher } from "undici";
import { createMesh, isMeshError, meshErrorOf, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

/**
 * A fallback that records the origins it is given and sends every request to one local server (there is
 * no network here: `https://api.example.com` is answered by that server too).
 */
class RecordingDispatcher extends Dispatcher {
  readonly origins: string[] = [];
  readonly #real = new Agent();
  readonly #local: () => string;

  constructor(local: () => string) {
    super();
    this.#local = local;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(options.origin);
    this.origins.push(origin);
    return this.#real.dispatch(origin.startsWith("http://127.0.0.1:") ? options : { ...options, origin: this.#local(), headers: { ...(options.headers as Record<string, string>), "x-fallback": "yes" } }, handler);
  }

  override close(): Promise<void> {
    return this.#real.close();
  }
}

describe("mesh.dispatcher as the global dispatcher, with a fallback for what is not a mesh service", () => {
  let backends: Backend[];
  let mesh: Mesh;
  let fallback: RecordingDispatcher;
  const previous = getGlobalDispatcher();

  before(async () => {
    backends = await startBackends(2);
    fallback = new RecordingDispatcher(() => `http://127.0.0.1:${backends[1]!.port}`);
    mesh = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }), fallbackDispatcher: fallback });
    setGlobalDispatcher(mesh.dispatcher);
  });
  after(async () => {
    setGlobalDispatcher(previous);
    await mesh.close();
    await fallback.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  it("a service name goes through the mesh; an IP, a dotted host name, https:// and an explicit port go to the fallback", async () => {
    const viaMesh = await fetch("http://orders/v1/orders");
    assert.equal(viaMesh.status, 200);
    assert.equal(viaMesh.headers.get("x-instance"), "orders-0");
    await viaMesh.arrayBuffer();

    const direct = await fetch(`http://127.0.0.1:${backends[1]!.port}/plain`);
    assert.equal(direct.headers.get("x-instance"), "orders-1", "reached the other server directly");
    await direct.arrayBuffer();

    for (const url of ["https://api.example.com/v1", "http://metadata.google.internal/x", "http://localhost:3000/x", "http://localhost/x"]) {
      const res = await undiciFetch(url);
      assert.equal(((await res.json()) as { headers: Record<string, string> }).headers["x-fallback"], "yes", url);
    }
    const res = await request("https://api.example.com/v2");
    assert.equal(((await res.body.json()) as { headers: Record<string, string> }).headers["x-fallback"], "yes");
    assert.deepEqual(fallback.origins.slice(-6), [
      `http://127.0.0.1:${backends[1]!.port}`,
      "https://api.example.com",
      "http://metadata.google.internal",
      "http://localhost:3000",
      "http://localhost",
      "https://api.example.com",
    ]);
    assert.equal(backends[0]!.seen.length, 1, "only the mesh call reached orders");
  });

  it("a service name with https:// or a port is refused, not passed to the fallback (DNS could resolve it around the mesh)", async () => {
    const before = fallback.origins.length;
    for (const url of ["https://orders/v1", "http://orders:8080/v1", "https://nosuch/x"]) {
      await assert.rejects(undiciFetch(url), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /with https:\/\/ or a port/.test(meshErrorOf(err)!.message), url);
    }
    assert.equal(fallback.origins.length, before, "nothing reached the fallback");
  });

  it("after close(), the dispatcher refuses everything, the fallback's origins too", async () => {
    const agent = new Agent();
    const closing = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }), fallbackDispatcher: agent });
    await closing.dispatcher.close();
    await assert.rejects(request(`http://127.0.0.1:${backends[1]!.port}/`, { dispatcher: closing.dispatcher }), (err: unknown) => isMeshError(err, "ERR_MESH_CLOSED"));
    await agent.close();
  });

  it("host names made up by requests leave no watch and no state behind", async () => {
    const registry = new MockRegistry({ orders: [backends[0]!.endpoint] });
    const made = createMesh({ registry, fallbackDispatcher: fallback });
    for (let i = 0; i < 50; i++) {
      await assert.rejects(request(`http://made-up-${i}/`, { dispatcher: made.dispatcher }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE"));
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(registry.watchCount("made-up-7"), 0, "its watch is closed");
    assert.deepEqual(made.snapshot().services.map((s) => s.name), []);
    // A service that exists stays, and one the code asked for by name stays even when it is missing.
    const ok = await request("http://orders/", { dispatcher: made.dispatcher });
    await ok.body.dump();
    await assert.rejects(made.client("later").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(made.snapshot().services.map((s) => s.name), ["later", "orders"]);
    // A service with no instance of its own that routes elsewhere (a splitter) is real: it stays watched.
    registry.setConfig("api", { splitter: { splits: [{ weight: 100, service: "orders" }] } });
    for (let i = 0; i < 3; i++) {
      const res = await request("http://api/", { dispatcher: made.dispatcher });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(registry.watchCount("api"), 1, "one watch, kept");
    // It comes back as soon as the registry knows it.
    registry.setEndpoints("made-up-7", [backends[1]!.endpoint]);
    const back = await request("http://made-up-7/", { dispatcher: made.dispatcher });
    assert.equal(back.statusCode, 200);
    await back.body.dump();
    await made.close();
  });

  it("without a fallback, such origins fail with ERR_INVALID_ARGUMENT saying how to add one", async () => {
    const plain = createMesh({ registry: new MockRegistry({ orders: [backends[0]!.endpoint] }) });
    try {
      await assert.rejects(undiciFetch(`http://127.0.0.1:${backends[1]!.port}/`, { dispatcher: plain.dispatcher }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && /fallbackDispatcher/.test((err as Error & { cause: Error }).cause.message));
      await assert.rejects(request("https://api.example.com/", { dispatcher: plain.dispatcher }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT"));
    } finally {
      await plain.close();
    }
  });

  it("refuses a fallback that is not a dispatcher, and does not close the fallback it was given", async () => {
    assert.throws(() => createMesh({ registry: new MockRegistry(), fallbackDispatcher: JSON.parse("{}") as Dispatcher }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /fallbackDispatcher/.test((err as Error).message));
    const agent = new Agent();
    const m = createMesh({ registry: new MockRegistry(), fallbackDispatcher: agent });
    await m.close();
    const res = await request(`http://127.0.0.1:${backends[1]!.port}/`, { dispatcher: agent });
    assert.equal(res.statusCode, 200, "the fallback still works after the mesh closed");
    await res.body.dump();
    await agent.close();
  });
});

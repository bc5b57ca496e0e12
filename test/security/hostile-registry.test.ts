import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { after, afterEach, before, describe, it } from "node:test";
import { ConsulRegistry, createMesh, isMeshError, meshErrorOf, type Mesh, type RegistryErrorEvent } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { startBackends, type Backend } from "../helpers/backend.ts";
import { nextEndpoints, nextRegistryError } from "../helpers/events.ts";
import { healthEntry, json, ScriptedConsul } from "../helpers/scripted-consul.ts";

/**
 * A hostile (or broken) Consul agent: answers too large to hold, nested too deep to walk, or emptied by
 * ACL filtering. Each is a registry_error that names the problem, and the endpoints known before stay in
 * force (the mesh keeps serving them).
 */

const HEALTH = "/v1/health/service/orders";
const MiB = 1024 * 1024;

/** Streams a JSON-looking body without end (up to `limit` bytes), with backpressure; resolves with the bytes written. */
function endlessBody(res: ServerResponse, limit: number): Promise<number> {
  return new Promise((resolve) => {
    res.writeHead(200, { "content-type": "application/json", "x-consul-index": "9" });
    const chunk = Buffer.from(`{"Node":{"Node":"n","Address":"${"x".repeat(MiB - 40)}"}},`);
    let written = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(written);
    };
    res.once("close", finish);
    res.write("[");
    const pump = (): void => {
      while (!done && !res.destroyed) {
        if (written >= limit) {
          res.end("{}]");
          return;
        }
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

describe("a hostile Consul agent: the mesh bounds what it reads and keeps its last good state", { timeout: 60_000 }, () => {
  let backend: Backend;
  let consul: ScriptedConsul;
  let mesh: Mesh | undefined;
  before(async () => {
    [backend] = (await startBackends(1, "h")) as [Backend];
  });
  after(() => backend.close());
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    await consul.close();
  });

  /** A mesh on a scripted agent, serving `orders` from the backend: its first, good answer. */
  async function meshWithGoodEndpoints(options: Record<string, unknown> = {}): Promise<Mesh> {
    consul = await ScriptedConsul.start();
    consul.script(HEALTH, (res) => json(res, [healthEntry("orders", "o1", backend.port)], 5));
    mesh = createMesh({ registry: new ConsulRegistry({ url: consul.url, initialBackoffMs: 5, burst: 10, queriesPerSecond: 100, ...options }) });
    await served(mesh);
    return mesh;
  }

  async function served(m: Mesh): Promise<void> {
    const res = await m.client("orders").request({ path: "/" });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["x-instance"], "h-0");
    await res.body.dump();
  }

  it("an endless answer is cut at the size cap (64 MiB by default): a registry_error naming the cap, and the endpoints stay", async () => {
    const m = await meshWithGoodEndpoints();
    const reported = nextRegistryError(m);
    let sent: Promise<number> = Promise.resolve(0);
    // The safety net of the attack itself: it stops at 256 MiB, so a client without a cap ends too.
    consul.script(HEALTH, (res) => {
      sent = endlessBody(res, 256 * MiB);
    });
    const event = await reported;
    assert.equal(event.service, "orders");
    assert.match(event.error.message, /larger than 64 MiB/);
    assert.match(event.error.message, /maxResponseBytes/);
    // The mesh hung up: the agent could not push much past the cap (socket buffers aside).
    const bytes = await sent;
    assert.ok(bytes < 80 * MiB, `the agent wrote ${bytes} bytes`);
    await served(m);
  });

  it("an answer whose Content-Length is over the cap is refused before its body is read", async () => {
    const m = await meshWithGoodEndpoints({ maxResponseBytes: MiB });
    const reported = nextRegistryError(m);
    let bodyRead = false;
    consul.script(HEALTH, (res) => {
      res.writeHead(200, { "content-type": "application/json", "x-consul-index": "9", "content-length": String(8 * MiB) });
      res.write("[", () => undefined);
      res.once("close", () => (bodyRead = res.writableFinished));
    });
    const event = await reported;
    assert.match(event.error.message, /Content-Length of 8388608 bytes is over the cap of 1 MiB.*maxResponseBytes/);
    assert.equal(bodyRead, false);
    await served(m);
  });

  it("an answer nested deeper than the depth cap is refused before it is parsed: a registry_error, no stack overflow, the endpoints stay", async () => {
    const m = await meshWithGoodEndpoints();
    const reported = nextRegistryError(m);
    consul.script(HEALTH, (res) => {
      res.writeHead(200, { "content-type": "application/json", "x-consul-index": "9" });
      res.end(nested(200_000));
    });
    const event = await reported;
    assert.match(event.error.message, /nested deeper than 64 levels.*maxResponseDepth/);
    await served(m);
  });

  it("a config entry list nested a million levels deep is a registry_error too, not a crash", async () => {
    consul = await ScriptedConsul.start();
    consul.script("/v1/config/service-router", (res) => {
      res.writeHead(200, { "content-type": "application/json", "x-consul-index": "3" });
      res.end(`[{"Kind":"service-router","Name":"orders","Routes":${nested(1_000_000)}}]`);
    });
    consul.script(HEALTH, (res) => json(res, [healthEntry("orders", "o1", backend.port)], 5));
    mesh = createMesh({ registry: new ConsulRegistry({ url: consul.url, initialBackoffMs: 5 }) });
    const errors: RegistryErrorEvent[] = [];
    mesh.on("registry_error", (e) => errors.push(e));
    await served(mesh);
    assert.ok(
      errors.some((e) => /service-router entries: .*nested deeper than 64 levels/.test(e.error.message)),
      errors.map((e) => e.error.message).join("\n"),
    );
  });

  it("an empty answer filtered by ACLs is a registry_error naming the service and the rule, not an unknown service", async () => {
    consul = await ScriptedConsul.start();
    const filtered = { "x-consul-results-filtered-by-acls": "true" };
    consul.script(HEALTH, (res) => json(res, [], 5, filtered));
    mesh = createMesh({ registry: new ConsulRegistry({ url: consul.url, token: "reader", initialBackoffMs: 5 }), discoveryTimeout: 300 });
    const reported = nextRegistryError(mesh);
    const call = mesh.client("orders").request({ path: "/" });
    const event = await reported;
    assert.match(event.error.message, /the ACL token may not read service 'orders'/);
    assert.match(event.error.message, /service:read on "orders"/);
    assert.match(event.error.message, /X-Consul-Results-Filtered-By-ACLs/);
    // Consul does not know the service is missing: it hid it. The caller hears the registry failed.
    consul.script(HEALTH, (res) => json(res, [], 6, filtered));
    await assert.rejects(call, (err: unknown) => {
      assert.ok(isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"), String(err));
      assert.match(err.message, /service:read on "orders"/);
      return true;
    });
  });

  it("an answer emptied by ACL filtering after good ones keeps the endpoints (a token that lost its rights is no scale-down)", async () => {
    const m = await meshWithGoodEndpoints({ token: "reader" });
    const reported = Promise.race([
      nextRegistryError(m),
      nextEndpoints(m, "orders").then((e) => assert.fail(`the endpoints changed to ${e.endpoints.size}`)),
    ]);
    consul.script(HEALTH, (res) => json(res, [], 6, { "x-consul-results-filtered-by-acls": "true" }));
    const event = await reported;
    assert.match(event.error.message, /service:read on "orders"/);
    await served(m);
    assert.equal(m.snapshot().services.find((s) => s.name === "orders")?.endpoints.length, 1);
  });

  it("the caps are options, validated", async () => {
    await new ConsulRegistry({ maxResponseBytes: MiB, maxResponseDepth: 16 }).close();
    for (const [key, value] of [["maxResponseBytes", 0], ["maxResponseBytes", 1.5], ["maxResponseDepth", 0], ["maxResponseDepth", "9"]] as const) {
      assert.throws(
        () => new ConsulRegistry({ [key]: value }),
        (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === `consul.${key}`,
      );
    }
  });
});

describe("ACL filtering as Consul (and FakeConsul) answers it", () => {
  it("a token without service:read gets Consul's filtered empty answer: the mesh says which rule is missing", async () => {
    const fake = await FakeConsul.start({ aclTokens: { admin: { serviceWrite: [""] }, others: { serviceRead: ["billing"] } } });
    const admin = new ConsulRegistry({ url: fake.url, token: "admin" });
    const registry = new ConsulRegistry({ url: fake.url, token: "others", initialBackoffMs: 5 });
    const mesh = createMesh({ registry, discoveryTimeout: 300 });
    try {
      await admin.register({ id: "orders-1", name: "orders", address: "127.0.0.1", port: 9 });
      const reported = nextRegistryError(mesh);
      const call = mesh.client("orders").request({ path: "/" });
      const event = await reported;
      assert.match(event.error.message, /service:read on "orders"/);
      await assert.rejects(call, (err: unknown) => isMeshError(err, "ERR_REGISTRY_UNAVAILABLE"));
    } finally {
      await mesh.close();
      await admin.close();
      await fake.close();
    }
  });
});

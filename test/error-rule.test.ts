import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fetch as undiciFetch, request as undiciRequest } from "undici";
import { createMesh, isMeshError, meshErrorOf, MeshError, type Mesh, type MeshErrorCode, type ServiceClient } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

/**
 * One rule for errors (README, "Errors"): fetch-shaped calls (`client.fetch`, any `fetch` with
 * `mesh.dispatcher`) reject as fetch does, with `TypeError("fetch failed")` whose `cause` is the
 * MeshError; every other API throws or rejects with the MeshError itself. `isMeshError(err, code)` is
 * true either way, and `meshErrorOf(err)` gives the MeshError.
 */

type Api = "request" | "fetch" | "dispatcher: undici.fetch" | "dispatcher: global fetch" | "dispatcher: undici.request";
const APIS: readonly Api[] = ["request", "fetch", "dispatcher: undici.fetch", "dispatcher: global fetch", "dispatcher: undici.request"];
const fetchShaped = (api: Api): boolean => api === "fetch" || api === "dispatcher: undici.fetch" || api === "dispatcher: global fetch";

/** Calls `service` at `path` through one API, and returns what it threw (or fails if it did not). */
async function failure(mesh: Mesh, api: Api, service: string, path: string, init: { method?: string; headers?: Record<string, string> } = {}, client?: ServiceClient): Promise<unknown> {
  const url = `http://${service}${path}`;
  try {
    switch (api) {
      case "request": {
        const res = await (client ?? mesh.client(service)).request({ path, ...(init.method === undefined ? {} : { method: init.method }), ...(init.headers === undefined ? {} : { headers: init.headers }) });
        await res.body.dump();
        break;
      }
      case "fetch":
        await (await (client ?? mesh.client(service)).fetch(path, init)).arrayBuffer();
        break;
      case "dispatcher: undici.fetch":
        await (await undiciFetch(url, { ...init, dispatcher: mesh.dispatcher })).arrayBuffer();
        break;
      case "dispatcher: global fetch":
        await (await fetch(url, { ...init, dispatcher: mesh.dispatcher } as unknown as RequestInit)).arrayBuffer();
        break;
      case "dispatcher: undici.request": {
        const res = await undiciRequest(url, { dispatcher: mesh.dispatcher, ...(init.method === undefined ? {} : { method: init.method as "GET" }), ...(init.headers === undefined ? {} : { headers: init.headers }) });
        await res.body.dump();
        break;
      }
    }
  } catch (err) {
    return err;
  }
  assert.fail(`${api} ${url} did not fail`);
}

/** Asserts the rule: the shape for the API, the code, and isMeshError/meshErrorOf agreeing. */
function follows(err: unknown, api: Api, code: MeshErrorCode): void {
  assert.ok(isMeshError(err, code), `${api}: isMeshError(err, ${code}) for ${String(err)} (cause: ${String((err as Error).cause)})`);
  assert.equal(meshErrorOf(err)?.code, code);
  if (fetchShaped(api)) {
    assert.ok(err instanceof TypeError, `${api}: fetch's convention, a TypeError; got ${String(err)}`);
    assert.ok(err.cause instanceof MeshError);
  } else {
    assert.ok(err instanceof MeshError, `${api}: the MeshError itself; got ${String(err)}`);
  }
}

describe("one rule for errors, through every API", () => {
  let backends: Backend[];
  let mesh: Mesh;
  const registry = new MockRegistry();
  before(async () => {
    backends = await startBackends(1);
    registry.setEndpoints("orders", backends.map((b) => b.endpoint));
    registry.setEndpoints("empty", []);
    registry.setEndpoints("sick", [{ id: "s1", address: "127.0.0.1", port: 1, health: "critical" }]);
    mesh = createMesh({ registry, resilience: { retries: false } });
  });
  after(async () => {
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  for (const api of APIS) {
    it(`${api}: an unknown service, a known empty one, an all-critical one`, async () => {
      follows(await failure(mesh, api, "nosuch", "/"), api, "ERR_UNKNOWN_SERVICE");
      follows(await failure(mesh, api, "empty", "/"), api, "ERR_NO_ENDPOINTS");
      follows(await failure(mesh, api, "sick", "/"), api, "ERR_NO_ENDPOINTS");
    });

    it(`${api}: arguments undici would refuse are ERR_INVALID_ARGUMENT, raised by the mesh, nothing sent`, async () => {
      const seen = backends[0]!.seen.length;
      // Node's and undici's fetch check the method and header values themselves, with their own TypeError
      // (fetch's convention for bad arguments); client.fetch checks them first, as the mesh.
      if (api === "dispatcher: undici.fetch" || api === "dispatcher: global fetch") {
        assert.ok((await failure(mesh, api, "orders", "/", { method: "GE\r\nT" })) instanceof TypeError);
      } else {
        follows(await failure(mesh, api, "orders", "/", { method: "GE\r\nT" }), api, "ERR_INVALID_ARGUMENT");
        follows(await failure(mesh, api, "orders", "/", { headers: { "x-a": "1\r\nx-b: 2" } }), api, "ERR_INVALID_ARGUMENT");
        follows(await failure(mesh, api, "orders", "/", { headers: { "bad name": "1" } }), api, "ERR_INVALID_ARGUMENT");
      }
      if (api === "request") {
        follows(await failure(mesh, api, "orders", "/a\nb"), api, "ERR_INVALID_ARGUMENT");
        follows(await failure(mesh, api, "orders", "/ä€"), api, "ERR_INVALID_ARGUMENT");
      }
      assert.equal(backends[0]!.seen.length, seen, "nothing reached the backend");
    });
  }

  it("request(): a path that is not a string is ERR_INVALID_ARGUMENT", async () => {
    await assert.rejects(mesh.client("orders").request({ path: 42 as unknown as string }), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && err instanceof MeshError);
  });

  it("fetch(): a URL for another host, a bad URL and a port are ERR_INVALID_ARGUMENT, in fetch's TypeError", async () => {
    for (const input of ["http://payments/x", "http://orders:8080/x", "//orders/x", "not a url"]) {
      const err = await mesh.client("orders").fetch(input).then(
        () => assert.fail(`${input} was accepted`),
        (e: unknown) => e,
      );
      follows(err, "fetch", "ERR_INVALID_ARGUMENT");
    }
  });

  it("a timed-out call and a closed mesh follow the same rule", async () => {
    const slow = backends[0]!;
    const timed = createMesh({ registry, resilience: { retries: false, timeoutMs: 50 } });
    slow.delayMs = 500;
    try {
      for (const api of APIS) follows(await failure(timed, api, "orders", "/"), api, "ERR_TIMEOUT");
    } finally {
      slow.delayMs = 0;
    }
    const client = timed.client("orders");
    await timed.close();
    // A client taken before close() fails as the mesh does; mesh.client() itself throws the MeshError.
    for (const api of APIS) follows(await failure(timed, api, "orders", "/", {}, client), api, "ERR_MESH_CLOSED");
    assert.throws(() => timed.client("orders"), (err: unknown) => err instanceof MeshError && err.code === "ERR_MESH_CLOSED");
  });

  it("fetch(): a GET with a body and a URL with credentials are ERR_INVALID_ARGUMENT too", async () => {
    follows(await mesh.client("orders").fetch("/", { method: "GET", body: "x" }).then(() => assert.fail("sent"), (e: unknown) => e), "fetch", "ERR_INVALID_ARGUMENT");
    follows(await mesh.client("orders").fetch("http://user:secret@orders/").then(() => assert.fail("sent"), (e: unknown) => e), "fetch", "ERR_INVALID_ARGUMENT");
  });

  it("messages never echo a query string or credentials (they may hold secrets)", async () => {
    const messages: string[] = [];
    const collect = (err: unknown): void => void messages.push(meshErrorOf(err)?.message ?? String(err));
    await mesh.client("orders").request({ path: "v1?api_key=SECRET1" }).catch(collect);
    await mesh.client("orders").request({ path: "/v1 x?api_key=SECRET2" }).catch(collect);
    await mesh.client("orders").fetch("http://payments/x?token=SECRET3").catch(collect);
    await mesh.client("orders").fetch("http://user:SECRET4@orders/x").catch(collect);
    await mesh.client("orders").fetch("http://orders:81/x?token=SECRET5").catch(collect);
    assert.equal(messages.length, 5);
    for (const m of messages) assert.doesNotMatch(m, /SECRET/, m);
  });

  it("meshErrorOf(err, code) gives the MeshError with that code, typed, or undefined", async () => {
    const err = await mesh.client("empty").fetch("/").catch((e: unknown) => e);
    const typed = meshErrorOf(err, "ERR_NO_ENDPOINTS");
    assert.equal(typed?.code, "ERR_NO_ENDPOINTS");
    assert.equal(typed?.details.service, "empty");
    assert.equal(meshErrorOf(err, "ERR_TIMEOUT"), undefined);
  });

  it("explain() checks its request as the calls do, before it watches anything, and always answers with a promise", async () => {
    for (const bad of [{ method: "GE T" }, { path: 42 }, { path: "/a\r\nb" }, { path: "no-slash" }, { headers: { "x-a": "1\r\n2" } }, { headers: "nope" }]) {
      await assert.rejects(mesh.explain("fresh", bad as never), (err: unknown) => isMeshError(err, "ERR_INVALID_ARGUMENT") && err instanceof MeshError, JSON.stringify(bad));
    }
    assert.equal(registry.watchCount("fresh"), 0, "a refused explain() watches nothing");
    const pending = mesh.explain("Not A Name");
    await assert.rejects(pending, (err: unknown) => isMeshError(err, "ERR_INVALID_SERVICE_NAME"));
    assert.equal((await mesh.explain("orders", { method: "POST", path: "/x?y=1", headers: { "x-a": "1" } })).error, undefined);
  });

  it("isMeshError looks one cause deep, for fetch's wrapping only, and meshErrorOf says what it found", () => {
    const inner = new MeshError("ERR_NO_ENDPOINTS", "none");
    assert.equal(isMeshError(new TypeError("fetch failed", { cause: inner }), "ERR_NO_ENDPOINTS"), true);
    assert.equal(isMeshError(new TypeError("fetch failed", { cause: inner }), "ERR_TIMEOUT"), false);
    assert.equal(isMeshError(new Error("x")), false);
    assert.equal(isMeshError(undefined), false);
    assert.equal(meshErrorOf(inner), inner);
    assert.equal(meshErrorOf(new TypeError("fetch failed", { cause: inner })), inner);
    assert.equal(meshErrorOf(new TypeError("fetch failed", { cause: new Error("other") })), undefined);
  });
});

import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { createMesh, EndpointSet, fileIdentity, isMeshError, type IdentitySource, type Mesh } from "proxyless";
import { FakeClock } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { ManualRegistry } from "./helpers/manual-registry.ts";

/** Lets pending promise callbacks run (the fake clock moves only when told). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("a call's waits: its deadline counts them, and the caller can abort them", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(1);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  for (const api of ["request", "fetch"] as const) {
    it(`${api}: the deadline counts from the call's start, the wait for the registry included`, async () => {
      // On the real clock, as in production: a registry that answers 800 ms into a call whose deadline is 1000 ms.
      const registry = new ManualRegistry();
      const mesh = createMesh({ registry, resilience: { timeoutMs: 1000, retries: false } });
      const hung = backends[0]!;
      try {
        const started = performance.now();
        // /hold is answered only when the test releases it: long after any deadline.
        const call = api === "request" ? mesh.client("orders").request({ path: "/hold" }) : mesh.client("orders").fetch("/hold");
        const answer = setTimeout(() => registry.send("orders", { type: "endpoints", endpoints: EndpointSet.of("orders", [hung.endpoint]) }), 800);
        await assert.rejects(call, (err: unknown) => isMeshError(err, "ERR_TIMEOUT"));
        clearTimeout(answer);
        const elapsed = performance.now() - started;
        // At its deadline (1000 ms), not 1000 ms after the registry answered (1800 ms).
        assert.ok(elapsed >= 950 && elapsed < 1500, `ended after ${Math.round(elapsed)} ms`);
      } finally {
        await mesh.destroy();
        hung.release();
      }
    });

    it(`${api}: aborting a call that waits for the registry ends it at once, with the abort's reason`, async () => {
      const registry = new ManualRegistry();
      const mesh: Mesh = createMesh({ registry, discoveryTimeout: 60_000 });
      const abort = new AbortController();
      const call = api === "request" ? mesh.client("orders").request({ path: "/", signal: abort.signal }) : mesh.client("orders").fetch("/", { signal: abort.signal });
      await turn();
      const reason = new Error("caller gave up");
      abort.abort(reason);
      await assert.rejects(call, (err: unknown) => err === reason);
      await mesh.close();
    });
  }

  it("request: aborting a call that waits in a retry backoff ends it at once", async () => {
    const clock = new FakeClock();
    const registry = new ManualRegistry();
    const resilience = { timeoutMs: 300_000, retries: { backoffBaseMs: 60_000, backoffMaxMs: 60_000 }, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } };
    const mesh = createMesh({ registry, clock, resilience, random: { next: () => 0.99 } });
    mesh.client("orders");
    registry.send("orders", { type: "endpoints", endpoints: EndpointSet.of("orders", [backends[0]!.endpoint]) });
    backends[0]!.failWith = 503;
    try {
      const abort = new AbortController();
      const seen = backends[0]!.seen.length;
      const call = mesh.client("orders").request({ path: "/", signal: abort.signal });
      // The 503 came back (its endpoint is ejected on the spot): the call goes on to wait out its 60 s backoff.
      await once(mesh, "endpoint_ejected");
      abort.abort(new Error("caller gave up"));
      await assert.rejects(call, /caller gave up/);
      assert.equal(backends[0]!.seen.length, seen + 1, "no retry was sent");
    } finally {
      backends[0]!.failWith = undefined;
      await mesh.close();
    }
  });
});

describe("waits for the mesh's identity end at their limit, whatever the identity source does", () => {
  /** An identity source written before ready() took a signal: it never answers, and ignores the signal. */
  const stuck: IdentitySource = {
    current: () => undefined,
    ready: () => new Promise(() => undefined),
    subscribe: () => () => undefined,
    close: () => Promise.resolve(),
  };

  it("a call to an mTLS endpoint fails with ERR_IDENTITY_UNAVAILABLE at the connect timeout", async () => {
    const registry = new ManualRegistry();
    const mesh = createMesh({ registry, tls: { identity: stuck }, pool: { connectTimeout: 300 }, resilience: { retries: false } });
    mesh.client("orders");
    registry.send("orders", { type: "endpoints", endpoints: EndpointSet.of("orders", [{ address: "127.0.0.1", port: 1, tls: true }]) });
    await assert.rejects(mesh.client("orders").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_IDENTITY_UNAVAILABLE"));
    await mesh.close();
  });

  it("inbound().serverOptions(ms) rejects at its limit", async () => {
    const mesh = createMesh({ registry: new ManualRegistry(), tls: { identity: stuck } });
    await assert.rejects(mesh.inbound().serverOptions(200), (err: unknown) => isMeshError(err, "ERR_IDENTITY_UNAVAILABLE"));
    await mesh.close();
  });

  it("a directory that cannot be watched is ERR_INVALID_CONFIG naming it, not a raw ENOENT", () => {
    assert.throws(() => fileIdentity({ certFile: "/nonexistent/tls.crt", keyFile: "/nonexistent/tls.key", caFile: "/nonexistent/ca.crt" }), (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && /nonexistent/.test((err as Error).message));
  });

  it("ready() on a closed source rejects at once", async () => {
    const source = fileIdentity({ certFile: "/nonexistent/tls.crt", keyFile: "/nonexistent/tls.key", caFile: "/nonexistent/ca.crt", watch: false });
    await source.close();
    await assert.rejects(source.ready(), (err: unknown) => isMeshError(err, "ERR_IDENTITY_UNAVAILABLE"));
  });
});

describe("a fetch's wait for the registry counts for its first request only", () => {
  let backend: Backend;
  before(async () => {
    [backend] = (await startBackends(1)) as [Backend];
  });
  after(() => backend.close());

  it("a redirect is a new request with its own deadline", async () => {
    const registry = new ManualRegistry();
    const mesh = createMesh({ registry, resilience: { timeoutMs: 1500, retries: false } });
    backend.delayMs = 700; // each answer takes 700 ms: the redirect, then the page
    try {
      setTimeout(() => registry.send("orders", { type: "endpoints", endpoints: EndpointSet.of("orders", [backend.endpoint]) }), 300);
      const res = await mesh.client("orders").fetch(`/redirect?to=${encodeURIComponent("http://orders/page")}`);
      // 300 + 700 ms for the first request, 700 ms for the second: both within 1500 ms of their own start.
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { url: string }).url, "/page");
    } finally {
      backend.delayMs = 0;
      await mesh.close();
    }
  });
});

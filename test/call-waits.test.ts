import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { createMesh, EndpointSet, isMeshError, type Mesh } from "proxyless";
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

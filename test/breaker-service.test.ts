import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import diagnostics from "node:diagnostics_channel";
import { request as undiciRequest } from "undici";
import { createMesh, type Mesh, type ResilienceOptions } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { Backend, startBackends } from "./helpers/backend.ts";
import { outcomeOf } from "./helpers/outcomes.ts";


describe("the service breaker opens for a failing service, never for one bad instance", () => {
  let backends: Backend[];
  let mesh: Mesh | undefined;
  before(async () => {
    backends = await startBackends(10, "brk");
  });
  after(() => Promise.all(backends.map((b) => b.close())));
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
    for (const b of backends) b.reset();
  });
  const start = (resilience?: ResilienceOptions, n = 10): Mesh =>
    (mesh = createMesh({ registry: new MockRegistry({ orders: backends.slice(0, n).map((b) => b.endpoint) }), random: createSeededRandom(11), ...(resilience === undefined ? {} : { resilience }) }));

  for (const path of ["request", "dispatcher"] as const) {
    it(`one of ten instances killed with POSTs in flight (${path}): the calls on it fail, no call after it meets ERR_CIRCUIT_OPEN`, async () => {
      const victim = backends[3]!;
      victim.delayMs = 60_000; // it hangs, so that POSTs pile up on it before it dies
      const m = start();
      const client = m.client("orders");
      // Calls in flight on the victim when it dies: every attempt sent to it (it answers none).
      let sentToVictim = 0;
      let counting = true;
      const onPick = (message: unknown): void => {
        if (counting && (message as { endpoint: { id: string } }).endpoint.id === victim.name) sentToVictim++;
      };
      diagnostics.subscribe("proxyless:pick", onPick);
      const send = (i: number): Promise<string> => {
        const init = { path: `/pay/${i}`, method: "POST" as const, body: `{"n":${i}}` };
        const sent = path === "request" ? client.request(init) : undiciRequest(`http://orders${init.path}`, { method: "POST", body: init.body, dispatcher: m.dispatcher });
        return outcomeOf(sent);
      };
      // 32 in flight, until six POSTs hang on the victim.
      let n = 0;
      const early: Promise<string>[] = [];
      while (victim.seen.length < 6) {
        const batch = Array.from({ length: 32 }, () => send(n++));
        early.push(...batch);
        await Promise.race([Promise.all(batch), new Promise((resolve) => victim.events.once("request", resolve))]);
      }
      counting = false;
      await victim.kill();
      diagnostics.unsubscribe("proxyless:pick", onPick);
      const killed = (await Promise.all(early)).filter((o) => o !== "200");
      assert.ok(killed.length <= sentToVictim, `${killed.length} failed, ${sentToVictim} were in flight on the victim`);
      const outcomes = new Map<string, number>();
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next++ < 1000) {
            const o = await send(n++);
            outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
          }
        }),
      );
      assert.equal(outcomes.get("ERR_CIRCUIT_OPEN") ?? 0, 0, `outcomes after the kill: ${JSON.stringify([...outcomes])}`);
      assert.ok((outcomes.get("200") ?? 0) >= 995, `outcomes after the kill: ${JSON.stringify([...outcomes])}`);
      victim.reset();
      await victim.close().catch(() => undefined);
      backends[3] = await Backend.start("brk-3");
    });
  }

  it("five calls failing together on one endpoint (a startup stall: per-try timeouts) do not open it", async () => {
    backends[0]!.delayMs = 500;
    const m = start({ perTryTimeoutMs: 100, retries: false }, 10);
    const opened: string[] = [];
    m.on("breaker_state_changed", (e) => opened.push(e.state));
    const client = m.client("orders");
    const outcomes = await Promise.all(Array.from({ length: 60 }, () => outcomeOf(client.request({ path: "/" }))));
    assert.ok(outcomes.filter((o) => o === "ERR_TIMEOUT").length >= 5, `some timed out: ${outcomes.join(",")}`);
    assert.deepEqual(opened, [], "the breaker stayed closed");
    const later = await outcomeOf(client.request({ path: "/" }));
    assert.notEqual(later, "ERR_CIRCUIT_OPEN");
  });

  it("opens when the service as a whole fails (every instance 503), and counts calls, not attempts", async () => {
    for (const b of backends.slice(0, 3)) b.failWith = 503;
    const m = start(undefined, 3);
    const states: string[] = [];
    m.on("breaker_state_changed", (e) => states.push(e.state));
    const client = m.client("orders");
    let circuitOpen = 0;
    let calls = 0;
    for (let i = 0; i < 200 && circuitOpen === 0; i++) {
      calls++;
      const o = await outcomeOf(client.request({ path: "/" }));
      if (o === "ERR_CIRCUIT_OPEN") circuitOpen++;
    }
    assert.deepEqual(states.slice(0, 1), ["open"]);
    assert.ok(circuitOpen > 0, "a later call is refused at once");
    assert.ok(calls >= 20, `not before the minimum volume of calls: opened after ${calls}`);
  });

  it("a call that a retry saved counts as a success", async () => {
    // Every other attempt fails with 503 (failEvery 2 on each instance), every call is saved by its retry.
    for (const b of backends.slice(0, 2)) b.failEvery = 2;
    const m = start({ outlier: false, budget: { percent: 100 } }, 2);
    const states: string[] = [];
    m.on("breaker_state_changed", (e) => states.push(e.state));
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      const res = await m.client("orders").request({ path: "/" });
      await res.body.dump();
      if (res.statusCode === 200) ok++;
    }
    assert.equal(ok, 100);
    assert.deepEqual(states, []);
  });
});

describe("a caller that retries in a tight loop against an open breaker", () => {
  it("does not starve the event loop: refusals come after the loop turns, so timers run and the breaker half-opens", async (t) => {
    const [backend] = await startBackends(1);
    backend!.failWith = 503;
    const mesh = createMesh({ registry: new MockRegistry({ orders: [backend!.endpoint] }), resilience: { retries: false, outlier: false, breaker: { kind: "consecutive", threshold: 2, halfOpenAfterMs: 50 } } });
    t.after(() => Promise.all([mesh.destroy(new Error("test over")), backend!.close()]));
    const client = mesh.client("orders");
    // Open it.
    for (let i = 0; i < 2; i++) await (await client.request({ path: "/" })).body.dump();
    backend!.failWith = undefined;
    let ticked = false;
    setTimeout(() => (ticked = true), 1);
    // As the rotation test's eight loops did: no delay between tries. One loop's probe waits on a socket
    // while the others are refused; if refusals came in microtasks, the socket would never be read.
    // Bounded by count, so a starved event loop shows as loops that ran out rather than as a hang.
    let ok = 0;
    let ranOut = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; ok === 0; i++) {
          if (i === 20_000) {
            ranOut++;
            return;
          }
          try {
            await (await client.request({ path: "/" })).body.dump();
            ok++;
          } catch {
            // ERR_CIRCUIT_OPEN until the breaker half-opens and its probe succeeds
          }
        }
      }),
    );
    assert.ok(ticked, "a timer ran while the callers looped");
    assert.equal(ranOut, 0, "every loop saw the probe succeed before running out");
    assert.ok(ok >= 1, "the breaker half-opened and its probe went through");
  });
});

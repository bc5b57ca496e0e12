import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  createMesh,
  isMeshError,
  StaticRegistry,
  type BalancerPlugin,
  type ConfigRejectedEvent,
  type MeshOptions,
  type PickTarget,
  meshErrorOf,
} from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";

const invalidAt = (field: string) => (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === field;

/** A balancer that always picks the first target: easy to observe. */
const first: BalancerPlugin<{ readonly index: number }> = {
  name: "first",
  parseConfig(raw, field) {
    const index = (raw as { index?: unknown } | undefined)?.index ?? 0;
    if (typeof index !== "number") throw new TypeError(`${field}.index must be a number`);
    return { index };
  },
  createPicker<T extends PickTarget>(targets: readonly T[], config: { readonly index: number }) {
    const target = targets[Math.min(config.index, targets.length - 1)]!;
    return { pick: () => target };
  },
};

describe("mesh options are validated", () => {
  const registry = new MockRegistry();
  for (const [name, options, field] of [
    ["no registry", {}, "registry"],
    ["an unknown option", { registry, retires: 3 }, "options.retires"],
    ["an unknown balancer", { registry, loadBalancer: { policy: "fastest" } }, "loadBalancer.policy"],
    ["a bad balancer option", { registry, loadBalancer: { policy: "round_robin", config: { x: 1 } } }, "loadBalancer.config.x"],
    ["zero pool connections", { registry, pool: { connections: 0 } }, "pool.connections"],
    ["an unknown pool option", { registry, pool: { keepAlive: true } }, "pool.keepAlive"],
    ["a negative discovery timeout", { registry, discoveryTimeout: -1 }, "discoveryTimeout"],
    ["a duplicate balancer name", { registry, balancers: [{ ...first, name: "round_robin" }] }, "balancers"],
    ["a bad success-rate factor", { registry, resilience: { outlier: { successRate: { stdevFactor: -1 } } } }, "resilience.outlier.successRate.stdevFactor"],
    ["an unknown success-rate option", { registry, upstreams: { orders: { outlier: { successRate: { window: 1 } } } } }, "upstreams.orders.outlier.successRate.window"],
  ] as const) {
    it(`rejects ${name} with ERR_INVALID_CONFIG at '${field}'`, () => {
      assert.throws(() => createMesh(options as unknown as MeshOptions), invalidAt(field));
    });
  }

  it("rejects a bad own service name", () => {
    assert.throws(() => createMesh({ registry, service: "Checkout" }), (err: unknown) => isMeshError(err, "ERR_INVALID_SERVICE_NAME"));
  });
});

describe("service config from the registry", () => {
  let backends: Backend[];
  before(async () => {
    backends = await startBackends(3);
  });
  after(() => Promise.all(backends.map((b) => b.close())));

  async function instances(mesh: ReturnType<typeof createMesh>, n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const { headers, body } = await mesh.client("orders").request({ path: "/" });
      await body.dump();
      out.push(String(headers["x-instance"]));
    }
    return out;
  }

  it("selects a user's balancer plugin, and a bad config is refused while the last good one serves", async () => {
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({ registry, balancers: [first] });
    const rejected: ConfigRejectedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    mesh.client("orders");
    assert.equal(mesh.inspect("orders")?.policy, "round_robin");

    registry.setConfig("orders", { loadBalancer: { policy: "first", config: { index: 1 } } });
    assert.equal(mesh.inspect("orders")?.policy, "first");
    assert.deepEqual(await instances(mesh, 3), ["orders-1", "orders-1", "orders-1"]);

    registry.setConfig("orders", { loadBalancer: { policy: "fastest" } });
    assert.equal(rejected.length, 1);
    assert.ok(invalidAt("loadBalancer.policy")(rejected[0]!.error));
    assert.match(rejected[0]!.error.message, /unknown balancer "fastest"; registered: round_robin, weighted_round_robin, least_request, peak_ewma, random, ring_hash, maglev, first/);
    assert.deepEqual(await instances(mesh, 2), ["orders-1", "orders-1"], "the last good config keeps serving");

    registry.setConfig("orders", { loadBalancer: { policy: "first", config: { index: "x" } } });
    assert.equal(rejected.length, 2, "a plugin's own error is a rejection too, not a crash");
    assert.ok(invalidAt("loadBalancer.config")(rejected[1]!.error));
    assert.ok(rejected[1]!.error.cause instanceof TypeError);
    assert.equal(mesh.inspect("orders")?.policy, "first");

    registry.setConfig("orders", {});
    assert.equal(mesh.inspect("orders")?.policy, "round_robin");
    assert.equal(new Set(await instances(mesh, 3)).size, 3);
    await mesh.close();
  });

  it("falls back to round robin, and says so, when a plugin fails to build a picker", async () => {
    const broken: BalancerPlugin<Record<string, never>> = {
      name: "broken",
      parseConfig: () => ({}),
      createPicker: () => {
        throw new Error("boom");
      },
    };
    const registry = new MockRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({ registry, balancers: [broken] });
    const rejected: ConfigRejectedEvent[] = [];
    mesh.on("config_rejected", (e) => rejected.push(e));
    mesh.client("orders");
    assert.doesNotThrow(() => registry.setConfig("orders", { loadBalancer: { policy: "broken" } }));
    assert.equal(rejected.length, 1);
    assert.match(rejected[0]!.error.message, /'broken' failed to build a picker \(boom\); using round_robin/);
    assert.equal(new Set(await instances(mesh, 3)).size, 3);
    await mesh.close();
  });

  it("StaticRegistry serves a fixed list, and the mesh default balancer applies", async () => {
    const registry = new StaticRegistry({ orders: backends.map((b) => b.endpoint) });
    const mesh = createMesh({ registry, balancers: [first], loadBalancer: { policy: "first" } });
    assert.deepEqual(await instances(mesh, 2), ["orders-0", "orders-0"]);
    await assert.rejects(mesh.client("payments").request({ path: "/" }), (err: unknown) => isMeshError(err, "ERR_UNKNOWN_SERVICE"));
    await mesh.close();
  });
});

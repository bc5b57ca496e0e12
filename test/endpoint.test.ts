import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createEndpoint, EndpointSet, isMeshError, withHealth, meshErrorOf } from "proxyless";

describe("createEndpoint", () => {
  it("fills defaults and freezes the record", () => {
    const e = createEndpoint({ address: "10.0.0.1", port: 8080 });
    assert.equal(e.id, "10.0.0.1:8080");
    assert.equal(e.origin, "http://10.0.0.1:8080");
    assert.deepEqual(e.weights, { passing: 1, warning: 1 });
    assert.equal(e.weight, 1);
    assert.equal(e.health, "passing");
    assert.ok(Object.isFrozen(e) && Object.isFrozen(e.tags) && Object.isFrozen(e.meta));
  });

  it("brackets IPv6 addresses in the origin", () => {
    assert.equal(createEndpoint({ address: "::1", port: 80 }).origin, "http://[::1]:80");
  });

  it("takes the weight that goes with the health, as Consul does", () => {
    const e = createEndpoint({ address: "a", port: 1, weights: { passing: 10, warning: 2 } });
    assert.equal(e.weight, 10);
    assert.equal(withHealth(e, "warning").weight, 2);
    assert.equal(withHealth(e, "critical").weight, 0);
    assert.equal(createEndpoint({ address: "a", port: 1, weight: 3 }).weights.passing, 3);
  });

  for (const [name, input, field] of [
    ["empty address", { address: "", port: 1 }, "address"],
    ["address with a slash", { address: "a/b", port: 1 }, "address"],
    ["port 0", { address: "a", port: 0 }, "port"],
    ["port 70000", { address: "a", port: 70000 }, "port"],
    ["fractional port", { address: "a", port: 1.5 }, "port"],
    ["negative weight", { address: "a", port: 1, weight: -1 }, "weights.passing"],
    ["zero passing weight", { address: "a", port: 1, weights: { passing: 0 } }, "weights.passing"],
    ["infinite weight", { address: "a", port: 1, weight: Infinity }, "weights.passing"],
    ["NaN warning weight", { address: "a", port: 1, weights: { warning: NaN } }, "weights.warning"],
    ["unknown health", { address: "a", port: 1, health: "sick" }, "health"],
    ["non-string tag", { address: "a", port: 1, tags: [1] }, "tags"],
  ] as const) {
    it(`rejects ${name} with ERR_INVALID_ENDPOINT naming '${field}'`, () => {
      assert.throws(
        () => createEndpoint(input as never),
        (err: unknown) => isMeshError(err, "ERR_INVALID_ENDPOINT") && meshErrorOf(err)?.details.field === field,
      );
    });
  }
});

describe("EndpointSet", () => {
  it("keeps ready endpoints apart: critical and zero-weight ones are out", () => {
    const set = EndpointSet.of("orders", [
      { address: "a", port: 1 },
      { address: "b", port: 1, health: "critical" },
      { address: "c", port: 1, health: "warning", weights: { passing: 1, warning: 0 } },
      { address: "d", port: 1, health: "warning" },
    ]);
    assert.equal(set.size, 4);
    assert.deepEqual(set.ready.map((e) => e.address), ["a", "d"]);
    assert.ok(Object.isFrozen(set) && Object.isFrozen(set.all) && Object.isFrozen(set.ready));
  });

  it("rejects two endpoints with one id", () => {
    assert.throws(
      () => EndpointSet.of("orders", [{ address: "a", port: 1 }, { address: "a", port: 1 }]),
      (err: unknown) => isMeshError(err, "ERR_INVALID_ENDPOINT") && /share the id 'a:1'/.test(err.message),
    );
  });

  it("diffs added, removed and changed endpoints by id", () => {
    const before = EndpointSet.of("orders", [{ address: "a", port: 1 }, { address: "b", port: 1 }, { address: "c", port: 1 }]);
    const after = EndpointSet.of("orders", [
      before.get("a:1")!,
      { address: "b", port: 1, health: "critical" },
      { address: "d", port: 1 },
    ]);
    const diff = after.diff(before);
    assert.deepEqual(diff.added.map((e) => e.id), ["d:1"]);
    assert.deepEqual(diff.removed.map((e) => e.id), ["c:1"]);
    assert.deepEqual(diff.changed.map((e) => e.id), ["b:1"]);
    assert.deepEqual(after.diff(undefined).added.length, 3);
  });

  it("sees equal records as unchanged even when rebuilt", () => {
    const input = { address: "a", port: 1, tags: ["x"], meta: { v: "1" } };
    const diff = EndpointSet.of("s", [input]).diff(EndpointSet.of("s", [input]));
    assert.deepEqual([diff.added.length, diff.removed.length, diff.changed.length], [0, 0, 0]);
  });
});

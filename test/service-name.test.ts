import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertServiceName, createMesh, isMeshError, isValidServiceName } from "proxyless";
import { MockRegistry } from "proxyless/testing";

const bad = ["", "Orders", "or ders", "a/b", "..", "../etc", "orders.", "-orders", "orders-", "a".repeat(64), "orders_v2", "ordérs"];
const good = ["orders", "a", "payments-v2", "9lives", "a".repeat(63)];

describe("service names are DNS labels", () => {
  for (const name of bad) {
    it(`rejects ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, () => {
      assert.equal(isValidServiceName(name), false);
      assert.throws(() => assertServiceName(name), (err: unknown) => isMeshError(err, "ERR_INVALID_SERVICE_NAME"));
    });
  }
  it("accepts lower-case labels up to 63 characters", () => {
    for (const name of good) assert.equal(assertServiceName(name), name);
  });

  it("rejects a bad name in mesh.client before the registry is asked", async () => {
    const registry = new MockRegistry();
    const mesh = createMesh({ registry });
    for (const name of bad) {
      assert.throws(() => mesh.client(name), (err: unknown) => isMeshError(err, "ERR_INVALID_SERVICE_NAME") && /DNS label/.test(err.message));
      assert.equal(registry.watchCount(name), 0);
    }
    await mesh.close();
  });

  it("rejects a bad name in the registry", () => {
    assert.throws(() => new MockRegistry().setEndpoints("Bad/Name", []), (err: unknown) => isMeshError(err, "ERR_INVALID_SERVICE_NAME"));
  });
});

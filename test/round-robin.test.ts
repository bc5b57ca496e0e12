import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMeshError, roundRobin, type PickTarget, meshErrorOf } from "proxyless";
import { env, NO_HASH, tally, targets } from "./helpers/targets.ts";

describe("round_robin", () => {
  it("visits every target once per cycle, exactly evenly", () => {
    const picker = roundRobin.createPicker(targets([1, 1, 1]), roundRobin.parseConfig(undefined, "c"), env(7));
    assert.deepEqual([...tally(() => picker.pick(NO_HASH), 3000).values()], [1000, 1000, 1000]);
  });

  it("starts at a random index, so a fleet does not hit the same endpoint first", () => {
    const list = targets(Array<number>(10).fill(1));
    const firsts = new Set<PickTarget>();
    for (let seed = 0; seed < 50; seed++) firsts.add(roundRobin.createPicker(list, {}, env(seed)).pick(NO_HASH));
    assert.ok(firsts.size >= 5, `only ${firsts.size} distinct first picks over 50 seeds`);
  });

  it("is deterministic for a seed", () => {
    const list = targets([1, 1, 1, 1, 1]);
    const run = (): PickTarget[] => {
      const p = roundRobin.createPicker(list, {}, env(42));
      return Array.from({ length: 7 }, () => p.pick(NO_HASH));
    };
    assert.deepEqual(run(), run());
  });

  it("rejects options it does not know", () => {
    assert.throws(
      () => roundRobin.parseConfig({ weigths: true }, "loadBalancer.config"),
      (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === "loadBalancer.config.weigths",
    );
  });
});

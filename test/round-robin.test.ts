import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createEndpoint, isMeshError, roundRobin, systemClock, type PickTarget } from "proxyless";
import { createSeededRandom } from "proxyless/testing";

function targets(n: number): PickTarget[] {
  return Array.from({ length: n }, (_, i) => ({ endpoint: createEndpoint({ address: `10.0.0.${i}`, port: 80 }) }));
}

describe("round_robin", () => {
  it("visits every target once per cycle, exactly evenly", () => {
    const list = targets(3);
    const picker = roundRobin.createPicker(list, roundRobin.parseConfig(undefined, "c"), { clock: systemClock, random: createSeededRandom(7) });
    const counts = new Map<PickTarget, number>();
    for (let i = 0; i < 3000; i++) {
      const t = picker.pick({});
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    assert.deepEqual([...list].map((t) => counts.get(t)), [1000, 1000, 1000]);
  });

  it("starts at a random index, so a fleet does not hit the same endpoint first", () => {
    const list = targets(10);
    const firsts = new Set<PickTarget>();
    for (let seed = 0; seed < 50; seed++) {
      firsts.add(roundRobin.createPicker(list, {}, { clock: systemClock, random: createSeededRandom(seed) }).pick({}));
    }
    assert.ok(firsts.size >= 5, `only ${firsts.size} distinct first picks over 50 seeds`);
  });

  it("is deterministic for a seed", () => {
    const list = targets(5);
    const run = (): PickTarget[] => {
      const p = roundRobin.createPicker(list, {}, { clock: systemClock, random: createSeededRandom(42) });
      return Array.from({ length: 7 }, () => p.pick({}));
    };
    assert.deepEqual(run(), run());
  });

  it("rejects options it does not know", () => {
    assert.throws(
      () => roundRobin.parseConfig({ weigths: true }, "loadBalancer.config"),
      (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && err.details.field === "loadBalancer.config.weigths",
    );
  });
});

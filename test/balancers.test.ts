import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  EndpointLoad,
  hash32,
  isMeshError,
  leastRequest,
  maglev,
  peakEwma,
  random,
  ringHash,
  weightedRoundRobin,
  type BalancerPlugin,
  type PickTarget,
  type Picker,
  meshErrorOf,
} from "proxyless";
import { FakeClock, createSeededRandom } from "proxyless/testing";
import { env, NO_HASH, tally, targets, type FakeTarget } from "./helpers/targets.ts";

const invalidAt = (field: string) => (err: unknown) => isMeshError(err, "ERR_INVALID_CONFIG") && meshErrorOf(err)?.details.field === field;

function build<C>(plugin: BalancerPlugin<C>, list: readonly FakeTarget[], raw?: unknown, seed = 1): Picker<FakeTarget> {
  return plugin.createPicker(list, plugin.parseConfig(raw, "config"), env(seed));
}

describe("weighted_round_robin", () => {
  it("gives integer weights their exact share in every cycle of sum(weights) picks, whatever the seed", () => {
    const weights = [1, 2, 3, 4];
    for (let seed = 0; seed < 20; seed++) {
      const picker = build(weightedRoundRobin, targets(weights), undefined, seed);
      for (let cycle = 0; cycle < 50; cycle++) {
        const counts = tally(() => picker.pick(NO_HASH), 10);
        assert.deepEqual([0, 1, 2, 3].map((i) => counts.get(`t${i}`) ?? 0), weights, `seed ${seed}, cycle ${cycle}`);
      }
    }
  });

  it("interleaves rather than sending a weight's worth in a row", () => {
    const picker = build(weightedRoundRobin, targets([5, 5, 1]), undefined, 3);
    const ids = Array.from({ length: 11 }, () => picker.pick(NO_HASH).endpoint.id);
    let longestRun = 1;
    for (let i = 1, run = 1; i < ids.length; i++) longestRun = Math.max(longestRun, (run = ids[i] === ids[i - 1] ? run + 1 : 1));
    assert.ok(longestRun <= 2, `a run of ${longestRun}: ${ids.join(" ")}`);
  });

  it("is plain round robin with equal weights", () => {
    const picker = build(weightedRoundRobin, targets([2, 2, 2]));
    assert.deepEqual([...tally(() => picker.pick(NO_HASH), 300).values()], [100, 100, 100]);
  });
});

describe("least_request", () => {
  it("never picks the more loaded of its two choices", () => {
    const list = targets(Array<number>(10).fill(1));
    list.forEach((t, i) => (t.load.pending = i)); // t0 least loaded ... t9 most
    const picker = build(leastRequest, list);
    const n = 100_000;
    const counts = tally(() => picker.pick(NO_HASH), n);
    assert.equal(counts.get("t9"), undefined, "the most loaded target loses every pair it is in");
    // t_k is picked when drawn and paired with a more loaded one: P = 2/n × (n-1-k)/(n-1).
    for (let k = 0; k < 9; k++) {
      const expected = (2 / 10) * ((9 - k) / 9);
      const share = (counts.get(`t${k}`) ?? 0) / n;
      assert.ok(Math.abs(share - expected) < 0.01, `t${k}: ${share.toFixed(4)} vs ${expected.toFixed(4)}`);
    }
  });

  it("with more choices, concentrates on the least loaded", () => {
    const list = targets(Array<number>(10).fill(1));
    list.forEach((t, i) => (t.load.pending = i));
    const share = (choiceCount: number): number => {
      const picker = build(leastRequest, list, { choiceCount });
      return (tally(() => picker.pick(NO_HASH), 20_000).get("t0") ?? 0) / 20_000;
    };
    // t0 wins whenever drawn: 1 - P(not drawn) = 0.2 with two distinct draws, 1 - 0.9 × 0.8^... with more.
    assert.ok(Math.abs(share(2) - 0.2) < 0.015, `choiceCount 2: ${share(2)}`);
    assert.ok(Math.abs(share(5) - (1 - 0.9 * (8 / 9) * 0.9 ** 3)) < 0.015, `choiceCount 5: ${share(5)}`);
  });

  it("with unequal weights, splits by weight / (active + 1)", () => {
    const list = targets([1, 3]);
    const picker = build(leastRequest, list);
    const idle = tally(() => picker.pick(NO_HASH), 4000);
    assert.ok(Math.abs((idle.get("t1") ?? 0) / 4000 - 0.75) < 0.01, "idle: 1:3 by weight");
    list[1]!.load.pending = 5; // effective weight 3 / 6 = 0.5 against 1 / 1
    const busy = tally(() => picker.pick(NO_HASH), 3000);
    assert.ok(Math.abs((busy.get("t1") ?? 0) / 3000 - 1 / 3) < 0.02, `busy: ${busy.get("t1")}`);
  });

  it("rejects choiceCount below 2 and an unknown option, naming the field", () => {
    assert.throws(() => leastRequest.parseConfig({ choiceCount: 1 }, "loadBalancer.config"), invalidAt("loadBalancer.config.choiceCount"));
    assert.throws(() => leastRequest.parseConfig({ choiceCount: 2.5 }, "c"), invalidAt("c.choiceCount"));
    assert.throws(() => leastRequest.parseConfig({ activeRequestBias: -1 }, "c"), invalidAt("c.activeRequestBias"));
    assert.throws(() => leastRequest.parseConfig({ choice_count: 2 }, "c"), invalidAt("c.choice_count"));
  });
});

describe("peak_ewma", () => {
  it("prefers the endpoint with the lower round-trip × (in flight + 1)", () => {
    const clock = new FakeClock(1000);
    const list = targets([1, 1, 1]);
    list[0]!.load.observe(100, 1000); // slow
    list[1]!.load.observe(10, 1000);
    list[2]!.load.observe(10, 1000);
    list[2]!.load.pending = 3; // cost 40 against t1's 10
    const picker = peakEwma.createPicker(list, peakEwma.parseConfig(undefined, "c"), { clock, random: createSeededRandom(1) });
    const counts = tally(() => picker.pick(NO_HASH), 3000);
    assert.equal(counts.get("t0"), undefined, "the slow one loses to either other");
    assert.ok((counts.get("t1") ?? 0) > 1900, "t1 wins both of its pairs");
  });

  it("uses the default RTT for endpoints with no samples and sets the load's decay", () => {
    const clock = new FakeClock(0);
    const list = targets([1, 1]);
    list[0]!.load.observe(50, 0);
    const picker = peakEwma.createPicker(list, peakEwma.parseConfig({ defaultRtt: 20, decay: 5000 }, "c"), { clock, random: createSeededRandom(2) });
    assert.equal(list[0]!.load.decayMs, 5000);
    assert.equal(picker.pick(NO_HASH).endpoint.id, "t1");
  });

  it("with three choices, takes the cheapest of three", () => {
    const clock = new FakeClock(0);
    const list = targets(Array<number>(10).fill(1));
    list.forEach((t, i) => t.load.observe(10 + i, 0));
    const picker = peakEwma.createPicker(list, peakEwma.parseConfig({ choiceCount: 3 }, "c"), { clock, random: createSeededRandom(3) });
    const counts = tally(() => picker.pick(NO_HASH), 20_000);
    assert.equal(counts.get("t9"), undefined);
    // The third draw is with replacement, so t8 wins only on draws {t8, t9} then t8 or t9: (2/90) × 0.2.
    assert.ok((counts.get("t8") ?? 0) / 20_000 < 0.01, `t8: ${counts.get("t8")}`);
    assert.ok((counts.get("t0") ?? 0) / 20_000 > 0.25, "the cheapest wins whenever drawn: about 27%");
  });

  it("rejects a non-positive decay and fewer than two choices", () => {
    assert.throws(() => peakEwma.parseConfig({ choiceCount: 1 }, "c"), invalidAt("c.choiceCount"));
    assert.throws(() => peakEwma.parseConfig({ decay: 0 }, "c"), invalidAt("c.decay"));
    assert.throws(() => peakEwma.parseConfig({ defaultRtt: Number.NaN }, "c"), invalidAt("c.defaultRtt"));
  });
});

describe("EndpointLoad's peak EWMA", () => {
  it("jumps to a slower sample, blends faster ones, and decays with time", () => {
    const load = new EndpointLoad();
    assert.equal(load.rtt(0, 30), 30, "the fallback until a sample arrives");
    load.observe(10, 0);
    load.observe(100, 1); // peak: at once
    assert.equal(load.rtt(1, 30), 100);
    load.observe(10, 10_001); // a time constant later: 100 × e^-1 + 10 × (1 - e^-1)
    assert.ok(Math.abs(load.rtt(10_001, 30) - (100 * Math.exp(-1) + 10 * (1 - Math.exp(-1)))) < 1e-9);
    assert.ok(Math.abs(load.rtt(20_001, 30) - load.rtt(10_001, 30) * Math.exp(-1)) < 1e-9, "decays towards zero unsampled");
  });

  it("compares two endpoints at a reference time in the same order as at any real time", () => {
    const rnd = createSeededRandom(11);
    for (let i = 0; i < 1000; i++) {
      const [x, y] = [new EndpointLoad(), new EndpointLoad()];
      x.observe(1 + rnd.next() * 200, rnd.next() * 60_000);
      y.observe(1 + rnd.next() * 200, rnd.next() * 60_000);
      const now = 60_000 + rnd.next() * 60_000;
      const real = Math.sign(x.rtt(now, 0) - y.rtt(now, 0));
      const relative = Math.sign(x.relativeRtt(x.stamp) - y.relativeRtt(x.stamp));
      assert.equal(relative, real);
    }
  });
});

describe("random", () => {
  it("draws in proportion to weight", () => {
    const picker = build(random, targets([1, 2, 7]));
    const n = 100_000;
    const counts = tally(() => picker.pick(NO_HASH), n);
    [0.1, 0.2, 0.7].forEach((share, i) => assert.ok(Math.abs((counts.get(`t${i}`) ?? 0) / n - share) < 0.01));
  });
});

/** The endpoint each of `keys` maps to. */
function mapping(picker: Picker<PickTarget>, keys: readonly number[]): string[] {
  return keys.map((hash) => picker.pick({ hash }).endpoint.id);
}

for (const plugin of [ringHash, maglev] as BalancerPlugin[]) {
  describe(plugin.name, () => {
    const rnd = createSeededRandom(9);
    const keys = Array.from({ length: 20_000 }, () => Math.floor(rnd.next() * 2 ** 32));

    it("maps the same key to the same endpoint", () => {
      const a = mapping(build(plugin, targets(Array<number>(10).fill(1)), undefined, 1), keys);
      const b = mapping(build(plugin, targets(Array<number>(10).fill(1)), undefined, 2), keys);
      assert.deepEqual(a, b, "independent of the random seed and of rebuilds");
    });

    it("moves only about 1/N of the keys when one of N endpoints leaves, and only its keys", () => {
      const all = targets(Array<number>(10).fill(1));
      const before = mapping(build(plugin, all), keys);
      const after = mapping(build(plugin, all.filter((t) => t.endpoint.id !== "t3")), keys);
      let moved = 0;
      for (let i = 0; i < keys.length; i++) {
        if (before[i] === after[i]) continue;
        moved++;
        if (plugin === ringHash) assert.equal(before[i], "t3", "a ring moves only the keys of the endpoint that left");
      }
      const share = moved / keys.length;
      assert.ok(share > 0.07 && share < (plugin === ringHash ? 0.13 : 0.15), `moved ${share.toFixed(3)}`);
    });

    it("keeps keys in place when an unrelated endpoint joins, except those it takes", () => {
      const all = targets(Array<number>(11).fill(1));
      const before = mapping(build(plugin, all.slice(0, 10)), keys);
      const after = mapping(build(plugin, all), keys);
      const moved = keys.filter((_, i) => before[i] !== after[i]).length / keys.length;
      const toNew = keys.filter((_, i) => before[i] !== after[i] && after[i] === "t10").length / keys.length;
      assert.ok(moved < 0.15, `moved ${moved.toFixed(3)}`);
      if (plugin === ringHash) assert.equal(moved, toNew, "every moved key went to the new endpoint");
    });

    it("spreads keys by weight", () => {
      const counts = new Map<string, number>();
      const picker = build(plugin, targets([1, 1, 2]));
      for (const hash of keys) {
        const id = picker.pick({ hash }).endpoint.id;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      const share = (counts.get("t2") ?? 0) / keys.length;
      assert.ok(Math.abs(share - 0.5) < 0.05, `t2 share ${share.toFixed(3)}`);
    });

    it("sends a request without a key to a random endpoint", () => {
      const picker = build(plugin, targets(Array<number>(5).fill(1)));
      assert.equal(tally(() => picker.pick(NO_HASH), 500).size, 5);
    });
  });
}

describe("ring_hash sizing", () => {
  const rnd = createSeededRandom(21);
  const keys = Array.from({ length: 20_000 }, () => Math.floor(rnd.next() * 2 ** 32));

  for (const n of [2, 4, 8, 16, 32]) {
    it(`moves only the leaving endpoint's keys from ${n} to ${n - 1} endpoints`, () => {
      const all = targets(Array<number>(n).fill(1));
      const before = mapping(build(ringHash, all), keys);
      const after = mapping(build(ringHash, all.slice(1)), keys);
      for (let i = 0; i < keys.length; i++) if (before[i] !== after[i]) assert.equal(before[i], "t0");
    });
  }

  it("keeps extreme weight ratios within maximumRingSize, quickly, and every endpoint on the ring", () => {
    for (const weights of [[1e-7, 1], [1, 65_535], [1e-300, 1]]) {
      const started = performance.now();
      const picker = build(ringHash, targets(weights), { maximumRingSize: 100_000 });
      const counts = new Map<string, number>();
      for (const hash of keys) counts.set(picker.pick({ hash }).endpoint.id, 0);
      assert.ok(performance.now() - started < 2000, `built in ${performance.now() - started} ms`);
      assert.ok(counts.has("t1"), `weights ${weights.join(", ")}`);
    }
  });

  it("grows the ring to minimumRingSize when asked", () => {
    const grown = build(ringHash, targets([1, 1]), { pointsPerWeight: 1, minimumRingSize: 4096 });
    const share = keys.filter((hash) => grown.pick({ hash }).endpoint.id === "t0").length / keys.length;
    assert.ok(Math.abs(share - 0.5) < 0.03, `with 4096 points instead of 2 the split is even: ${share}`);
  });
});

describe("hash policies", () => {
  const config = {
    hashPolicies: [
      { field: "header", name: "X-User" },
      { field: "cookie", name: "session", terminal: true },
      { field: "query_parameter", name: "cart" },
    ],
  };
  const hasher = ringHash.requestHasher!(ringHash.parseConfig(config, "c"))!;

  it("reads a header (any case, any header shape), a cookie and a query parameter", () => {
    const byHeader = hasher({ path: "/", headers: { "x-user": "ann" } });
    assert.equal(byHeader, hash32("ann"));
    assert.equal(hasher({ path: "/", headers: ["X-USER", "ann"] }), byHeader);
    assert.equal(hasher({ path: "/", headers: new Map([["x-user", "ann"]]) }), byHeader);
    assert.equal(hasher({ path: "/?cart=7", headers: {} }), hash32("7"));
    assert.equal(hasher({ path: "/", headers: { cookie: "a=1; session=s9" } }), hash32("s9"));
    assert.equal(hasher({ path: "/", headers: undefined }), undefined);
  });

  it("combines matches and stops after a terminal one", () => {
    const both = hasher({ path: "/?cart=7", headers: { "x-user": "ann", cookie: "session=s9" } });
    const expected = (((hash32("ann") << 1) | (hash32("ann") >>> 31)) ^ hash32("s9")) >>> 0;
    assert.equal(both, expected, "the query parameter after the terminal cookie is not used");
  });

  it("rejects a bad policy naming the entry", () => {
    assert.throws(() => ringHash.parseConfig({ hashPolicies: [{ field: "ip", name: "x" }] }, "c"), invalidAt("c.hashPolicies[0].field"));
    assert.throws(() => maglev.parseConfig({ hashPolicies: [{ field: "header" }] }, "c"), invalidAt("c.hashPolicies[0].name"));
    assert.throws(() => maglev.parseConfig({ tableSize: 65536 }, "c"), invalidAt("c.tableSize"));
    assert.throws(() => ringHash.parseConfig({ minimumRingSize: -1 }, "c"), invalidAt("c.minimumRingSize"));
    assert.throws(() => ringHash.parseConfig({ minimumRingSize: 10, maximumRingSize: 5 }, "c"), invalidAt("c.minimumRingSize"));
  });
});

describe("a picker swapped while requests are in flight", () => {
  it("keeps in-flight load on the endpoint, so the new picker sees it", () => {
    const list = targets([1, 1]);
    const first = build(leastRequest, list);
    const busy = first.pick(NO_HASH);
    busy.load.pending++; // a request in flight on the old picker's choice
    const second = build(leastRequest, list, undefined, 5); // endpoints unchanged, picker rebuilt
    const picks = tally(() => second.pick(NO_HASH), 100);
    assert.equal(picks.get(busy.endpoint.id), undefined, "the new picker avoids the endpoint still busy");
    busy.load.pending--;
  });
});

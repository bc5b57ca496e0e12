import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, createSeededRandom } from "proxyless/testing";
import { OutlierDetector, type Ejection } from "../src/resilience/outlier-detector.ts";

describe("OutlierDetector", () => {
  it("ejects after consecutive failures, for longer each time, jittered by at most 10%, and brings the endpoint back", () => {
    const clock = new FakeClock(0);
    const ejections: Ejection[] = [];
    const returned: string[] = [];
    const detector = new OutlierDetector({ consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500 }, clock, createSeededRandom(1), (e, r) => {
      if (e !== undefined) ejections.push(e);
      if (r !== undefined) returned.push(r);
    });
    const fail = (n: number): void => {
      for (let i = 0; i < n; i++) detector.failure("a", 10);
    };
    fail(2);
    detector.success("a");
    fail(2);
    assert.equal(ejections.length, 0, "a success resets the count");
    for (let round = 1; round <= 3; round++) {
      fail(3);
      const e = ejections[round - 1]!;
      const base = Math.min(2500, 1000 * round);
      assert.ok(e.durationMs >= base && e.durationMs <= base * 1.1, `ejection ${round}: ${e.durationMs} ms (base ${base})`);
      assert.ok(detector.isEjected("a"));
      fail(5); // failures while ejected do not count
      clock.advance(e.durationMs);
      assert.equal(detector.isEjected("a"), false);
      assert.equal(returned.length, round);
    }
    detector.close();
  });

  it("ejects at most maxEjectionPercent of the endpoints, but always one", () => {
    const clock = new FakeClock(0);
    const detector = new OutlierDetector({ consecutiveFailures: 1, maxEjectionPercent: 10 }, clock, createSeededRandom(2), () => undefined);
    for (const id of ["a", "b", "c"]) detector.failure(id, 3);
    assert.equal(detector.ejectedCount, 1, "10% of 3 is 0: one may go anyway");
    const many = new OutlierDetector({ consecutiveFailures: 1, maxEjectionPercent: 10 }, clock, createSeededRandom(2), () => undefined);
    for (let i = 0; i < 30; i++) many.failure(`e${i}`, 30);
    assert.equal(many.ejectedCount, 3);
    detector.close();
    many.close();
  });
});

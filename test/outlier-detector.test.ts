import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, createSeededRandom } from "proxyless/testing";
import { OutlierDetector, type Ejection } from "../src/upstream/outlier-detector.ts";

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

  it("success rate: ejects an endpoint failing one call in four (never 5 in a row) once its rate falls below mean - 1.9 sd", () => {
    const clock = new FakeClock(0);
    const ejections: Ejection[] = [];
    const detector = new OutlierDetector({ successRate: { intervalMs: 10_000 } }, clock, createSeededRandom(4), (e) => {
      if (e !== undefined) ejections.push(e);
    });
    const ids = Array.from({ length: 10 }, (_, i) => `e${i}`);
    for (let call = 0; call < 200; call++) {
      for (const id of ids) {
        if (id === "e7" && call % 4 === 3) detector.failure(id, ids.length);
        else if (call % 50 === 49 && id !== "e7") detector.failure(id, ids.length); // the healthy ones fail now and then too
        else detector.success(id);
      }
    }
    assert.equal(ejections.length, 0, "no consecutive run, and not judged before the interval ends");
    clock.advance(10_000);
    assert.deepEqual(ejections.map((e) => [e.id, e.reason, e.failures]), [["e7", "success-rate", 50]]);
    assert.equal(ejections[0]!.successRate, 0.75);
    assert.ok(ejections[0]!.threshold! > 0.75 && ejections[0]!.threshold! < 0.98, `threshold ${ejections[0]!.threshold}`);
    assert.ok(detector.isEjected("e7"));
    // The counts start again: a quiet interval judges nobody.
    clock.advance(10_000);
    assert.equal(ejections.length, 1);
    detector.close();
  });

  it("success rate: judges nobody with fewer than minimumHosts endpoints of enough volume", () => {
    const clock = new FakeClock(0);
    const ejections: Ejection[] = [];
    const detector = new OutlierDetector({ consecutiveFailures: 0, successRate: { intervalMs: 1000, minimumHosts: 5, requestVolume: 100 } }, clock, createSeededRandom(4), (e) => {
      if (e !== undefined) ejections.push(e);
    });
    for (let call = 0; call < 200; call++) {
      for (const id of ["a", "b", "c", "d"]) {
        if (id === "d" && call % 2 === 0) detector.failure(id, 4);
        else detector.success(id);
      }
      detector.success("e"); // a fifth endpoint with the volume
    }
    clock.advance(1000);
    assert.equal(ejections.length, 1, "five endpoints with 100+ calls: judged");
    const quiet = new OutlierDetector({ consecutiveFailures: 0, successRate: { intervalMs: 1000, minimumHosts: 5, requestVolume: 100 } }, clock, createSeededRandom(4), (e) => {
      if (e !== undefined) ejections.push(e);
    });
    for (let call = 0; call < 200; call++) {
      for (const id of ["a", "b", "c", "d"]) {
        if (id === "d" && call % 2 === 0) quiet.failure(id, 5);
        else quiet.success(id);
      }
      if (call < 50) quiet.success("e");
    }
    clock.advance(1000);
    assert.equal(ejections.length, 1, "only four endpoints had the volume: nobody judged");
    detector.close();
    quiet.close();
  });

  it("enforcingPercent: an ejection is carried out only that share of the time (Consul's EnforcingConsecutive5xx)", () => {
    const clock = new FakeClock(0);
    const never = new OutlierDetector({ consecutiveFailures: 2, enforcingPercent: 0 }, clock, createSeededRandom(6), () => undefined);
    for (let i = 0; i < 100; i++) never.failure("a", 10);
    assert.equal(never.ejectedCount, 0);
    let ejected = 0;
    const half = new OutlierDetector({ consecutiveFailures: 1, enforcingPercent: 50, baseEjectionMs: 1, maxEjectionMs: 1 }, clock, createSeededRandom(6), (e) => {
      if (e !== undefined) ejected++;
    });
    for (let i = 0; i < 1000; i++) {
      half.failure("a", 10);
      clock.advance(2); // back before the next failure
    }
    assert.ok(ejected > 400 && ejected < 600, `${ejected} of 1000 enforced`);
    never.close();
    half.close();
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SplitSequence } from "../src/balancer/split-sequence.ts";

function count(weights: number[], n: number): number[] {
  const seq = new SplitSequence(weights);
  const counts = weights.map(() => 0);
  for (let i = 0; i < n; i++) counts[seq.next()]!++;
  return counts;
}

describe("SplitSequence", () => {
  it("gives a 95/5 split exactly 9,500 and 500 over 10,000 requests, and stays within 1 at every point", () => {
    const seq = new SplitSequence([95, 5]);
    let canary = 0;
    for (let i = 1; i <= 10_000; i++) {
      if (seq.next() === 1) canary++;
      assert.ok(Math.abs(canary - i * 0.05) <= 1, `after ${i} requests: ${canary} on the 5% side`);
    }
    assert.equal(canary, 500);
  });

  it("honours 0.01% precision: 99.99/0.01 sends exactly one request in 10,000 to the small side", () => {
    assert.deepEqual(count([99.99, 0.01], 10_000), [9999, 1]);
    assert.deepEqual(count([33.33, 33.33, 33.34], 10_000), [3333, 3333, 3334]);
  });

  it("interleaves the sides instead of sending runs, and skips a side of weight 0", () => {
    const seq = new SplitSequence([50, 0, 50]);
    const first = Array.from({ length: 6 }, () => seq.next());
    assert.deepEqual(first, [0, 2, 0, 2, 0, 2]);
  });

  it("peeks without moving, and maps a hash to a side by the weights", () => {
    const seq = new SplitSequence([90, 10]);
    assert.equal(seq.peek(), seq.peek());
    const byHash = [0, 8999, 9000, 9999, 10_000].map((h) => seq.byHash(h));
    assert.deepEqual(byHash, [0, 0, 1, 1, 0]);
  });
});

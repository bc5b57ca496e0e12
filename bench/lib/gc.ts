/**
 * Collects the young generation (a scavenge), so the short-lived garbage one variant made is not
 * collected (and charged) during the next variant's run. Needs `--expose-gc`, which the npm scripts pass.
 *
 * Not a full collection: a forced mark-compact clears the maps that optimized code embeds weakly, so V8
 * deoptimizes the hot request path ("embedded weak objects cleared") and every round would then measure
 * a re-warm for its first second or so. At concurrency 1 that put 25 µs on the baseline and 15 to 30 µs
 * on the mesh (bench:sidecar's first run), where a process left alone does one full collection in
 * about 20 s at concurrency 1 (about 150,000 requests). What the old generation holds is collected as it
 * would be in production, by V8 on its own schedule, and the rotation of variants spreads its cost.
 */
export function collectYoungGarbage(): void {
  const gc = (globalThis as { gc?: (options?: { type: "minor" | "major" }) => void }).gc;
  if (gc === undefined) throw new Error("run the benchmark with node --expose-gc (the npm scripts do)");
  gc({ type: "minor" });
}

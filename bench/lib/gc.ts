/**
 * Runs a full garbage collection, so one variant's garbage is not collected (and charged) during the
 * next variant's run. Needs `--expose-gc`, which the npm script passes.
 */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run the benchmark with node --expose-gc (npm run bench:overhead does)");
  gc();
}

import type { PolicyFigures } from "./figures.ts";
import type { Scenario } from "./scenarios.ts";

function ms(value: number): string {
  return value >= 10_000 ? value.toFixed(0) : value.toFixed(1);
}

/**
 * Formats one scenario's results as a fixed-width table, one row per policy.
 *
 * @param scenario - the scenario
 * @param rows - the policies' figures
 * @param oracle - the oracle's figures, the reference for `p99/oracle`
 */
export function formatScenarioTable(scenario: Scenario, rows: readonly PolicyFigures[], oracle: PolicyFigures): string {
  const slow = scenario.slowBackend !== undefined;
  const header = ["policy", "p50 ms", "p99 ms", "p99.9 ms", "mean ms", "p99/oracle", ...(slow ? ["to slow"] : [])];
  const cells = rows.map((r) => [
    r.policy,
    ms(r.p50Ms),
    ms(r.p99Ms),
    ms(r.p999Ms),
    ms(r.meanMs),
    (r.p99Ms / oracle.p99Ms).toFixed(2) + "x",
    ...(slow ? [`${((r.slowShare ?? 0) * 100).toFixed(2)}%`] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (row: readonly string[]): string =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const title = `Scenario ${scenario.id}: ${scenario.title}; ${scenario.arrivalRatePerMs.toFixed(2)} req/ms`;
  return [title, line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

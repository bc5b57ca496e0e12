/**
 * `npm run bench:pick`: what one pick costs, for every built-in balancer at 10 and 10,000 endpoints.
 *
 * Each case builds targets with realistic load (requests in flight, round-trip samples), builds the
 * picker through the real plugin, and times batches of picks in a tight loop after a warm-up, in a fresh
 * worker thread per case and pass. The medians over every batch are printed with the build cost of the
 * hash tables and written to `bench/results/pick.json`.
 */
import { fileURLToPath } from "node:url";
import { writeJson } from "./lib/report.ts";
import { environment } from "./lib/settings.ts";
import { allCases, selectCases } from "./pick/cases.ts";
import type { CaseResult } from "./pick/protocol.ts";
import { buildPickReport, printPickReport } from "./pick/report.ts";
import { runCase } from "./pick/run-case.ts";
import { readPickSettings } from "./pick/settings.ts";
import { summarizeCase } from "./pick/summary.ts";

const OUTPUT = fileURLToPath(new URL("results/pick.json", import.meta.url));

const settings = readPickSettings();
const cases = selectCases(allCases(), settings.only);
const results = cases.map((): CaseResult[] => []);
for (let pass = 0; pass < settings.passes; pass++) {
  // Alternate the order, so a drift in machine speed does not always favour the same cases.
  const order = cases.map((_, i) => i);
  if (pass % 2 === 1) order.reverse();
  for (const i of order) results[i]!.push(await runCase(cases[i]!, settings));
  console.log(`pass ${pass + 1}/${settings.passes} done`);
}
const rows = cases.map((spec, i) => summarizeCase(spec, results[i]!, settings.batchSize));
const report = buildPickReport(rows, settings, environment());
printPickReport(rows, report);
await writeJson(OUTPUT, report);
console.log(`\nwrote ${OUTPUT}`);

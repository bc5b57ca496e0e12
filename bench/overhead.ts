/**
 * `npm run bench:overhead`: what the mesh costs over raw undici.
 *
 * A backend runs in a child process. Four variants send GETs to it with 50 concurrent loops: raw
 * `Pool.request`, mesh `client.request`, mesh `client.fetch` and `undici.fetch` on a plain Pool. After a
 * warm-up, interleaved rounds (order balanced across rounds) measure req/s, client CPU per request and
 * latency. The medians across rounds are printed and written to `bench/results/overhead.json`.
 */
import { fileURLToPath } from "node:url";
import { startBackendProcess } from "./lib/backend-process.ts";
import { runBench } from "./lib/run-bench.ts";
import { buildReport, printReport } from "./lib/overhead-report.ts";
import { environment, readSettings } from "./lib/settings.ts";
import { writeJson } from "./lib/report.ts";

const OUTPUT = fileURLToPath(new URL("results/overhead.json", import.meta.url));

const settings = readSettings();
const backend = await startBackendProcess();
try {
  const results = await runBench(backend.origin, settings);
  const report = buildReport(results, settings, environment());
  printReport(results, report);
  await writeJson(OUTPUT, report);
  console.log(`\nwrote ${OUTPUT}`);
} finally {
  await backend.stop();
}

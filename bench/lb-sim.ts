/**
 * `npm run bench:lb`: a load-balancing simulator in virtual time.
 *
 * Drives the real built-in pickers, and two oracles with true knowledge (the reference, least expected
 * completion from remaining work; and a weaker one from queue lengths), over the same seeded Poisson
 * workload in three scenarios of 10 backends: A, one backend 10× slower behind single-server FIFO queues;
 * B, one backend with 10× the latency and unlimited concurrency; C, equal backends behind FIFO queues.
 * Prints p50/p99/p99.9 latency and the share sent to the slow backend per policy, checks the targets
 * (without failing the process) and writes `bench/results/lb-sim.json`. Deterministic: same seed, same
 * output.
 */
import { fileURLToPath } from "node:url";
import { figuresJson } from "./lb/figures.ts";
import { policyRuns } from "./lb/picker-chooser.ts";
import { runScenario } from "./lb/run-scenario.ts";
import { buildScenarios, readSimSettings } from "./lb/scenarios.ts";
import { buildSummary, referenceLines, targetChecks } from "./lb/sim-summary.ts";
import { formatScenarioTable } from "./lb/sim-table.ts";
import { formatTargets, writeJson } from "./lib/report.ts";

const OUTPUT = fileURLToPath(new URL("results/lb-sim.json", import.meta.url));

const settings = readSimSettings();
const scenarios = buildScenarios(settings);
const policies = policyRuns();

console.log(
  `lb-sim: seed ${settings.seed}, ${settings.requests} requests per run, ${settings.backends} backends, ` +
    `service times exponential (fast ${settings.fastMeanMs} ms, slow ${settings.slowMeanMs} ms); ` +
    `default policy configs, and *_c3 rows with choiceCount 3`,
);
const results = scenarios.map((scenario) => runScenario(scenario, settings, policies));
for (const { scenario, policies: rows, oracle } of results) {
  console.log(`\n${formatScenarioTable(scenario, [...rows, oracle], oracle)}`);
}

const summary = buildSummary(results);
const checks = targetChecks(summary);
console.log(`\nTargets (against the oracle, remaining work):\n${formatTargets(checks)}\n${referenceLines(summary)}`);

await writeJson(OUTPUT, {
  settings: {
    seed: settings.seed,
    requests_per_run: settings.requests,
    backends: settings.backends,
    service_time: "exponential",
    fast_mean_ms: settings.fastMeanMs,
    slow_mean_ms: settings.slowMeanMs,
    utilization: settings.utilization,
    policy_configs: Object.fromEntries(policies.map((run) => [run.label, { policy: run.policy, config: run.config ?? "defaults" }])),
  },
  scenarios: Object.fromEntries(
    results.map(({ scenario, policies: rows, oracle }) => [
      scenario.id,
      {
        title: scenario.title,
        model: scenario.model,
        arrival_rate_per_ms: scenario.arrivalRatePerMs,
        mean_service_ms: scenario.meanServiceMs,
        slow_backend: scenario.slowBackend ?? null,
        policies: Object.fromEntries([...rows, oracle].map((f) => [f.policy, figuresJson(f, oracle)])),
      },
    ]),
  ),
  summary,
  targets: checks,
});
console.log(`\nwrote ${OUTPUT}`);

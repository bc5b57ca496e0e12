/**
 * `npm run bench:routing`: what a route decision costs. A router of 20 routes without regex (path
 * prefixes with methods or a header), a 90/10 splitter and a resolver with two subsets: the decision
 * for a request that matches the first route, the last route, and none (then split). The baseline, in
 * the same run, is the same 20 conditions written by hand as straight-line code.
 *
 * Batches of decisions are timed in a tight loop after a warm-up; cases and the baseline alternate, and
 * the medians over all batches are printed and written to `bench/results/routing.json`.
 */
import { fileURLToPath } from "node:url";
import { ServiceRouting } from "../src/config/service-routing.ts";
import { decideRoute } from "../src/routing/route-decision.ts";
import { RequestView } from "../src/routing/request-view.ts";
import { envInt } from "./lib/env.ts";
import { writeJson } from "./lib/report.ts";
import { environment } from "./lib/settings.ts";
import { median, round } from "./lib/stats.ts";
import { benchConfig, handWritten, REQUESTS } from "./routing/table.ts";

const OUTPUT = fileURLToPath(new URL("results/routing.json", import.meta.url));
const BATCH = envInt("BENCH_BATCH", 20_000, 100);
const BATCHES = envInt("BENCH_BATCHES", 60, 4);
const TARGET_NS = 1000;

const routing = new ServiceRouting("web", benchConfig());
const none = ServiceRouting.NONE;
const lookup = (service: string): ServiceRouting => (service === "web" ? routing : none);

let sink = 0;
const cases: Record<string, () => void> = {};
for (const [name, request] of Object.entries(REQUESTS)) {
  cases[name] = () => {
    const decision = decideRoute("web", new RequestView(request), lookup, true);
    sink += decision.path.length;
  };
  cases[`${name}:handwritten`] = () => {
    sink += handWritten(request);
  };
}

function timeBatch(run: () => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < BATCH; i++) run();
  return Number(process.hrtime.bigint() - start) / BATCH;
}

const names = Object.keys(cases);
for (const name of names) for (let i = 0; i < 5; i++) timeBatch(cases[name]!); // warm-up
const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let b = 0; b < BATCHES; b++) {
  const order = b % 2 === 0 ? names : [...names].reverse();
  for (const name of order) samples[name]!.push(timeBatch(cases[name]!));
}

const rows = Object.keys(REQUESTS).map((name) => {
  const ns = median(samples[name]!);
  const base = median(samples[`${name}:handwritten`]!);
  return { case: name, decision_ns: round(ns, 1), handwritten_ns: round(base, 1), ratio: round(ns / base, 2) };
});
console.log("case              decision ns   hand-written ns   ratio");
for (const r of rows) console.log(`${r.case.padEnd(17)} ${String(r.decision_ns).padStart(11)}   ${String(r.handwritten_ns).padStart(15)}   ${String(r.ratio).padStart(5)}`);
const worst = Math.max(...rows.map((r) => r.decision_ns));
const met = worst <= TARGET_NS;
console.log(`\ntargets:\n${met ? "MET     " : "MISSED  "} route_decision_ns = ${worst} (worst case, target <= ${TARGET_NS})`);
await writeJson(OUTPUT, {
  summary: { route_decision_ns: worst, target_ns: TARGET_NS, met, decision_vs_handwritten_ratio: Math.max(...rows.map((r) => r.ratio)) },
  cases: rows,
  settings: { batch: BATCH, batches: BATCHES, routes: 20 },
  environment: environment(),
  checksum: sink,
});
console.log(`\nwrote ${OUTPUT}`);

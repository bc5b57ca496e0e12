/**
 * `npm run bench:routing`: what a route decision costs. A router of 20 routes without regex (path
 * prefixes with methods or a header), a 90/10 splitter and a resolver with two subsets: the decision
 * for a request that matches the first route, the last route, and none (then split). The baseline, in
 * the same run, is the same 20 conditions written by hand as straight-line code.
 *
 * Then the same 20 routes matching their paths with RE2 `pathRegex` (`regex_*`), first and last route:
 * patterns that start with a literal path, as most do, and (`regex_nolit_*`) patterns that start with
 * an optional group, so every route's automaton runs. Their baseline is the same conditions by hand
 * with V8's backtracking `RegExp`.
 *
 * Batches of decisions are timed in a tight loop after a warm-up; cases and the baseline alternate, and
 * the medians over all batches are printed and written to `bench/results/routing.json`.
 */
import { fileURLToPath } from "node:url";
import { ServiceRouting } from "../src/config/service-routing.ts";
import { compileServiceConfig } from "../src/config/compile-config.ts";
import { decideRoute } from "../src/routing/route-decision.ts";
import { RequestView } from "../src/routing/request-view.ts";
import { envInt } from "./lib/env.ts";
import { writeJson } from "./lib/report.ts";
import { environment } from "./lib/settings.ts";
import { median, round } from "./lib/stats.ts";
import type { RoutableRequest } from "../src/routing/request-view.ts";
import { benchConfig, handWritten, handWrittenRegex, regexConfig, REGEX_REQUESTS, REQUESTS } from "./routing/table.ts";

const OUTPUT = fileURLToPath(new URL("results/routing.json", import.meta.url));
const BATCH = envInt("BENCH_BATCH", 20_000, 100);
const BATCHES = envInt("BENCH_BATCHES", 60, 4);
const TARGET_NS = 1000;
const REGEX_TARGET_NS = 2000;

const none = ServiceRouting.NONE;
let sink = 0;
const cases: Record<string, () => void> = {};
const caseNames: string[] = [];

/** Adds a group of cases: one router, its requests, and their hand-written baseline. */
function addCases(prefix: string, config: ReturnType<typeof benchConfig>, requests: Readonly<Record<string, RoutableRequest>>, byHand: (request: RoutableRequest) => number): void {
  const routing = new ServiceRouting(compileServiceConfig(config, "web"));
  const lookup = (service: string): ServiceRouting => (service === "web" ? routing : none);
  for (const [name, request] of Object.entries(requests)) {
    caseNames.push(`${prefix}${name}`);
    cases[`${prefix}${name}`] = () => {
      const decision = decideRoute("web", new RequestView(request), lookup, true);
      sink += decision.path.length;
    };
    cases[`${prefix}${name}:handwritten`] = () => {
      sink += byHand(request);
    };
  }
}
addCases("", benchConfig(), REQUESTS, handWritten);
addCases("regex_", regexConfig(true), REGEX_REQUESTS, handWrittenRegex(true));
addCases("regex_nolit_", regexConfig(false), REGEX_REQUESTS, handWrittenRegex(false));

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

const rows = caseNames.map((name) => {
  const ns = median(samples[name]!);
  const base = median(samples[`${name}:handwritten`]!);
  return { case: name, decision_ns: round(ns, 1), handwritten_ns: round(base, 1), ratio: round(ns / base, 2) };
});
console.log("case                        decision ns   hand-written ns   ratio");
for (const r of rows) console.log(`${r.case.padEnd(27)} ${String(r.decision_ns).padStart(11)}   ${String(r.handwritten_ns).padStart(15)}   ${String(r.ratio).padStart(5)}`);
const plain = rows.filter((r) => !r.case.startsWith("regex_"));
const worst = Math.max(...plain.map((r) => r.decision_ns));
const met = worst <= TARGET_NS;
const regex = rows.filter((r) => r.case.startsWith("regex_") && !r.case.startsWith("regex_nolit_"));
const worstRegex = Math.max(...regex.map((r) => r.decision_ns));
const regexMet = worstRegex <= REGEX_TARGET_NS;
const worstNoLiteral = Math.max(...rows.filter((r) => r.case.startsWith("regex_nolit_")).map((r) => r.decision_ns));
console.log(`\ntargets:\n${met ? "MET     " : "MISSED  "} route_decision_ns = ${worst} (worst case of 20 plain routes, target <= ${TARGET_NS})`);
console.log(`${regexMet ? "MET     " : "MISSED  "} regex_route_decision_ns = ${worstRegex} (worst case of 20 RE2 path regex routes, target <= ${REGEX_TARGET_NS})`);
console.log(`(report) regex_no_literal_route_decision_ns = ${worstNoLiteral} (20 RE2 path regexes without a literal start)`);
await writeJson(OUTPUT, {
  summary: {
    route_decision_ns: worst,
    target_ns: TARGET_NS,
    met,
    decision_vs_handwritten_ratio: Math.max(...plain.map((r) => r.ratio)),
    regex_route_decision_ns: worstRegex,
    regex_target_ns: REGEX_TARGET_NS,
    regex_met: regexMet,
    regex_no_literal_route_decision_ns: worstNoLiteral,
  },
  cases: rows,
  settings: { batch: BATCH, batches: BATCHES, routes: 20 },
  environment: environment(),
  checksum: sink,
});
console.log(`\nwrote ${OUTPUT}`);

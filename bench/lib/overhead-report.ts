import { formatTable, formatTargets, variantJson, type TargetCheck } from "./report.ts";
import type { BenchSettings } from "./settings.ts";
import { round } from "./stats.ts";
import { compare, summarize, type VariantRounds, type VariantSummary } from "./summary.ts";
import type { VariantKey } from "./variants.ts";

/** The whole `overhead.json` report. */
export interface OverheadReport {
  readonly benchmark: "overhead";
  readonly date: string;
  readonly environment: Record<string, unknown>;
  readonly settings: Record<string, unknown>;
  readonly variants: Record<string, Record<string, unknown>>;
  readonly summary: Record<string, number>;
  readonly targets: readonly TargetCheck[];
}

function find<T extends { readonly key: VariantKey }>(items: readonly T[], key: VariantKey): T {
  const item = items.find((i) => i.key === key);
  if (item === undefined) throw new Error(`missing variant ${key}`);
  return item;
}

function flatSummary(results: readonly VariantRounds[], summaries: readonly VariantSummary[]): Record<string, number> {
  const s = (key: VariantKey): VariantSummary => find(summaries, key);
  const meshVsUndiciFetch = compare(find(results, "client_fetch"), find(results, "undici_fetch"));
  return {
    raw_request_rps: round(s("raw_request").rps, 1),
    raw_request_cpu_us: round(s("raw_request").cpuUsPerReq, 2),
    request_rps: round(s("client_request").rps, 1),
    request_throughput_ratio: round(s("client_request").throughputRatio, 4),
    request_added_cpu_us: round(s("client_request").addedCpuUs, 2),
    fetch_rps: round(s("client_fetch").rps, 1),
    fetch_throughput_ratio: round(s("client_fetch").throughputRatio, 4),
    fetch_added_cpu_us: round(s("client_fetch").addedCpuUs, 2),
    undici_fetch_rps: round(s("undici_fetch").rps, 1),
    undici_fetch_throughput_ratio: round(s("undici_fetch").throughputRatio, 4),
    undici_fetch_added_cpu_us: round(s("undici_fetch").addedCpuUs, 2),
    fetch_vs_undici_fetch_throughput_ratio: round(meshVsUndiciFetch.throughputRatio, 4),
    fetch_vs_undici_fetch_added_cpu_us: round(meshVsUndiciFetch.addedCpuUs, 2),
  };
}

function targets(summary: Record<string, number>): TargetCheck[] {
  const ratio = summary.request_throughput_ratio!;
  const cpu = summary.request_added_cpu_us!;
  return [
    { name: "request_throughput_ratio", target: ">= 0.95", value: ratio, met: ratio >= 0.95 },
    { name: "request_added_cpu_us", target: "<= 2", value: cpu, met: cpu <= 2 },
  ];
}

/**
 * Builds the JSON report from every round.
 *
 * @param results - every variant's rounds, raw `Pool.request` among them
 * @param settings - what the run did
 * @param env - the machine and runtime
 */
export function buildReport(results: readonly VariantRounds[], settings: BenchSettings, env: Record<string, unknown>): OverheadReport {
  const summaries = summarize(results, "raw_request");
  const summary = flatSummary(results, summaries);
  return {
    benchmark: "overhead",
    date: new Date().toISOString(),
    environment: env,
    settings: {
      concurrency: settings.concurrency,
      rounds: settings.rounds,
      round_ms: settings.roundMs,
      warmup_ms: settings.warmupMs,
      pause_ms: settings.pauseMs,
      lead_in_ms: settings.leadInMs,
      path: settings.path,
      pool: settings.pool,
      backend: "node:http server in a child process, 200 with a fixed body, keep-alive",
      body_consumption: "body.text() / res.text() in every variant",
      method: "rounds interleaved, order from a Williams Latin square chained so that each variant runs in each position and right after each other variant equally often (12 rounds); before each run a full GC, a pause and an unmeasured lead-in; figures are medians across rounds; ratios and added CPU are paired per round against raw Pool.request, then the median taken",
    },
    variants: Object.fromEntries(results.map((r) => [r.key, variantJson(find(summaries, r.key), r)])),
    summary,
    targets: targets(summary),
  };
}

/**
 * Prints the table, the mesh-vs-undici.fetch comparison and the target checks.
 *
 * @param results - every variant's rounds
 * @param report - the report built from them
 */
export function printReport(results: readonly VariantRounds[], report: OverheadReport): void {
  const summaries = summarize(results, "raw_request");
  const s = report.summary;
  console.log(`\nmedians over ${results[0]?.rounds.length ?? 0} rounds (ratios and +CPU paired per round vs raw Pool.request)\n`);
  console.log(formatTable(summaries));
  console.log(
    `\nclient.fetch vs undici.fetch: x${s.fetch_vs_undici_fetch_throughput_ratio!.toFixed(3)} throughput, ` +
      `${s.fetch_vs_undici_fetch_added_cpu_us!.toFixed(1)} us CPU/req added`,
  );
  console.log(`\ntargets (client.request vs raw Pool.request):\n${formatTargets(report.targets)}`);
}

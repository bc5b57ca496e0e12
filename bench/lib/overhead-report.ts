import { formatTable, formatTargets, variantJson, type TargetCheck } from "./report.ts";
import type { BenchSettings } from "./settings.ts";
import { median, round } from "./stats.ts";
import type { BenchResults } from "./run-bench.ts";
import { compare, summarize, type VariantRounds, type VariantSummary } from "./summary.ts";
import type { VariantKey } from "./variants.ts";

/** The whole `overhead.json` report. */
export interface OverheadReport {
  readonly benchmark: "overhead";
  readonly date: string;
  readonly environment: Record<string, unknown>;
  readonly settings: Record<string, unknown>;
  readonly variants: Record<string, Record<string, unknown>>;
  /** The tracing phase's variants, each against raw `Pool.request` of the same round. */
  readonly tracing_variants?: Record<string, Record<string, unknown>>;
  readonly summary: Record<string, number>;
  readonly targets: readonly TargetCheck[];
}

function find<T extends { readonly key: VariantKey }>(items: readonly T[], key: VariantKey): T {
  const item = items.find((i) => i.key === key);
  if (item === undefined) throw new Error(`missing variant ${key}`);
  return item;
}

function flatSummary(bench: BenchResults, summaries: readonly VariantSummary[]): Record<string, number> {
  const results = bench.rounds;
  const s = (key: VariantKey): VariantSummary => find(summaries, key);
  const meshVsUndiciFetch = compare(find(results, "client_fetch"), find(results, "undici_fetch"));
  const paired = bench.pairs === undefined ? undefined : compare(bench.pairs.mesh, bench.pairs.raw);
  const t = bench.tracing;
  const tracing = t === undefined ? undefined : compare(t.traced, t.plain);
  const floor = t === undefined ? undefined : compare(t.floor, t.raw);
  return {
    raw_request_rps: round(s("raw_request").rps, 1),
    raw_request_cpu_us: round(s("raw_request").cpuUsPerReq, 2),
    request_rps: round(s("client_request").rps, 1),
    request_throughput_ratio: round(s("client_request").throughputRatio, 4),
    request_added_cpu_us: round(s("client_request").addedCpuUs, 2),
    fetch_rps: round(s("client_fetch").rps, 1),
    fetch_vs_raw_request_throughput_ratio: round(s("client_fetch").throughputRatio, 4),
    fetch_vs_raw_request_added_cpu_us: round(s("client_fetch").addedCpuUs, 2),
    undici_fetch_rps: round(s("undici_fetch").rps, 1),
    undici_fetch_throughput_ratio: round(s("undici_fetch").throughputRatio, 4),
    undici_fetch_added_cpu_us: round(s("undici_fetch").addedCpuUs, 2),
    fetch_vs_undici_fetch_throughput_ratio: round(meshVsUndiciFetch.throughputRatio, 4),
    fetch_vs_undici_fetch_added_cpu_us: round(meshVsUndiciFetch.addedCpuUs, 2),
    ...(paired === undefined
      ? {}
      : {
          request_throughput_ratio_paired: round(paired.throughputRatio, 4),
          request_added_cpu_us_paired: round(paired.addedCpuUs, 2),
        }),
    ...pairedSummary("dispatcher", bench.dispatcherPairs),
    ...pairedSummary("fetch", bench.fetchPairs),
    ...pairedSummary("admin_idle", bench.adminPairs),
    ...(tracing === undefined || floor === undefined || t === undefined
      ? {}
      : {
          tracing_added_cpu_us: round(tracing.addedCpuUs, 2),
          tracing_throughput_ratio: round(tracing.throughputRatio, 4),
          tracing_floor_cpu_us: round(floor.addedCpuUs, 2),
          tracing_floor_throughput_ratio: round(floor.throughputRatio, 4),
          tracing_mesh_cpu_us: round(meshShare(t), 2),
          ...instrumentationSummary(t, tracing.addedCpuUs),
          tracing_spans_per_request: round(t.spansPerRequest, 3),
        }),
  };
}

/**
 * `<name>_added_cpu_us` and `<name>_throughput_ratio` of an alternating phase: the mesh's path against
 * the bare one it replaces, paired per round, then the median.
 */
function pairedSummary(name: string, pairs: BenchResults["dispatcherPairs"]): Record<string, number> {
  if (pairs === undefined) return {};
  const c = compare(pairs.mesh, pairs.bare);
  return { [`${name}_added_cpu_us`]: round(c.addedCpuUs, 2), [`${name}_throughput_ratio`]: round(c.throughputRatio, 4) };
}

/**
 * Raw `Pool.request` traced by instrumentation-undici against plain raw (paired per round, median), and
 * `tracing_vs_instrumentation_ratio`: the mesh's tracing cost (traced − plain client.request) over that.
 */
function instrumentationSummary(t: NonNullable<BenchResults["tracing"]>, meshTracingUs: number): Record<string, number> {
  const instrumentation = compare(t.instrumentation.mesh, t.instrumentation.bare);
  return {
    instrumentation_added_cpu_us: round(instrumentation.addedCpuUs, 2),
    instrumentation_throughput_ratio: round(instrumentation.throughputRatio, 4),
    tracing_vs_instrumentation_ratio: round(meshTracingUs / instrumentation.addedCpuUs, 3),
  };
}

/**
 * What the mesh adds to the SDK's own cost: per round, (client.request with the SDK − without) −
 * (the floor − raw), then the median.
 */
function meshShare(t: NonNullable<BenchResults["tracing"]>): number {
  return median(t.traced.rounds.map((r, i) => r.cpuUsPerReq - t.plain.rounds[i]!.cpuUsPerReq - (t.floor.rounds[i]!.cpuUsPerReq - t.raw.rounds[i]!.cpuUsPerReq)));
}

function targets(summary: Record<string, number>): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const suffix of ["", "_paired"]) {
    const ratio = summary[`request_throughput_ratio${suffix}`];
    const cpu = summary[`request_added_cpu_us${suffix}`];
    if (ratio !== undefined) checks.push({ name: `request_throughput_ratio${suffix}`, target: ">= 0.95", value: ratio, met: ratio >= 0.95 });
    if (cpu !== undefined) checks.push({ name: `request_added_cpu_us${suffix}`, target: "<= 2", value: cpu, met: cpu <= 2 });
  }
  for (const name of ["dispatcher", "fetch"]) {
    const cpu = summary[`${name}_added_cpu_us`];
    if (cpu !== undefined) checks.push({ name: `${name}_added_cpu_us`, target: "<= 3", value: cpu, met: cpu <= 3 });
  }
  const tracing = summary.tracing_added_cpu_us;
  if (tracing !== undefined) checks.push({ name: "tracing_added_cpu_us", target: "<= 10", value: tracing, met: tracing <= 10 });
  const versus = summary.tracing_vs_instrumentation_ratio;
  if (versus !== undefined) checks.push({ name: "tracing_vs_instrumentation_ratio", target: "<= 1", value: versus, met: versus <= 1 });
  const share = summary.tracing_mesh_cpu_us;
  if (share !== undefined) checks.push({ name: "tracing_mesh_cpu_us", target: "<= 10", value: share, met: share <= 10 });
  return checks;
}

function tracingSummaries(t: NonNullable<BenchResults["tracing"]>): { all: VariantRounds[]; summaries: VariantSummary[] } {
  const all = [t.raw, t.plain, t.floor, t.traced];
  return { all, summaries: summarize(all, "raw_request") };
}

function tracingVariants(t: NonNullable<BenchResults["tracing"]>): Record<string, Record<string, unknown>> {
  const { all, summaries } = tracingSummaries(t);
  return Object.fromEntries(all.map((r) => [r.key, variantJson(find(summaries, r.key), r)]));
}

/**
 * Builds the JSON report from every round.
 *
 * @param bench - every variant's rounds, raw `Pool.request` among them, and the pairs
 * @param settings - what the run did
 * @param env - the machine and runtime
 */
export function buildReport(bench: BenchResults, settings: BenchSettings, env: Record<string, unknown>): OverheadReport {
  const results = bench.rounds;
  const summaries = summarize(results, "raw_request");
  const summary = flatSummary(bench, summaries);
  return {
    benchmark: "overhead",
    date: new Date().toISOString(),
    environment: env,
    settings: {
      concurrency: settings.concurrency,
      rounds: settings.rounds,
      pairs: settings.pairs,
      round_ms: settings.roundMs,
      warmup_ms: settings.warmupMs,
      pause_ms: settings.pauseMs,
      lead_in_ms: settings.leadInMs,
      path: settings.path,
      pool: settings.pool,
      backend: "node:http server in a child process, 200 with a fixed body, keep-alive",
      body_consumption: "body.text() / res.text() in every variant",
      method: "rounds interleaved, order from a Williams Latin square chained so that each variant runs in each position and right after each other variant equally often (12 rounds); before each run a scavenge of the young generation (not a full GC: see bench/lib/gc.ts), a pause and an unmeasured lead-in; figures are medians across rounds; ratios and added CPU are paired per round against raw Pool.request, then the median taken; before all that, raw and client.request alone in alternating pairs, before any fetch ran in the process (*_paired figures); after the rounds, as many alternating pairs of undici.request on a plain Pool against undici.request with mesh.dispatcher (dispatcher_added_cpu_us, dispatcher_throughput_ratio), then of undici.fetch on a plain Pool against client.fetch (fetch_added_cpu_us, fetch_throughput_ratio), then of client.request on a mesh without against one with an idle admin server (admin_idle_added_cpu_us, admin_idle_throughput_ratio); then, with the OpenTelemetry SDK set up (batch span processor and periodic metric reader, in-memory exporters, AsyncLocalStorage context manager, W3C propagators), four variants in balanced rounds, as many as the pairs: raw Pool.request, client.request without the SDK, raw Pool.request with the same spans, trace headers and metric points written by hand (the SDK's floor), and client.request with the SDK, then, the SDK still up, raw Pool.request against raw Pool.request traced by @opentelemetry/instrumentation-undici (enabled only during its runs) in as many alternating pairs; tracing_added_cpu_us: traced client.request minus plain, paired per round; tracing_floor_cpu_us: the floor minus raw; tracing_mesh_cpu_us: per round the first minus the second, then the median; instrumentation_added_cpu_us: the instrumented raw minus raw, paired; tracing_vs_instrumentation_ratio: tracing_added_cpu_us over instrumentation_added_cpu_us",
    },
    variants: Object.fromEntries(results.map((r) => [r.key, variantJson(find(summaries, r.key), r)])),
    ...(bench.tracing === undefined ? {} : { tracing_variants: tracingVariants(bench.tracing) }),
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
export function printReport(bench: BenchResults, report: OverheadReport): void {
  const results = bench.rounds;
  const summaries = summarize(results, "raw_request");
  const s = report.summary;
  console.log(`\nmedians over ${results[0]?.rounds.length ?? 0} rounds (ratios and +CPU paired per round vs raw Pool.request)\n`);
  console.log(formatTable(summaries));
  console.log(
    `\nclient.fetch vs undici.fetch: x${s.fetch_vs_undici_fetch_throughput_ratio!.toFixed(3)} throughput, ` +
      `${s.fetch_vs_undici_fetch_added_cpu_us!.toFixed(1)} us CPU/req added`,
  );
  if (s.request_throughput_ratio_paired !== undefined) {
    console.log(
      `client.request vs raw Pool.request in ${bench.pairs?.raw.rounds.length ?? 0} alternating pairs: ` +
        `x${s.request_throughput_ratio_paired.toFixed(3)} throughput, ${s.request_added_cpu_us_paired!.toFixed(2)} us CPU/req added`,
    );
  }
  for (const [name, pairs, what] of [
    ["dispatcher", bench.dispatcherPairs, "undici.request with mesh.dispatcher vs on a plain Pool"],
    ["fetch", bench.fetchPairs, "client.fetch vs undici.fetch on a plain Pool"],
    ["admin_idle", bench.adminPairs, "client.request with an idle admin server on its mesh vs without"],
  ] as const) {
    if (pairs === undefined) continue;
    console.log(
      `${what} in ${pairs.bare.rounds.length} alternating pairs: x${s[`${name}_throughput_ratio`]!.toFixed(3)} throughput, ` +
        `${s[`${name}_added_cpu_us`]!.toFixed(2)} us CPU/req added`,
    );
  }
  if (s.tracing_added_cpu_us !== undefined && bench.tracing !== undefined) {
    console.log(`\ntracing phase, medians over ${bench.tracing.plain.rounds.length} balanced rounds (vs raw Pool.request of the same round)\n`);
    console.log(formatTable(tracingSummaries(bench.tracing).summaries));
    console.log(
      `\nclient.request with the OpenTelemetry SDK vs without: x${s.tracing_throughput_ratio!.toFixed(3)} throughput, ` +
        `${s.tracing_added_cpu_us.toFixed(2)} us CPU/req added, ${s.tracing_spans_per_request!.toFixed(2)} spans exported per request`,
    );
    console.log(
      `raw Pool.request traced by instrumentation-undici vs raw: x${s.instrumentation_throughput_ratio!.toFixed(3)} throughput, ` +
        `${s.instrumentation_added_cpu_us!.toFixed(2)} us CPU/req added; the mesh's tracing cost over it: x${s.tracing_vs_instrumentation_ratio!.toFixed(2)}`,
    );
    console.log(
      `the SDK's floor (the same telemetry by hand on raw Pool.request) vs raw: x${s.tracing_floor_throughput_ratio!.toFixed(3)} throughput, ` +
        `${s.tracing_floor_cpu_us!.toFixed(2)} us CPU/req added; the mesh's share of tracing: ${s.tracing_mesh_cpu_us!.toFixed(2)} us CPU/req`,
    );
  }
  console.log(`\ntargets (client.request vs raw Pool.request; dispatcher and fetch vs their bare undici calls; tracing: with the SDK vs without, and that less the SDK floor):\n${formatTargets(report.targets)}`);
}

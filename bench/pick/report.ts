import type { TargetCheck } from "../lib/report.ts";
import { round } from "../lib/stats.ts";
import type { PickSettings } from "./settings.ts";
import type { CaseSummary } from "./summary.ts";

/** Picks per second each of these policies must reach at 10,000 endpoints. */
const TARGET_PICKS_PER_SEC = 5_000_000;
const TARGET_POLICIES = ["least_request", "peak_ewma", "weighted_round_robin"] as const;
/** Policies whose build cost at 10,000 endpoints is reported on its own. */
const BUILD_POLICIES = ["ring_hash", "maglev"] as const;

/** The whole `pick.json` report. */
export interface PickReport {
  readonly benchmark: "pick";
  readonly date: string;
  readonly environment: Record<string, unknown>;
  readonly settings: Record<string, unknown>;
  readonly cases: readonly Record<string, unknown>[];
  readonly summary: Record<string, number>;
  readonly targets: readonly TargetCheck[];
}

function grouped(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function pad(text: string, width: number, left: boolean): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

/**
 * Formats cases as a fixed-width table.
 *
 * @param rows - the cases, in table order
 */
export function formatPickTable(rows: readonly CaseSummary[]): string {
  const header = ["policy", "endpoints", "weights", "random", "picker", "picks/s", "ns/pick", "range Mpicks/s", "mean pending", "GCs"];
  const cells = rows.map((s) => [
    s.spec.key,
    grouped(s.spec.endpoints),
    s.spec.weights,
    s.spec.random,
    s.picker,
    grouped(s.picksPerSec),
    s.nsPerPick.toFixed(1),
    `${(s.minPicksPerSec / 1e6).toFixed(1)}-${(s.maxPicksPerSec / 1e6).toFixed(1)}`,
    s.meanPickedPending.toFixed(2),
    String(s.gcs),
  ]);
  const left = [true, false, true, true, true, false, false, false, false, false];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (row: readonly string[]): string => row.map((c, i) => pad(c, widths[i]!, left[i]!)).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

function find(rows: readonly CaseSummary[], key: string, endpoints: number): CaseSummary | undefined {
  return rows.find((s) => s.spec.key === key && s.spec.endpoints === endpoints);
}

function flatSummary(rows: readonly CaseSummary[]): Record<string, number> {
  const summary: Record<string, number> = {};
  for (const s of rows) summary[`${s.spec.key}_${s.spec.endpoints}_picks_per_sec`] = round(s.picksPerSec, 0);
  for (const policy of BUILD_POLICIES) {
    const s = find(rows, policy, 10_000);
    if (s === undefined) continue;
    summary[`${policy}_10000_build_ms`] = round(s.buildMs, 2);
    summary[`${policy}_10000_build_ms_cold`] = round(s.buildMsCold, 2);
  }
  return summary;
}

function targets(rows: readonly CaseSummary[]): TargetCheck[] {
  return TARGET_POLICIES.flatMap((policy) => {
    const s = find(rows, policy, 10_000);
    if (s === undefined) return [];
    const value = round(s.picksPerSec, 0);
    return [{ name: `${policy}_10000_picks_per_sec`, target: `>= ${grouped(TARGET_PICKS_PER_SEC)}`, value, met: value >= TARGET_PICKS_PER_SEC }];
  });
}

function caseJson(s: CaseSummary): Record<string, unknown> {
  return {
    key: s.spec.key,
    policy: s.spec.policy,
    endpoints: s.spec.endpoints,
    weights: s.spec.weights,
    hashed: s.spec.hashed,
    random: s.spec.random,
    main: s.spec.main,
    picker: s.picker,
    picks_per_sec: round(s.picksPerSec, 0),
    ns_per_pick: round(s.nsPerPick, 2),
    min_picks_per_sec: round(s.minPicksPerSec, 0),
    max_picks_per_sec: round(s.maxPicksPerSec, 0),
    build_ms: round(s.buildMs, 3),
    build_ms_cold: round(s.buildMsCold, 3),
    mean_picked_pending: round(s.meanPickedPending, 3),
    gcs_during_timed_batches: s.gcs,
    batch_picks_per_sec: s.batchPicksPerSec.map((r) => round(r, 0)),
  };
}

/**
 * Builds the JSON report.
 *
 * @param rows - every case's summary
 * @param settings - what the run did
 * @param env - the machine and runtime
 */
export function buildPickReport(rows: readonly CaseSummary[], settings: PickSettings, env: Record<string, unknown>): PickReport {
  return {
    benchmark: "pick",
    date: new Date().toISOString(),
    environment: env,
    settings: {
      passes: settings.passes,
      batches_per_pass: settings.batches,
      batch_size: settings.batchSize,
      warmup_ms: settings.warmupMs,
      builds_per_pass: settings.builds,
      only: settings.only,
      targets:
        "createEndpoint per target; load.pending seeded random 0-20; 1-3 RTT samples of 1-50 ms each; weights 1, " +
        "or seeded random integers 1-10 for weighted_round_robin and the *_weighted lines",
      picker:
        "plugin.parseConfig(undefined, 'config'), createPicker(targets, config, { clock: systemClock, random: createSeededRandom(1) }); " +
        "the *_system_random lines use systemRandom (Math.random), the mesh's default",
      contexts: "ring_hash and maglev: 4096 precomputed { hash } with random uint32 values, cycled; others: one { hash: undefined }",
      method:
        "each case in a fresh worker thread per pass (one picker class at the pick call site); warm-up, then timed " +
        "batches summing pending of each picked target; picks/s is the median over every batch of every pass; " +
        "build_ms is the median of the warm createPicker calls, build_ms_cold of each pass's first",
    },
    cases: rows.map(caseJson),
    summary: flatSummary(rows),
    targets: targets(rows),
  };
}

/**
 * Prints the tables, the build costs and the target checks.
 *
 * @param rows - every case's summary
 * @param report - the report built from them
 */
export function printPickReport(rows: readonly CaseSummary[], report: PickReport): void {
  const main = rows.filter((s) => s.spec.main);
  const extra = rows.filter((s) => !s.spec.main);
  const batches = rows[0]?.batchPicksPerSec.length ?? 0;
  console.log(`\npick cost, median of ${batches} batches per case\n`);
  if (main.length > 0) console.log(formatPickTable(main));
  if (extra.length > 0) console.log(`\nother code paths\n\n${formatPickTable(extra)}`);
  const builds = BUILD_POLICIES.flatMap((policy) => {
    const s = find(rows, policy, 10_000);
    return s === undefined ? [] : [`${policy.padEnd(9)} ${s.buildMs.toFixed(1)} ms (first, cold: ${s.buildMsCold.toFixed(1)} ms)`];
  });
  if (builds.length > 0) console.log(`\ncreatePicker at 10,000 endpoints (median):\n${builds.join("\n")}`);
  if (report.targets.length > 0) {
    const lines = report.targets.map((c) => `${c.met ? "MET    " : "NOT MET"}  ${c.name} = ${grouped(c.value)} (target ${c.target})`);
    console.log(`\ntargets (picks/s at 10,000 endpoints):\n${lines.join("\n")}`);
  }
}

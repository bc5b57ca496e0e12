import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { round } from "./stats.ts";
import type { VariantRounds, VariantSummary } from "./summary.ts";

/** A target from the issue and whether this run met it. */
export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly value: number;
  readonly met: boolean;
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

/**
 * Formats the per-variant summary as a fixed-width table.
 *
 * @param summaries - one row per variant, the baseline first
 */
export function formatTable(summaries: readonly VariantSummary[]): string {
  const header = ["variant", "req/s", "x raw", "x raw range", "CPU us/req", "+CPU us", "p50 ms", "p99 ms"];
  const rows = summaries.map((s) => [
    s.label,
    s.rps.toFixed(0),
    s.throughputRatio.toFixed(3),
    `${s.throughputRatioMin.toFixed(2)}-${s.throughputRatioMax.toFixed(2)}`,
    s.cpuUsPerReq.toFixed(1),
    (s.addedCpuUs >= 0 ? "+" : "") + s.addedCpuUs.toFixed(1),
    s.p50Ms.toFixed(2),
    s.p99Ms.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => pad(c, widths[i]!, i === 0)).join("  ");
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/**
 * Formats target checks, one per line.
 *
 * @param checks - the targets
 */
export function formatTargets(checks: readonly TargetCheck[]): string {
  return checks.map((c) => `${c.met ? "MET    " : "NOT MET"}  ${c.name} = ${c.value.toFixed(3)} (target ${c.target})`).join("\n");
}

/**
 * The JSON figures of one variant: medians, paired ratios and every round.
 *
 * @param summary - the medians
 * @param rounds - the raw rounds
 */
export function variantJson(summary: VariantSummary, rounds: VariantRounds): Record<string, unknown> {
  return {
    label: summary.label,
    median: {
      rps: round(summary.rps, 1),
      cpu_us_per_req: round(summary.cpuUsPerReq, 2),
      p50_ms: round(summary.p50Ms, 3),
      p99_ms: round(summary.p99Ms, 3),
    },
    vs_raw: {
      throughput_ratio: round(summary.throughputRatio, 4),
      throughput_ratio_min: round(summary.throughputRatioMin, 4),
      throughput_ratio_max: round(summary.throughputRatioMax, 4),
      added_cpu_us: round(summary.addedCpuUs, 2),
    },
    rounds: rounds.rounds.map((r) => ({
      requests: r.requests,
      elapsed_ms: round(r.elapsedMs, 1),
      rps: round(r.rps, 1),
      cpu_us_per_req: round(r.cpuUsPerReq, 2),
      p50_ms: round(r.p50Ms, 3),
      p99_ms: round(r.p99Ms, 3),
    })),
  };
}

/**
 * Writes a JSON report, creating its directory.
 *
 * @param file - the path to write
 * @param report - the report object
 */
export async function writeJson(file: string, report: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(report, null, 2) + "\n");
}

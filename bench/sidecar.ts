/**
 * `npm run bench:sidecar`: the mesh against a sidecar proxy, as a user would choose between them.
 *
 * One backend runs in a child process. The client sends GETs to it five ways: straight to it with a
 * bare undici `Pool` (the baseline), through the mesh (`client.request`), through undici's
 * `BalancedPool`, and through HAProxy and nginx running on loopback in front of the same backend (a
 * sidecar's hop), each with a bare `Pool`. A proxy that is not installed is left out, with how to
 * install it. Three phases: closed loops at concurrency 1 and 16, and an open loop at a fixed rate. In
 * each, interleaved rounds (the order rotates) measure the client's CPU per request, the proxy's CPU per
 * request (from /proc) and latency. Per variant: added client CPU over the baseline (paired per round),
 * proxy CPU, their total, Δp50 and Δp99, medians over rounds. Writes `bench/results/sidecar.json` and
 * the chart `docs/images/sidecar.svg`.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { BalancedPool, Pool } from "undici";
import { createMesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startBackendProcess } from "./lib/backend-process.ts";
import { envInt } from "./lib/env.ts";
import { collectYoungGarbage } from "./lib/gc.ts";
import { LatencyRecorder } from "./lib/latency-recorder.ts";
import { runOpenLoop } from "./lib/open-loop.ts";
import { processCpuUs } from "./lib/process-cpu.ts";
import { isRunning, startHaproxy, startNginx, type RunningProxy } from "./lib/proxies.ts";
import { writeJson } from "./lib/report.ts";
import { runRound, type RoundSample } from "./lib/run-round.ts";
import { environment } from "./lib/settings.ts";
import { sidecarChart, type ChartBar } from "./lib/sidecar-chart.ts";
import { median, round } from "./lib/stats.ts";

const OUTPUT = fileURLToPath(new URL("results/sidecar.json", import.meta.url));
const CHART = fileURLToPath(new URL("../docs/images/sidecar.svg", import.meta.url));
const PATH = "/bench";

const rounds = envInt("BENCH_ROUNDS", 6, 1);
const roundMs = envInt("BENCH_ROUND_MS", 2000, 100);
const leadInMs = envInt("BENCH_LEAD_IN_MS", 250, 0);
const rate = envInt("BENCH_OPEN_RATE", 2000, 1);

interface Variant {
  readonly key: string;
  readonly label: string;
  readonly send: () => Promise<void>;
  /** The proxy in the path, whose CPU is counted too. */
  readonly proxy?: RunningProxy;
}

interface Sample extends RoundSample {
  readonly proxyCpuUsPerReq: number;
}

interface Phase {
  readonly key: string;
  readonly label: string;
  readonly run: (send: () => Promise<void>, ms: number) => Promise<RoundSample>;
}

function poolSend(pool: Pool | BalancedPool, key: string): () => Promise<void> {
  return async () => {
    const { statusCode, body } = await pool.request({ path: PATH, method: "GET" });
    await body.text();
    if (statusCode !== 200) throw new Error(`${key}: status ${String(statusCode)}`);
  };
}

const backend = await startBackendProcess();
const proxies: RunningProxy[] = [];
const pools: (Pool | BalancedPool)[] = [];
const settings = { connections: 16, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 };
const url = new URL(backend.origin);
const mesh = createMesh({ registry: new MockRegistry({ bench: [{ address: url.hostname, port: Number(url.port) }] }), pool: settings });
try {
  const raw = new Pool(backend.origin, settings);
  const balanced = new BalancedPool([backend.origin], settings);
  pools.push(raw, balanced);
  const client = mesh.client("bench");
  const variants: Variant[] = [
    { key: "raw", label: "undici Pool (baseline)", send: poolSend(raw, "raw") },
    {
      key: "mesh",
      label: "proxyless client.request",
      send: async () => {
        const { statusCode, body } = await client.request({ path: PATH });
        await body.text();
        if (statusCode !== 200) throw new Error(`mesh: status ${String(statusCode)}`);
      },
    },
    { key: "balanced", label: "undici BalancedPool", send: poolSend(balanced, "balanced") },
  ];
  const missing: string[] = [];
  for (const start of [startHaproxy, startNginx]) {
    const proxy = await start(backend.origin);
    if (!isRunning(proxy)) {
      missing.push(proxy.reason);
      console.log(`${proxy.name}: left out: ${proxy.reason}`);
      continue;
    }
    proxies.push(proxy);
    const pool = new Pool(proxy.origin, settings);
    pools.push(pool);
    variants.push({ key: proxy.name, label: `${proxy.name} sidecar (${proxy.version})`, send: poolSend(pool, proxy.name), proxy });
  }

  const recorder = new LatencyRecorder();
  const phases: Phase[] = [
    { key: "c1", label: "closed loop, concurrency 1", run: (send, ms) => runRound(send, 1, ms, recorder) },
    { key: "c16", label: "closed loop, concurrency 16", run: (send, ms) => runRound(send, 16, ms, recorder) },
    { key: "open", label: `open loop, ${String(rate)} req/s`, run: (send, ms) => runOpenLoop(send, rate, ms, recorder) },
  ];
  const measure = async (phase: Phase, v: Variant, ms: number): Promise<Sample> => {
    collectYoungGarbage();
    await sleep(100);
    if (leadInMs > 0) await phase.run(v.send, leadInMs);
    const proxyBefore = v.proxy === undefined ? 0 : processCpuUs(v.proxy.pid);
    const sample = await phase.run(v.send, ms);
    const proxyCpu = v.proxy === undefined ? 0 : processCpuUs(v.proxy.pid) - proxyBefore;
    return { ...sample, proxyCpuUsPerReq: proxyCpu / sample.requests };
  };

  const results: Record<string, Record<string, Sample[]>> = {};
  for (const phase of phases) {
    console.log(`\n${phase.label}: warm-up, then ${String(rounds)} rounds of ${String(roundMs)} ms per variant`);
    for (const v of variants) await measure(phase, v, Math.min(1000, roundMs));
    const byVariant: Record<string, Sample[]> = Object.fromEntries(variants.map((v) => [v.key, []]));
    for (let r = 0; r < rounds; r++) {
      // Rotated order: each variant runs in each position as often as the rounds allow.
      const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
      const parts: string[] = [];
      for (const v of order) {
        const s = await measure(phase, v, roundMs);
        byVariant[v.key]!.push(s);
        parts.push(`${v.key} ${s.cpuUsPerReq.toFixed(1)}+${s.proxyCpuUsPerReq.toFixed(1)}us p99 ${s.p99Ms.toFixed(2)}ms`);
      }
      console.log(`round ${String(r + 1)}/${String(rounds)}: ${parts.join(" | ")}`);
    }
    results[phase.key] = byVariant;
  }

  // Per phase and variant, paired per round against the baseline of the same round, then the median.
  const rows: Record<string, Record<string, Record<string, number>>> = {};
  const summary: Record<string, number> = {};
  const bars: ChartBar[] = [];
  for (const phase of phases) {
    const base = results[phase.key]!.raw!;
    rows[phase.key] = {};
    for (const v of variants) {
      const samples = results[phase.key]![v.key]!;
      const paired = (f: (s: Sample, b: Sample) => number): number => median(samples.map((s, i) => f(s, base[i]!)));
      const row = {
        rps: round(median(samples.map((s) => s.rps)), 0),
        client_cpu_us: round(median(samples.map((s) => s.cpuUsPerReq)), 2),
        added_client_cpu_us: round(paired((s, b) => s.cpuUsPerReq - b.cpuUsPerReq), 2),
        proxy_cpu_us: round(median(samples.map((s) => s.proxyCpuUsPerReq)), 2),
        total_added_cpu_us: round(paired((s, b) => s.cpuUsPerReq - b.cpuUsPerReq + s.proxyCpuUsPerReq), 2),
        p50_ms: round(median(samples.map((s) => s.p50Ms)), 3),
        p99_ms: round(median(samples.map((s) => s.p99Ms)), 3),
        delta_p50_ms: round(paired((s, b) => s.p50Ms - b.p50Ms), 3),
        delta_p99_ms: round(paired((s, b) => s.p99Ms - b.p99Ms), 3),
      };
      rows[phase.key]![v.key] = row;
      if (v.key === "raw") continue;
      for (const [name, value] of Object.entries(row)) if (name !== "rps" && name !== "client_cpu_us" && name !== "p50_ms" && name !== "p99_ms") summary[`${phase.key}_${v.key}_${name}`] = value;
      bars.push({ phase: phase.label, variant: v.label.replace(/ \(.*\)$/, ""), clientUs: row.added_client_cpu_us, proxyUs: row.proxy_cpu_us, totalUs: row.total_added_cpu_us });
    }
  }
  // The mesh's added CPU over the cheapest sidecar's, in the phase where that ratio is largest.
  if (proxies.length > 0) {
    const ratios = phases.map((p) => rows[p.key]!.mesh!.total_added_cpu_us! / Math.min(...proxies.map((x) => rows[p.key]![x.name]!.total_added_cpu_us!)));
    summary.mesh_vs_sidecar_added_cpu_ratio = round(Math.max(...ratios), 4);
  }

  console.log("\nper request, medians over rounds (added and Δ paired per round against the baseline)\n");
  const header = ["phase", "variant", "req/s", "+client us", "proxy us", "total us", "Δp50 ms", "Δp99 ms"];
  const lines = [header];
  for (const phase of phases) {
    for (const v of variants) {
      const r = rows[phase.key]![v.key]!;
      lines.push([phase.key, v.key, String(r.rps), String(r.added_client_cpu_us), String(r.proxy_cpu_us), String(r.total_added_cpu_us), String(r.delta_p50_ms), String(r.delta_p99_ms)]);
    }
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  for (const l of lines) console.log(l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  if (summary.mesh_vs_sidecar_added_cpu_ratio !== undefined) {
    const met = summary.mesh_vs_sidecar_added_cpu_ratio <= 0.1;
    console.log(`\n${met ? "MET    " : "NOT MET"}  mesh_vs_sidecar_added_cpu_ratio = ${summary.mesh_vs_sidecar_added_cpu_ratio.toFixed(3)} (goal <= 0.1)`);
  } else console.log("\nno sidecar ran: mesh_vs_sidecar_added_cpu_ratio is not reported");

  await writeJson(OUTPUT, {
    benchmark: "sidecar",
    date: new Date().toISOString(),
    environment: environment(),
    settings: {
      rounds,
      round_ms: roundMs,
      lead_in_ms: leadInMs,
      open_loop_rate: rate,
      pool: settings,
      proxies: proxies.map((p) => p.version),
      left_out: missing,
      method:
        "one backend (node:http, child process); variants: bare undici Pool (baseline), proxyless client.request, undici BalancedPool, and HAProxy and nginx on loopback in front of the backend with a bare Pool; phases: closed loop at concurrency 1 and 16, open loop at a fixed rate (latency from each request's due time); per phase a warm-up, then rounds in rotated order, each run after a scavenge of the young generation (not a full GC: see bench/lib/gc.ts), a pause and a lead-in; client CPU from process.cpuUsage(), proxy CPU from /proc/<pid>/stat; added and Δ figures paired per round against the baseline, medians over rounds; mesh_vs_sidecar_added_cpu_ratio: the mesh's total added CPU over the cheapest sidecar's, the largest over the phases",
    },
    phases: rows,
    summary,
  });
  await mkdir(fileURLToPath(new URL("../docs/images/", import.meta.url)), { recursive: true });
  await writeFile(CHART, sidecarChart("CPU per request added over a bare undici Pool (bench:sidecar)", bars));
  console.log(`\nwrote ${OUTPUT}\nwrote ${CHART}`);
} finally {
  await Promise.all(pools.map((p) => p.close()));
  await mesh.close();
  for (const p of proxies) await p.stop();
  await backend.stop();
}

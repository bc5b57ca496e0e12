/**
 * `npm run bench:propagation`: how long a change in Consul takes to reach the mesh's picker.
 *
 * FakeConsul (in this process) holds N instances of `orders`, each with a passing TTL check. A mesh on
 * ConsulRegistry watches them with a blocking query. Each change fails or passes one instance's check
 * through the agent API; the clock starts when FakeConsul acknowledges it (the PUT's 200) and stops when
 * the mesh's picker reflects it (`endpoints_changed`, after which the next pick sees the change, as
 * `mesh.inspect` confirms). 200 changes, 10 and 1,000 instances. Writes `bench/results/propagation.json`.
 */
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { ConsulRegistry, createMesh } from "proxyless";
import { FakeConsul } from "proxyless/testing";
import { envInt } from "./lib/env.ts";
import { formatTargets, writeJson, type TargetCheck } from "./lib/report.ts";
import { quantileSorted, round } from "./lib/stats.ts";

const OUTPUT = fileURLToPath(new URL("results/propagation.json", import.meta.url));
const CHANGES = envInt("BENCH_PROPAGATION_CHANGES", 200, 1);
const SPACING_MS = envInt("BENCH_PROPAGATION_SPACING_MS", 150, 0);
const QUERIES_PER_SECOND = 10;

async function put(url: string, body?: unknown): Promise<void> {
  const res = await request(url, { method: "PUT", ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${text}`);
}

interface Run {
  readonly instances: number;
  readonly samplesMs: Float64Array;
}

/** Measures `CHANGES` changes with `instances` instances registered. */
async function measure(instances: number): Promise<Run> {
  const fake = await FakeConsul.start();
  try {
    for (let i = 0; i < instances; i++) {
      await put(`${fake.url}/v1/agent/service/register`, {
        Name: "orders",
        ID: `orders-${i}`,
        Address: "10.0.0.1",
        Port: 1024 + i,
        Check: { TTL: "1h", Status: "passing" },
      });
    }
    const registry = new ConsulRegistry({ url: fake.url, queriesPerSecond: QUERIES_PER_SECOND });
    const mesh = createMesh({ registry });
    mesh.client("orders");
    while ((mesh.inspect("orders")?.ready ?? 0) < instances) await new Promise((r) => mesh.once("endpoints_changed", r));
    const samples = new Float64Array(CHANGES);
    for (let c = 0; c < CHANGES; c++) {
      const target = `orders-${Math.floor(c / 2) % instances}`;
      const failing = c % 2 === 0;
      const expectedReady = failing ? instances - 1 : instances;
      const reflected = new Promise<number>((resolve) => {
        const listener = (): void => {
          if (mesh.inspect("orders")?.ready !== expectedReady) return;
          mesh.off("endpoints_changed", listener);
          resolve(performance.now());
        };
        mesh.on("endpoints_changed", listener);
      });
      await put(`${fake.url}/v1/agent/check/${failing ? "fail" : "pass"}/service:${target}`);
      const acknowledged = performance.now();
      samples[c] = (await reflected) - acknowledged;
      if (SPACING_MS > 0) await sleep(SPACING_MS);
    }
    await mesh.close();
    return { instances, samplesMs: samples.sort() };
  } finally {
    await fake.close();
  }
}

const runs: Run[] = [];
for (const instances of [10, 1000]) {
  runs.push(await measure(instances));
  const last = runs[runs.length - 1]!;
  console.log(
    `${String(instances).padStart(5)} instances: p50 ${quantileSorted(last.samplesMs, 0.5).toFixed(1)} ms, ` +
      `p99 ${quantileSorted(last.samplesMs, 0.99).toFixed(1)} ms, max ${last.samplesMs[last.samplesMs.length - 1]?.toFixed(1)} ms`,
  );
}
const summary: Record<string, number> = {};
for (const run of runs) {
  summary[`p50_ms_${run.instances}`] = round(quantileSorted(run.samplesMs, 0.5), 2);
  summary[`p99_ms_${run.instances}`] = round(quantileSorted(run.samplesMs, 0.99), 2);
  summary[`max_ms_${run.instances}`] = round(run.samplesMs[run.samplesMs.length - 1] ?? 0, 2);
}
const p99 = summary.p99_ms_1000 ?? Infinity;
const targets: TargetCheck[] = [{ name: "p99_ms_1000", target: "<= 100", value: p99, met: p99 <= 100 }];
console.log(`\ntargets:\n${formatTargets(targets)}`);
await writeJson(OUTPUT, {
  benchmark: "propagation",
  date: new Date().toISOString(),
  environment: { node: process.version },
  settings: {
    changes: CHANGES,
    spacing_ms: SPACING_MS,
    queries_per_second: QUERIES_PER_SECOND,
    change: "alternately fail and pass one instance's TTL check through the agent API",
    start: "FakeConsul's 200 to the check update",
    end: "the mesh's endpoints_changed with the expected ready count (the picker is swapped before it)",
    fake_consul: "in this process",
  },
  summary,
  targets,
});
console.log(`\nwrote ${OUTPUT}`);

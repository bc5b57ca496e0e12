/**
 * `npm run bench:resilience`: the resilience figures on misbehaving servers on loopback, in one run:
 * one endpoint of ten failing every request (success rate, attempts per request, failures before it is
 * ejected), a whole service failing (attempts per request under the retry budget, breaker off), and a
 * straggler with and without hedging (p99 ratio, both measured in this run). Writes
 * `bench/results/resilience.json`.
 */
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createMesh, type ResilienceOptions } from "proxyless";
import { MockRegistry, createSeededRandom } from "proxyless/testing";
import { envInt } from "./lib/env.ts";
import { writeJson } from "./lib/report.ts";
import { environment } from "./lib/settings.ts";
import { round } from "./lib/stats.ts";

const OUTPUT = fileURLToPath(new URL("results/resilience.json", import.meta.url));
const REQUESTS = envInt("BENCH_REQUESTS", 5000, 100);
const CONCURRENCY = envInt("BENCH_CONCURRENCY", 20, 1);

interface Instance {
  readonly server: Server;
  readonly port: number;
  status: number;
  delayMs: number;
  seen: number;
}

async function instance(): Promise<Instance> {
  const server = createServer((_req, res) => {
    inst.seen++;
    const answer = (): void => {
      res.writeHead(inst.status);
      res.end("x");
    };
    if (inst.delayMs > 0) setTimeout(answer, inst.delayMs);
    else answer();
  });
  const inst: Instance = { server, port: 0, status: 200, delayMs: 0, seen: 0 };
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return Object.assign(inst, { port: (server.address() as AddressInfo).port });
}

async function drive(instances: readonly Instance[], resilience: ResilienceOptions, requests: number, concurrency: number) {
  const mesh = createMesh({ registry: new MockRegistry({ svc: instances.map((i, n) => ({ id: `i${n}`, address: "127.0.0.1", port: i.port })) }), random: createSeededRandom(11), resilience });
  const ejections: number[] = [];
  mesh.on("endpoint_ejected", (e) => ejections.push(e.failures));
  for (const i of instances) i.seen = 0;
  let ok = 0;
  let next = 0;
  const latencies: number[] = [];
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) {
        const t = performance.now();
        try {
          const res = await mesh.client("svc").request({ path: "/" });
          await res.body.dump();
          if (res.statusCode === 200) ok++;
        } catch {
          // counted as a failure
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await mesh.close();
  latencies.sort((a, b) => a - b);
  const attempts = instances.reduce((n, i) => n + i.seen, 0);
  return { ok, attempts, seconds, ejections, p99: latencies[Math.floor(0.99 * latencies.length)] ?? 0 };
}

const instances = await Promise.all(Array.from({ length: 10 }, instance));

// One bad endpoint of ten.
instances[3]!.status = 503;
const oneBad = await drive(instances, {}, REQUESTS, CONCURRENCY);
instances[3]!.status = 200;

// A whole service failing, breaker off: only the budget limits retries.
const three = instances.slice(0, 3);
for (const i of three) i.status = 503;
const outage = await drive(three, { breaker: false, outlier: false }, REQUESTS / 2, CONCURRENCY);
for (const i of three) i.status = 200;

// A straggler: with and without hedging (budget raised so every slow first attempt may hedge).
const pair = instances.slice(0, 2);
pair[0]!.delayMs = 200;
const plain = await drive(pair, {}, 200, 4);
const hedged = await drive(pair, { hedging: { delayMs: 20 }, budget: { minPerSecond: 1000 } }, 200, 4);
pair[0]!.delayMs = 0;

for (const i of instances) i.server.close();

const summary = {
  one_bad_success_rate: round(oneBad.ok / REQUESTS, 5),
  one_bad_attempts_per_request: round(oneBad.attempts / REQUESTS, 4),
  failures_before_ejection: oneBad.ejections[0] ?? null,
  outage_attempts_per_request: round(outage.attempts / (REQUESTS / 2), 4),
  outage_attempt_limit_per_request: round((1.2 * (REQUESTS / 2) + 10 * Math.ceil(outage.seconds)) / (REQUESTS / 2), 4),
  hedging_p99_ratio: round(hedged.p99 / plain.p99, 3),
  hedging_p99_ms: round(hedged.p99, 1),
  no_hedging_p99_ms: round(plain.p99, 1),
};
const checks: [string, boolean, string][] = [
  ["one_bad_success_rate", summary.one_bad_success_rate >= 0.999, ">= 0.999"],
  ["one_bad_attempts_per_request", summary.one_bad_attempts_per_request <= 1.12, "<= 1.12"],
  ["failures_before_ejection", (summary.failures_before_ejection ?? Infinity) <= 5, "<= 5"],
  ["outage_attempts_per_request", summary.outage_attempts_per_request <= summary.outage_attempt_limit_per_request, `<= 1.2 + 10/s (${summary.outage_attempt_limit_per_request} here)`],
  ["hedging_p99_ratio", summary.hedging_p99_ratio < 1, "< 1"],
];
console.log(`${REQUESTS} requests, concurrency ${CONCURRENCY}\n`);
for (const [name, value] of Object.entries(summary)) console.log(`${name.padEnd(34)} ${String(value)}`);
console.log("\ntargets:");
for (const [name, met, target] of checks) console.log(`${met ? "MET     " : "MISSED  "} ${name} (target ${target})`);
await writeJson(OUTPUT, { summary, settings: { requests: REQUESTS, concurrency: CONCURRENCY }, environment: environment() });
console.log(`\nwrote ${OUTPUT}`);

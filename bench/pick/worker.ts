/**
 * One case of `npm run bench:pick`, in a worker of its own: builds the targets and the picker through
 * the real plugin, warms up, times the batches and posts a {@link CaseResult}.
 */
import { PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parentPort, workerData } from "node:worker_threads";
import { builtinBalancers } from "../../src/balancer/balancer-registry.ts";
import type { PickTarget, Picker } from "../../src/balancer/picker.ts";
import { systemClock } from "../../src/core/clock.ts";
import { createSeededRandom, systemRandom } from "../../src/core/random.ts";
import { timeBatches, warmUp } from "./measure.ts";
import type { CaseRequest, CaseResult } from "./protocol.ts";
import { buildContexts, buildTargets } from "./targets.ts";

const request = workerData as CaseRequest;
const { case: spec } = request;
const plugin = builtinBalancers.find((p) => p.name === spec.policy);
if (plugin === undefined) throw new Error(`no built-in balancer named ${spec.policy}`);

const targets = buildTargets(spec.endpoints, spec.weights, systemClock);
const config = plugin.parseConfig(undefined, "config");
const buildMs: number[] = [];
let picker: Picker<PickTarget> | undefined;
for (let i = 0; i < Math.max(1, request.builds); i++) {
  const t0 = performance.now();
  const random = spec.random === "seeded" ? createSeededRandom(1) : systemRandom;
  picker = plugin.createPicker(targets, config, { clock: systemClock, random });
  buildMs.push(performance.now() - t0);
}
if (picker === undefined) throw new Error("no picker built");

const gcStarts: number[] = [];
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcStarts.push(entry.startTime);
});
observer.observe({ entryTypes: ["gc"] });

const contexts = buildContexts(spec.hashed);
const warm = warmUp(picker, contexts, request.batchSize, request.warmupMs);
const timed = timeBatches(picker, contexts, request.batchSize, request.batches);
await sleep(10); // GC entries are delivered later, on the event loop
observer.disconnect();

const result: CaseResult = {
  type: "result",
  picker: (picker as object).constructor.name,
  buildMs,
  batchMs: timed.batchMs,
  pendingSum: timed.pendingSum,
  warmupPendingSum: warm,
  gcs: gcStarts.filter((t) => t >= timed.start && t <= timed.end).length,
};
parentPort?.postMessage(result);

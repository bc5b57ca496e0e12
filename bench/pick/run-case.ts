import { Worker } from "node:worker_threads";
import type { PickCase } from "./cases.ts";
import { isCaseResult, type CaseRequest, type CaseResult } from "./protocol.ts";
import type { PickSettings } from "./settings.ts";

const WORKER = new URL("worker.ts", import.meta.url);

/**
 * Measures one case in a fresh worker (its own V8 isolate, so no other picker class has been seen at
 * the pick call site) and waits for it to exit.
 *
 * @param spec - the case
 * @param settings - batches, batch size, warm-up and builds
 * @throws Error when the worker fails or exits without a result
 */
export async function runCase(spec: PickCase, settings: PickSettings): Promise<CaseResult> {
  const request: CaseRequest = {
    case: spec,
    batchSize: settings.batchSize,
    batches: settings.batches,
    warmupMs: settings.warmupMs,
    builds: settings.builds,
  };
  const worker = new Worker(WORKER, { workerData: request });
  return new Promise<CaseResult>((resolve, reject) => {
    let result: CaseResult | undefined;
    worker.on("message", (message: unknown) => {
      if (isCaseResult(message)) result = message;
    });
    worker.on("error", reject);
    worker.on("exit", (code) => {
      if (result !== undefined) resolve(result);
      else reject(new Error(`the ${spec.key}:${spec.endpoints} worker exited with code ${code} and no result`));
    });
  });
}

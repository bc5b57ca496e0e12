/**
 * `npm run bench:grpc`: unary gRPC calls through the mesh against a raw grpc-js client to the same server.
 *
 * A grpc-js server in a child process answers `orders.Orders/Get`. Two variants call it with the same
 * number of concurrent loops: a plain grpc-js client on `127.0.0.1:<port>` (one channel, grpc-js's
 * default pick_first), and the client `grpcMesh(mesh).client()` makes for the service `bench` (the mesh's
 * resolver, balancer and interceptor: routing, the picker, retries, outlier and breaker bookkeeping).
 * Rounds alternate the order, and each run starts with a scavenge (see lib/gc.ts), a 100 ms pause and an unmeasured
 * lead-in; the medians and the ratio (mesh ÷ raw, paired per round) go to
 * `bench/results/grpc.json`. Target: grpc_throughput_ratio >= 0.90.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createMesh } from "proxyless";
import { grpcMesh } from "proxyless/grpc";
import { MockRegistry } from "proxyless/testing";
import { isBackendReady } from "./lib/backend-protocol.ts";
import { runPairedRounds } from "./lib/paired-rounds.ts";
import { round } from "./lib/stats.ts";
import { environment, readSettings } from "./lib/settings.ts";
import { writeJson } from "./lib/report.ts";

const OUTPUT = fileURLToPath(new URL("results/grpc.json", import.meta.url));
const PROTO = fileURLToPath(new URL("../test/fixtures/grpc/orders.proto", import.meta.url));
const settings = readSettings();
const rounds = Math.max(2, settings.rounds);

const Orders = (loadPackageDefinition(loadSync(PROTO)).orders as GrpcObject).Orders as ServiceClientConstructor;
const child = fork(fileURLToPath(new URL("grpc-backend.ts", import.meta.url)), [], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: process.execArgv });
async function backendPort(): Promise<number> {
  for (;;) {
    const [message] = (await once(child, "message")) as [unknown];
    if (isBackendReady(message)) return message.port;
  }
}
const port = await backendPort();

const raw = new Orders(`127.0.0.1:${port}`, credentials.createInsecure());
const mesh = createMesh({ registry: new MockRegistry({ bench: [{ address: "127.0.0.1", port }] }) });
const grpc = grpcMesh(mesh);
const meshClient = grpc.client(Orders, "bench");

function call(client: Client): () => Promise<void> {
  const get = (client as unknown as { get(req: object, cb: (err: Error | null) => void): void }).get.bind(client);
  return () =>
    new Promise<void>((resolve, reject) => {
      get({ id: "42" }, (err) => (err === null ? resolve() : reject(err)));
    });
}
const variants = { raw: call(raw), mesh: call(meshClient) };

try {
  const { raw: rawRow, mesh: meshRow, ratio, ratios } = await runPairedRounds(variants, settings, rounds, "calls/s");
  console.log("\nvariant                                 calls/s  CPU us/call  p50 ms  p99 ms");
  console.log(`grpc-js client, 127.0.0.1 (raw)       ${String(rawRow.rps).padStart(9)}  ${String(rawRow.cpu_us_per_req).padStart(11)}  ${String(rawRow.p50_ms).padStart(6)}  ${String(rawRow.p99_ms).padStart(6)}`);
  console.log(`grpcMesh(mesh).client, proxyless:     ${String(meshRow.rps).padStart(9)}  ${String(meshRow.cpu_us_per_req).padStart(11)}  ${String(meshRow.p50_ms).padStart(6)}  ${String(meshRow.p99_ms).padStart(6)}`);
  console.log(`\n${ratio >= 0.9 ? "MET    " : "NOT MET"}  grpc_throughput_ratio = ${ratio} (median of ${rounds} paired rounds, range ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}; target >= 0.90)`);
  await writeJson(OUTPUT, {
    summary: { grpc_throughput_ratio: ratio, grpc_added_cpu_us: round(meshRow.cpu_us_per_req - rawRow.cpu_us_per_req, 2) },
    variants: { raw: rawRow, mesh: meshRow },
    ratios: ratios.map((x) => round(x, 3)),
    settings: { ...settings, rounds, method: "rounds alternate the order (raw first in odd rounds); each run: a scavenge of the young generation, a pause, an unmeasured lead-in, then the measured run; the ratio is mesh ÷ raw per round, then the median" },
    environment: environment(),
  });
  console.log(`\nwrote ${OUTPUT}`);
} finally {
  meshClient.close();
  raw.close();
  grpc.close();
  await mesh.close();
  child.disconnect();
}

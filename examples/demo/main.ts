/**
 * The proxyless demo: three instances of an `orders` service, an embedded registry, a few hundred
 * requests through `mesh.client("orders")`, then one instance leaves and traffic carries on.
 *
 *   npm run demo
 */
import { createMesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { startOrdersInstance, type OrdersInstance } from "./orders-service.ts";

interface Tally {
  readonly latencies: number[];
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function printTable(title: string, tallies: ReadonlyMap<string, Tally>): void {
  console.log(`\n${title}`);
  console.log("  instance    requests   p50 ms   p99 ms");
  for (const [id, { latencies }] of [...tallies].sort(([a], [b]) => a.localeCompare(b))) {
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `  ${id.padEnd(10)}  ${String(latencies.length).padStart(8)}   ${percentile(sorted, 50).toFixed(2).padStart(6)}   ${percentile(sorted, 99).toFixed(2).padStart(6)}`,
    );
  }
}

/** Sends `total` requests, `concurrency` at a time, and tallies them by the instance that answered. */
async function drive(mesh: ReturnType<typeof createMesh>, total: number, concurrency: number): Promise<Map<string, Tally>> {
  const tallies = new Map<string, Tally>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const started = performance.now();
      const res = await mesh.client("orders").fetch(`/v1/orders/${n}`);
      const { servedBy } = (await res.json()) as { servedBy: string };
      const tally = tallies.get(servedBy) ?? { latencies: [] };
      tally.latencies.push(performance.now() - started);
      tallies.set(servedBy, tally);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tallies;
}

const instances: OrdersInstance[] = await Promise.all(["orders-1", "orders-2", "orders-3"].map((id) => startOrdersInstance(id, 2)));
const registry = new MockRegistry();
registry.setEndpoints(
  "orders",
  instances.map((i) => ({ id: i.id, address: "127.0.0.1", port: i.port })),
);
const mesh = createMesh({ registry, service: "checkout" });
console.log(`orders is running on ports ${instances.map((i) => i.port).join(", ")}; balancer: round_robin`);

printTable("300 requests over three instances:", await drive(mesh, 300, 10));

const leaving = instances[1]!;
registry.removeEndpoint("orders", leaving.id); // deregistration: the mesh stops picking it at once
await leaving.stop();
console.log(`\n${leaving.id} deregistered and stopped.`);

printTable("200 more requests: traffic carries on over the other two:", await drive(mesh, 200, 10));

await mesh.close();
await Promise.all(instances.filter((i) => i !== leaving).map((i) => i.stop()));
console.log("\nmesh closed; done.");

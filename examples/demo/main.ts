/**
 * The proxyless demo: three instances of an `orders` service (two of version v1, one canary of v2),
 * registered in a registry, a few hundred requests through `mesh.client("orders")`, then a 80/20 canary
 * split and a header route written as Consul config entries, then one instance leaves and traffic
 * carries on.
 *
 *   npm run demo                                      # an embedded in-memory registry
 *   npm run demo -- --consul http://127.0.0.1:8500    # a real Consul agent (consul agent -dev)
 */
import { parseArgs } from "node:util";
import { request } from "undici";
import { ConsulRegistry, createMesh, type Registry } from "proxyless";
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

/** Resolves at the next change of `orders`' endpoints. */
function nextChange(mesh: ReturnType<typeof createMesh>): Promise<void> {
  return new Promise((resolve) => mesh.once("endpoints_changed", () => resolve()));
}

/** Waits until the registry lists `n` ready instances of `orders` (at once in memory; a moment with Consul). */
async function allRegistered(mesh: ReturnType<typeof createMesh>, n: number): Promise<void> {
  mesh.client("orders");
  while ((mesh.inspect("orders")?.ready ?? 0) < n) await nextChange(mesh);
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

/** The canary rollout, as the Consul config entries one would `consul config write`. */
const CANARY_ENTRIES = [
  { Kind: "service-defaults", Name: "orders", Protocol: "http" },
  {
    Kind: "service-resolver",
    Name: "orders",
    Subsets: { v1: { Filter: "Service.Meta.version == v1" }, v2: { Filter: "Service.Meta.version == v2" } },
    Failover: { v2: { ServiceSubset: "v1" } },
  },
  { Kind: "service-splitter", Name: "orders", Splits: [{ Weight: 80, ServiceSubset: "v1" }, { Weight: 20, ServiceSubset: "v2" }] },
  { Kind: "service-router", Name: "orders", Routes: [{ Match: { HTTP: { Header: [{ Name: "x-canary", Exact: "1" }] } }, Destination: { ServiceSubset: "v2" } }] },
];

/** Applies config entries: to the embedded registry directly, or to Consul's HTTP API. */
async function applyEntries(registry: Registry, consul: string | undefined, entries: readonly object[]): Promise<void> {
  if (registry instanceof MockRegistry) return registry.applyConsulEntries(entries);
  for (const entry of entries) {
    const res = await request(`${consul ?? ""}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
    const answer = await res.body.text();
    if (answer !== "true") throw new Error(`Consul refused ${JSON.stringify(entry)}: ${answer}`);
  }
}

/** Deletes `orders`' entries of these kinds. */
async function deleteEntries(registry: Registry, consul: string | undefined, kinds: readonly ("service-router" | "service-splitter")[]): Promise<void> {
  for (const kind of kinds) {
    if (registry instanceof MockRegistry) registry.deleteConsulEntry(kind, "orders");
    else await (await request(`${consul ?? ""}/v1/config/${kind}/orders`, { method: "DELETE" })).body.dump();
  }
}

const { values } = parseArgs({ options: { consul: { type: "string" } } });
const registry: Registry = values.consul === undefined ? new MockRegistry() : new ConsulRegistry({ url: values.consul });
const instances: OrdersInstance[] = await Promise.all(["orders-1", "orders-2", "orders-3"].map((id) => startOrdersInstance(id, 2)));
const mesh = createMesh({ registry, service: "checkout" });
const registrations = await Promise.all(
  instances.map((i) =>
    mesh.register({ name: "orders", id: i.id, address: "127.0.0.1", port: i.port, meta: { version: i.id === "orders-3" ? "v2" : "v1" }, check: { ttl: 10_000 } }),
  ),
);
console.log(
  `orders is running on ports ${instances.map((i) => i.port).join(", ")}; registry: ${values.consul ?? "embedded"}; balancer: round_robin`,
);
await allRegistered(mesh, 3);

printTable("300 requests over three instances:", await drive(mesh, 300, 10));

await applyEntries(registry, values.consul, CANARY_ENTRIES);
while (mesh.inspect("orders")?.config.router === undefined) await new Promise((resolve) => mesh.once("config_applied", resolve));
console.log("\ncanary: orders-3 is v2; a splitter sends 20% to v2, and a router sends x-canary: 1 to v2.");
printTable("200 requests through the 80/20 split:", await drive(mesh, 200, 10));
const why = await mesh.explain("orders", { path: "/v1/orders/7", headers: { "x-canary": "1" } });
console.log(`\nmesh.explain() for a request with x-canary: 1: route ${why.route?.index}, subset ${why.target?.subset}, candidates ${why.candidates.map((c) => c.id).join(", ")}`);
await deleteEntries(registry, values.consul, ["service-router", "service-splitter"]);
while (mesh.inspect("orders")?.config.splitter !== undefined) await new Promise((resolve) => mesh.once("config_applied", resolve));
console.log("canary over: router and splitter deleted, round robin over all three again.");

const leaving = instances[1]!;
const gone = nextChange(mesh);
await registrations[1]!.deregister(); // the mesh stops picking it as soon as the registry says so
await gone;
await leaving.stop();
console.log(`\n${leaving.id} deregistered and stopped.`);

printTable("200 more requests: traffic carries on over the other two:", await drive(mesh, 200, 10));

await mesh.close(); // deregisters the other two
await Promise.all(instances.filter((i) => i !== leaving).map((i) => i.stop()));
console.log("\nmesh closed; done.");

/**
 * A balancer of your own: `prefer_tag` sends traffic to the endpoints with a tag while any is ready.
 *
 *   node --conditions=proxyless-source examples/custom-balancer/main.ts
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createMesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { preferTag } from "./prefer-tag.ts";

async function instance(id: string): Promise<{ port: number; close: () => void }> {
  const server = createServer((_req, res) => res.end(id)).listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

async function spread(mesh: ReturnType<typeof createMesh>, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const { body } = await mesh.client("orders").request({ path: "/" });
    const id = await body.text();
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

const servers = await Promise.all(["a1", "a2", "b1"].map(instance));
const registry = new MockRegistry({
  orders: [
    { id: "a1", address: "127.0.0.1", port: servers[0]!.port, tags: ["zone-a"] },
    { id: "a2", address: "127.0.0.1", port: servers[1]!.port, tags: ["zone-a"] },
    { id: "b1", address: "127.0.0.1", port: servers[2]!.port, tags: ["zone-b"] },
  ],
});
const mesh = createMesh({
  registry,
  balancers: [preferTag],
  loadBalancer: { policy: "prefer_tag", config: { tag: "zone-a" } },
  panicThreshold: 0, // with 2 of 3 endpoints down the default (50%) would spread over all, zone-a included
});

console.log("zone-a healthy:   ", await spread(mesh, 20));
registry.setHealth("orders", "a1", "critical");
registry.setHealth("orders", "a2", "critical");
console.log("zone-a down:      ", await spread(mesh, 20));

await mesh.close();
for (const s of servers) s.close();

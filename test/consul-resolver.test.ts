import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { ConsulRegistry, createMesh, type ConfigAppliedEvent, type ConfigRejectedEvent, type Mesh } from "proxyless";
import { decodeResolver } from "../src/registry/consul/decode-resolver.ts";
import { FakeConsul } from "proxyless/testing";
import { startBackends, type Backend } from "./helpers/backend.ts";
import { consulSample } from "./helpers/consul-samples.ts";


describe("decodeResolver", () => {
  it("maps the documented maglev example onto the maglev balancer with a header hash policy", () => {
    const example = (consulSample("config-service-resolver.examples.json") as { LoadBalancer?: unknown }[]).find((e) => e.LoadBalancer !== undefined);
    assert.deepEqual(decodeResolver(example), { loadBalancer: { policy: "maglev", config: { hashPolicies: [{ field: "header", name: "x-user-id" }] } } });
  });

  it("carries ChoiceCount and ring sizes, skips SourceIP, and gives defaults without a LoadBalancer", () => {
    assert.deepEqual(decodeResolver({ LoadBalancer: { Policy: "least_request", LeastRequestConfig: { ChoiceCount: 3 } } }), {
      loadBalancer: { policy: "least_request", config: { choiceCount: 3 } },
    });
    assert.deepEqual(
      decodeResolver({ LoadBalancer: { Policy: "ring_hash", RingHashConfig: { MinimumRingSize: 2048 }, HashPolicies: [{ SourceIP: true }, { Field: "cookie", FieldValue: "s", Terminal: true }] } }),
      { loadBalancer: { policy: "ring_hash", config: { minimumRingSize: 2048, hashPolicies: [{ field: "cookie", name: "s", terminal: true }] } } },
    );
    assert.deepEqual(decodeResolver(consulSample("config-service-resolver.json")), {});
    assert.deepEqual(decodeResolver(undefined), {});
  });
});

describe("a service-resolver in Consul chooses the service's balancer", () => {
  let fake: FakeConsul;
  let backends: Backend[];
  let mesh: Mesh;
  before(async () => {
    [fake, backends] = await Promise.all([FakeConsul.start(), startBackends(4)]);
    for (const b of backends) {
      const res = await request(`${fake.url}/v1/agent/service/register`, { method: "PUT", body: JSON.stringify({ Name: "orders", ID: b.name, Address: "127.0.0.1", Port: b.port }) });
      await res.body.dump();
    }
    mesh = createMesh({ registry: new ConsulRegistry({ url: fake.url, queriesPerSecond: 100 }) });
  });
  after(async () => {
    await mesh.close();
    await fake.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  const applied = (policy: string) =>
    new Promise<ConfigAppliedEvent>((resolve) => {
      const listener = (e: ConfigAppliedEvent): void => {
        if (e.policy !== policy) return;
        mesh.off("config_applied", listener);
        resolve(e);
      };
      mesh.on("config_applied", listener);
    });
  const put = async (entry: unknown): Promise<void> => {
    const res = await request(`${fake.url}/v1/config`, { method: "PUT", body: JSON.stringify(entry) });
    assert.equal(await res.body.text(), "true");
  };

  it("applies LoadBalancer from the entry, refuses what the mesh cannot use, and returns to the default when it is deleted", async () => {
    const first = await mesh.client("orders").request({ path: "/" });
    await first.body.dump();
    assert.equal(mesh.inspect("orders")?.policy, "round_robin");

    const maglev = applied("maglev");
    await put({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "maglev", HashPolicies: [{ Field: "header", FieldValue: "x-user" }] } });
    await maglev;
    for (const user of ["ann", "bob"]) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await mesh.client("orders").request({ path: "/", headers: { "x-user": user } });
        seen.add(String(res.headers["x-instance"]));
        await res.body.dump();
      }
      assert.equal(seen.size, 1, `${user} stays on one instance`);
    }

    // Consul accepts a ring whose minimum exceeds its maximum; the mesh does not.
    const rejected = new Promise<ConfigRejectedEvent>((resolve) => mesh.once("config_rejected", resolve));
    await put({ Kind: "service-resolver", Name: "orders", LoadBalancer: { Policy: "ring_hash", RingHashConfig: { MinimumRingSize: 4096, MaximumRingSize: 1024 } } });
    assert.match((await rejected).error.message, /minimumRingSize/);
    assert.equal(mesh.inspect("orders")?.policy, "maglev", "the last good config keeps serving");

    const back = applied("round_robin");
    const res = await request(`${fake.url}/v1/config/service-resolver/orders`, { method: "DELETE" });
    await res.body.dump();
    await back;
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Consul from "consul";
import { FakeConsul } from "proxyless/testing";

/**
 * FakeConsul checked through an independent client, the `consul` npm package (the registry itself reads
 * Consul over undici): what the client asks and how it reads the answers must work against the fake.
 */
describe("FakeConsul through the consul npm client", () => {
  it("registers an instance, lists it in health and catalog, and refuses a bad token with 403", async () => {
    const fake = await FakeConsul.start({ aclTokens: { admin: { serviceWrite: [""] } } });
    const url = new URL(fake.url);
    const consul = new Consul({ host: url.hostname, port: Number(url.port), defaults: { token: "admin" } });
    try {
      await consul.agent.service.register({ name: "orders", id: "orders-1", address: "127.0.0.1", port: 9001, check: { name: "orders-1 ttl", ttl: "1h", status: "passing", timeout: "1s" } });
      const health = (await consul.health.service({ service: "orders", passing: true })) as { Service: { ID: string; Port: number } }[];
      assert.deepEqual(health.map((e) => [e.Service.ID, e.Service.Port]), [["orders-1", 9001]]);
      const services = (await consul.catalog.service.list()) as Record<string, string[]>;
      assert.ok("orders" in services);
      const wrong = new Consul({ host: url.hostname, port: Number(url.port), defaults: { token: "wrong" } });
      await assert.rejects(wrong.health.service("orders"), (err: unknown) => (err as { statusCode?: number }).statusCode === 403);
      wrong.destroy();
    } finally {
      consul.destroy();
      await fake.close();
    }
  });
});

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { experimental, Metadata, status } from "@grpc/grpc-js";
import { createMesh, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { meshInternals, type MeshInternals } from "../src/core/mesh-internals.ts";
import type { EndpointHandle } from "../src/transport/http/endpoint-handle.ts";
import { Binding, BINDING_OPTION, PICK_KEY, REFUSED_KEY } from "../src/transport/grpc/binding.ts";
import { MeshBalancer, MeshLbConfig } from "../src/transport/grpc/mesh-balancer.ts";

const endpoints = (prefix: string, n: number): { id: string; address: string; port: number }[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, address: "127.0.0.1", port: 20000 + i }));

describe("gRPC binding: endpoint tokens", () => {
  let mesh: Mesh;
  afterEach(async () => {
    await mesh.close();
  });

  const setUp = (registry: MockRegistry): { internals: MeshInternals; handles: () => Promise<EndpointHandle[]> } => {
    mesh = createMesh({ registry });
    const internals = meshInternals(mesh);
    assert.ok(internals !== undefined);
    const handles = async (): Promise<EndpointHandle[]> => {
      const state = internals.stateOf("orders");
      await state.settle();
      return [...state.handles];
    };
    return { internals, handles };
  };

  it("gives each endpoint one token for all its attempts, and forgets the tokens of endpoints that left as new ones are made", async () => {
    const registry = new MockRegistry({ orders: endpoints("old", 8) });
    const { internals, handles } = setUp(registry);
    const binding = new Binding("t", internals);
    const old = await handles();
    assert.equal(old.length, 8);
    const oldTokens = old.map((h) => binding.tokenFor(h, "orders"));
    assert.equal(new Set(oldTokens).size, 8, "one token per endpoint");
    assert.deepEqual(old.map((h) => binding.tokenFor(h, "orders")), oldTokens, "the same token on every attempt");
    assert.equal(binding.target(oldTokens[3]!)?.handle, old[3]);
    assert.equal(binding.target(oldTokens[3]!)?.service, "orders");

    registry.setEndpoints("orders", endpoints("new", 12));
    const fresh = await handles();
    assert.equal(fresh.length, 12);
    const freshTokens = fresh.map((h) => binding.tokenFor(h, "orders"));
    // The 17th token found 16 made: a sweep, which dropped the 8 of endpoints that left.
    for (const token of oldTokens) assert.equal(binding.target(token), undefined, `token ${token} of an endpoint that left`);
    freshTokens.forEach((token, i) => assert.equal(binding.target(token)?.handle, fresh[i]));
  });

  it("the balancer refuses an attempt whose endpoint left (nothing is sent), and marks it for the call layer", async () => {
    const registry = new MockRegistry({ orders: endpoints("e", 2) });
    const { internals, handles } = setUp(registry);
    await handles();
    const binding = new Binding("t", internals);
    const states: experimental.Picker[] = [];
    const helper = {
      createSubchannel: () => assert.fail("no subchannel for a refused attempt"),
      updateState: (_state: unknown, picker: experimental.Picker) => states.push(picker),
      requestReresolution: () => undefined,
      addChannelzChild: () => undefined,
      removeChannelzChild: () => undefined,
    } as unknown as experimental.ChannelControlHelper;
    const balancer = new MeshBalancer(helper);
    assert.equal(balancer.updateAddressList({ ok: true, value: [] }, new MeshLbConfig("orders"), { [BINDING_OPTION]: binding }), true);
    const picker = states.at(-1);
    assert.ok(picker !== undefined);
    const metadata = new Metadata();
    metadata.set(PICK_KEY, "no-such-token");
    const result = picker.pick({ metadata, extraPickInfo: {} });
    assert.equal(result.pickResultType, experimental.PickResultType.TRANSIENT_FAILURE);
    assert.equal(result.status?.code, status.UNAVAILABLE);
    assert.deepEqual(result.status?.metadata.get(REFUSED_KEY), ["1"]);
    assert.deepEqual(metadata.get(PICK_KEY), [], "the pick key is never sent");
    balancer.destroy();
  });
});

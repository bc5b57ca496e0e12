import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { experimental, Metadata, status } from "@grpc/grpc-js";
import { createMesh, type Mesh } from "proxyless";
import { MockRegistry } from "proxyless/testing";
import { meshInternals, type MeshInternals } from "../src/mesh-internals.ts";
import type { EndpointHandle } from "../src/transport/http/endpoint-handle.ts";
import { Binding, BINDING_OPTION, PICK_KEY, refusalOf } from "../src/transport/grpc/binding.ts";
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

  it("while a balancer watches, a token is forgotten as its endpoint leaves; the balancer then drops its attempt as refused (nothing sent)", async () => {
    const registry = new MockRegistry({ orders: endpoints("e", 2) });
    const { internals, handles } = setUp(registry);
    // As the resolver does: the service's state first, then the balancer.
    const [leaving] = await handles();
    assert.ok(leaving !== undefined);
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
    const metadata = new Metadata();
    // As the call layer does for an attempt; grpc-js's copies of the metadata keep the mark.
    binding.markPick(metadata, leaving, "orders");
    const token = binding.tokenFor(leaving, "orders");
    metadata.set(PICK_KEY, "a caller's value");

    registry.setEndpoints("orders", endpoints("e", 2).slice(1));
    assert.equal(binding.target(token), undefined, "forgotten at the change");
    assert.equal(binding.pickOf(metadata.clone()), "left");
    const picker = states.at(-1);
    assert.ok(picker !== undefined);
    const result = picker.pick({ metadata, extraPickInfo: {} });
    assert.equal(result.pickResultType, experimental.PickResultType.DROP, "dropped: grpc-js ends it even for a caller waiting for ready");
    assert.equal(result.status?.code, status.UNAVAILABLE);
    assert.equal(result.status !== null ? refusalOf(result.status.metadata)?.code : undefined, "ERR_NO_ENDPOINTS", "marked as refused for the call layer");
    assert.deepEqual(result.status.metadata.toJSON(), {}, "the mark is not in the metadata itself");
    assert.deepEqual(metadata.get(PICK_KEY), [], "the pick key is never sent");
    balancer.destroy();
  });
});
